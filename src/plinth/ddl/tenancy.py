"""Row-level security for tenants: one policy on a transaction-local setting."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import DDL, Table, event
from sqlalchemy.dialects import postgresql

from plinth.ddl.core import as_ddl, ddl_registry, qualified_name, quote_identifier

__all__ = [
    "TENANT_POLICY",
    "TENANT_SETTING",
    "disable_tenant_isolation",
    "enable_tenant_isolation",
    "grant_app_role",
    "tenant_isolation",
]

TENANT_SETTING = "app.tenant_id"
"""The setting the tenant policies read; `plinth.Database.transaction` sets it
with ``set_config(..., true)``: for the current transaction only."""

TENANT_POLICY = "tenant_isolation"
"""The name of the policy `enable_tenant_isolation` creates on each table."""

_SETTING_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+$")
_SQL_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ]*(\(\d+(, ?\d+)?\))?(\[\])?$")


def _tenant_condition(column: str, column_type: str, setting: str) -> str:
    if not _SETTING_NAME.match(setting):
        raise ValueError(f"tenant setting {setting!r} is not a custom setting name like app.tenant")
    if not _SQL_TYPE.match(column_type):
        raise ValueError(f"{column_type!r} is not a type name")
    # current_setting(..., true) is NULL in a session that never set it, and ''
    # once a transaction-local value has ended: both mean "no tenant", so no row.
    current = f"NULLIF(current_setting('{setting}', true), '')"
    return f"{quote_identifier(column)} = {current}::{column_type.lower()}"


def enable_tenant_isolation(
    table: str,
    column: str = "tenant_id",
    *,
    column_type: str = "uuid",
    setting: str = TENANT_SETTING,
) -> list[DDL]:
    """Row-level security on `table`: a row is visible and writable only while
    the transaction's `setting` names its `column`'s value.

    ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` (FORCE: the table's owner is
    held to the policy too; only superusers and ``BYPASSRLS`` roles are not),
    and the policy `TENANT_POLICY` with the same ``USING`` (rows read, updated,
    deleted) and ``WITH CHECK`` (rows inserted or updated into) condition.
    With no tenant set, no row is visible and every insert fails.
    `column_type` is the column's SQL type. Three statements: run each
    (``op.execute``).
    """
    condition = _tenant_condition(column, column_type, setting)
    name = qualified_name(table)
    return [
        as_ddl(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY"),
        as_ddl(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY"),
        as_ddl(
            f"CREATE POLICY {TENANT_POLICY} ON {name} USING ({condition}) WITH CHECK ({condition})"
        ),
    ]


def disable_tenant_isolation(table: str) -> list[DDL]:
    """Undo `enable_tenant_isolation`: drop the policy, ``NO FORCE`` and
    ``DISABLE ROW LEVEL SECURITY``."""
    name = qualified_name(table)
    return [
        as_ddl(f"DROP POLICY IF EXISTS {TENANT_POLICY} ON {name}"),
        as_ddl(f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY"),
        as_ddl(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY"),
    ]


def tenant_isolation(
    model: type[Any] | Table, column: str = "tenant_id", *, setting: str = TENANT_SETTING
) -> None:
    """Declare `column` as `model`'s tenant: ``create_all`` then runs
    `enable_tenant_isolation` after creating the table, with the column's type.

    A migration runs ``ddl.enable_tenant_isolation(table)`` (``column_type``
    for a tenant column that is not a UUID): the catalogs then agree, which
    ``plinth db check`` verifies.
    """
    table = model if isinstance(model, Table) else model.__table__
    if column not in table.c:
        raise ValueError(f"table {table.name!r} has no column {column!r}")
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    column_type = str(table.c[column].type.compile(dialect=dialect))
    name = table.name if table.schema is None else f"{table.schema}.{table.name}"
    statements = enable_tenant_isolation(name, column, column_type=column_type, setting=setting)
    for statement in statements:
        event.listen(table, "after_create", statement)
    ddl_registry(table.metadata)["policies"].add(f"{name}.{TENANT_POLICY}")
    table.info["plinth.tenant"] = (column, setting)


def grant_app_role(role: str, schema: str = "public", *, owner: str | None = None) -> list[DDL]:
    """Let `role` read and write the rows of `schema`'s tables, and no more.

    Run as the tables' owner (the role migrations run as), after the
    migrations; with `owner`, tables that role creates later are granted too
    (``ALTER DEFAULT PRIVILEGES FOR ROLE owner``, which needs to run as that
    owner or a member of it). Create `role` first, as neither superuser nor
    ``BYPASSRLS``, and give it ``CONNECT`` on the database::

        CREATE ROLE app LOGIN PASSWORD '...' NOSUPERUSER NOBYPASSRLS;
        GRANT CONNECT ON DATABASE mydb TO app;

    The role owns nothing, so ``FORCE ROW LEVEL SECURITY`` is not even needed
    for it: row-level security applies to every role but owners, superusers
    and ``BYPASSRLS`` roles.
    """
    who, where = quote_identifier(role), quote_identifier(schema)
    statements = [
        f"GRANT USAGE ON SCHEMA {where} TO {who}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {where} TO {who}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {who}",
    ]
    if owner is not None:
        default = f"ALTER DEFAULT PRIVILEGES FOR ROLE {quote_identifier(owner)} IN SCHEMA {where}"
        statements += [
            f"{default} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {who}",
            f"{default} GRANT USAGE, SELECT ON SEQUENCES TO {who}",
        ]
    return [as_ddl(statement) for statement in statements]
