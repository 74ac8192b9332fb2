"""PostgreSQL DDL that both ``metadata.create_all`` and migrations use.

Each helper returns one `DDL` statement, so a migration runs exactly the SQL
that ``create_all`` runs (``op.execute(ddl.create_updated_at_function())``),
and attaching it to the metadata (`updated_at_trigger`, `extensions`) makes
``create_all`` build the same schema that the migrations build. What is
attached is recorded in ``metadata.info["plinth.ddl"]`` for drift checks.

Row-level security for tenants: `tenant_isolation` (on a model, for
``create_all``) and `enable_tenant_isolation` / `disable_tenant_isolation`
(in migrations) emit the same ``ENABLE`` / ``FORCE ROW LEVEL SECURITY`` and
the same policy on the transaction-local setting `TENANT_SETTING`, which
`plinth.Database.transaction` (``tenant=...``) sets. `grant_app_role` is the
SQL that lets a restricted runtime role use the tables.

What SQLAlchemy already does is not wrapped: partial indexes are
``Index(..., postgresql_where=...)``, enums are ``sqlalchemy.Enum``.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    DDL,
    DateTime,
    FetchedValue,
    Index,
    MetaData,
    Table,
    event,
    func,
    literal_column,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import QueryableAttribute

    Column = ColumnElement[Any] | QueryableAttribute[Any]

__all__ = [
    "NAMING_CONVENTION",
    "TENANT_POLICY",
    "TENANT_SETTING",
    "Timestamps",
    "create_extension",
    "create_updated_at_function",
    "create_updated_at_trigger",
    "disable_tenant_isolation",
    "drop_extension",
    "drop_updated_at_function",
    "drop_updated_at_trigger",
    "enable_tenant_isolation",
    "extensions",
    "fulltext_index",
    "fulltext_match",
    "grant_app_role",
    "new_metadata",
    "tenant_isolation",
    "updated_at_trigger",
    "uuid_pk",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so that migrations can drop what they created."""

UPDATED_AT_FUNCTION = "update_updated_at_column"


def _ddl(statement: str) -> DDL:
    return DDL(statement)  # type: ignore[no-untyped-call]


def new_metadata(schema: str | None = None) -> MetaData:
    """A `MetaData` with Plinth's naming convention; one per app."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def _registry(metadata: MetaData) -> dict[str, set[str]]:
    registry: dict[str, set[str]] = metadata.info.setdefault(
        "plinth.ddl", {"extensions": set(), "functions": set(), "triggers": set()}
    )
    registry.setdefault("policies", set())
    return registry


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qualified(table: str) -> str:
    """``"schema"."table"`` from ``schema.table``, or ``"table"``."""
    return ".".join(_quote(part) for part in table.split(".", 1))


def create_extension(name: str, *, if_available: bool = False) -> DDL:
    """``CREATE EXTENSION IF NOT EXISTS``; with `if_available`, skipped where the
    server does not ship it (the embedded server has no ``uuid-ossp``)."""
    statement = f"CREATE EXTENSION IF NOT EXISTS {_quote(name)}"
    if not if_available:
        return _ddl(statement)
    literal = name.replace("'", "''")
    return _ddl(
        "DO $plinth$ BEGIN "
        f"IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = '{literal}') "
        f"THEN {statement}; END IF; END $plinth$"
    )


def drop_extension(name: str) -> DDL:
    """``DROP EXTENSION IF EXISTS``."""
    return _ddl(f"DROP EXTENSION IF EXISTS {_quote(name)}")


def create_updated_at_function() -> DDL:
    """The ``update_updated_at_column()`` trigger function."""
    return _ddl(
        f"CREATE OR REPLACE FUNCTION {UPDATED_AT_FUNCTION}() RETURNS TRIGGER AS $$\n"
        "BEGIN\n"
        "    NEW.updated_at = now();\n"
        "    RETURN NEW;\n"
        "END;\n"
        "$$ LANGUAGE plpgsql"
    )


def drop_updated_at_function() -> DDL:
    """Drop the ``update_updated_at_column()`` function."""
    return _ddl(f"DROP FUNCTION IF EXISTS {UPDATED_AT_FUNCTION}()")


def _trigger_name(table: str) -> str:
    return f"update_{table}_updated_at"


def create_updated_at_trigger(table: str) -> DDL:
    """A ``BEFORE UPDATE`` trigger on `table` that sets ``updated_at = now()``."""
    return _ddl(
        f"CREATE TRIGGER {_quote(_trigger_name(table))} BEFORE UPDATE ON {_quote(table)} "
        f"FOR EACH ROW EXECUTE FUNCTION {UPDATED_AT_FUNCTION}()"
    )


def drop_updated_at_trigger(table: str) -> DDL:
    """Drop the ``updated_at`` trigger of `table`."""
    return _ddl(f"DROP TRIGGER IF EXISTS {_quote(_trigger_name(table))} ON {_quote(table)}")


def extensions(metadata: MetaData, *names: str, if_available: tuple[str, ...] = ()) -> None:
    """Create these extensions before ``metadata.create_all`` creates tables."""
    registry = _registry(metadata)
    for name in names:
        event.listen(metadata, "before_create", create_extension(name))
        registry["extensions"].add(name)
    for name in if_available:
        event.listen(metadata, "before_create", create_extension(name, if_available=True))


def updated_at_trigger(model: type[Any] | Table) -> None:
    """Keep ``updated_at`` current on every UPDATE, in the database.

    `model` is a mapped class or a `Table`.
    """
    table = model if isinstance(model, Table) else model.__table__
    if "updated_at" not in table.c:
        raise ValueError(f"table {table.name!r} has no updated_at column")
    registry = _registry(table.metadata)
    if UPDATED_AT_FUNCTION not in registry["functions"]:
        event.listen(table.metadata, "before_create", create_updated_at_function())
        event.listen(table.metadata, "after_drop", drop_updated_at_function())
        registry["functions"].add(UPDATED_AT_FUNCTION)
    event.listen(table, "after_create", create_updated_at_trigger(table.name))
    registry["triggers"].add(_trigger_name(table.name))


def _tsvector(column: Column, config: str) -> ColumnElement[Any]:
    # A literal regconfig, not a bind parameter: the index expression and the
    # query expression must be textually identical for the planner to match.
    return func.to_tsvector(literal_column(f"'{config}'::regconfig"), column)


def fulltext_index(name: str, column: Column, config: str = "english") -> Index:
    """A GIN index on ``to_tsvector(config, column)``, attached to the column's table."""
    index = Index(name, _tsvector(column, config), postgresql_using="gin")
    table = getattr(column, "table", None)
    if index.table is None and table is not None:
        # The regconfig literal hides the expression's table from auto-attachment.
        table.append_constraint(index)
    return index


def fulltext_match(column: Column, query: str, config: str = "english") -> ColumnElement[bool]:
    """``to_tsvector(config, column) @@ websearch_to_tsquery(config, query)``;
    uses the `fulltext_index` on the same column and config."""
    tsquery = func.websearch_to_tsquery(literal_column(f"'{config}'::regconfig"), query)
    return _tsvector(column, config).op("@@")(tsquery)


def uuid_pk() -> Mapped[uuid.UUID]:
    """A UUID primary key defaulting to ``gen_random_uuid()`` (core PostgreSQL 13+)."""
    return mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()
    )


class Timestamps:
    """``created_at`` and ``updated_at``, WITH TIME ZONE, set by the server.

    Pair with `updated_at_trigger` so that ``updated_at`` moves on UPDATE. The
    new value comes back with the UPDATE's RETURNING (``eager_defaults``), so an
    object never holds an expired attribute that async code could not load.
    """

    __mapper_args__: ClassVar[dict[str, Any]] = {"eager_defaults": True}

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    """``now()`` when the row was inserted: the start of the inserting transaction."""
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True),
        server_default=func.now(),
        server_onupdate=FetchedValue(),
        nullable=False,
    )
    """``now()`` of the last UPDATE, set by `updated_at_trigger`'s trigger."""


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
    return (
        f"{_quote(column)} = NULLIF(current_setting('{setting}', true), '')::{column_type.lower()}"
    )


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
    name = _qualified(table)
    return [
        _ddl(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY"),
        _ddl(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY"),
        _ddl(
            f"CREATE POLICY {TENANT_POLICY} ON {name} USING ({condition}) WITH CHECK ({condition})"
        ),
    ]


def disable_tenant_isolation(table: str) -> list[DDL]:
    """Undo `enable_tenant_isolation`: drop the policy, ``NO FORCE`` and
    ``DISABLE ROW LEVEL SECURITY``."""
    name = _qualified(table)
    return [
        _ddl(f"DROP POLICY IF EXISTS {TENANT_POLICY} ON {name}"),
        _ddl(f"ALTER TABLE {name} NO FORCE ROW LEVEL SECURITY"),
        _ddl(f"ALTER TABLE {name} DISABLE ROW LEVEL SECURITY"),
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
    _registry(table.metadata)["policies"].add(f"{name}.{TENANT_POLICY}")
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
    who, where = _quote(role), _quote(schema)
    statements = [
        f"GRANT USAGE ON SCHEMA {where} TO {who}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {where} TO {who}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {where} TO {who}",
    ]
    if owner is not None:
        default = f"ALTER DEFAULT PRIVILEGES FOR ROLE {_quote(owner)} IN SCHEMA {where}"
        statements += [
            f"{default} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {who}",
            f"{default} GRANT USAGE, SELECT ON SEQUENCES TO {who}",
        ]
    return [_ddl(statement) for statement in statements]
