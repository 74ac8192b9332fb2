"""PostgreSQL DDL that both ``metadata.create_all`` and migrations use.

Each helper returns one `DDL` statement, so a migration runs exactly the SQL
that ``create_all`` runs (``op.execute(ddl.create_updated_at_function())``),
and attaching it to the metadata (`updated_at_trigger`, `extensions`) makes
``create_all`` build the same schema that the migrations build. What is
attached is recorded in ``metadata.info["plinth.ddl"]`` for drift checks.

Citus: `distribute_table` and `create_reference_table` (attached by
`distributed` and `reference_table`) act only where the ``citus`` extension is
installed, so one schema and one set of migrations serve plain PostgreSQL and
a Citus cluster alike.

What SQLAlchemy already does is not wrapped: partial indexes are
``Index(..., postgresql_where=...)``, enums are ``sqlalchemy.Enum``.
"""

from __future__ import annotations

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
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import QueryableAttribute

    Column = ColumnElement[Any] | QueryableAttribute[Any]

__all__ = [
    "NAMING_CONVENTION",
    "Timestamps",
    "create_extension",
    "create_reference_table",
    "create_updated_at_function",
    "create_updated_at_trigger",
    "distribute_table",
    "distributed",
    "drop_extension",
    "drop_updated_at_function",
    "drop_updated_at_trigger",
    "extensions",
    "fulltext_index",
    "fulltext_match",
    "new_metadata",
    "reference_table",
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
    return registry


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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


def _where_citus(body: str) -> DDL:
    # `citus.enable_unsafe_triggers` for this transaction only: Citus refuses to
    # distribute a table with triggers (updated_at) unless told they are safe,
    # which a trigger that only sets NEW's own column is.
    return _ddl(
        "DO $plinth$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN "
        "PERFORM set_config('citus.enable_unsafe_triggers', 'on', true); "
        f"{body} END IF; END $plinth$"
    )


def _literal(name: str) -> str:
    return "'" + _quote(name).replace("'", "''") + "'"


def distribute_table(table: str, column: str, *, colocate_with: str | None = None) -> DDL:
    """Shard `table` by `column` (``create_distributed_table``), co-located with
    `colocate_with`, where Citus is installed; nothing on plain PostgreSQL.

    Citus requires every primary key and unique constraint of `table` to include
    `column`, and a foreign key to another distributed table to include it too.
    """
    colocate = f", colocate_with => {_literal(colocate_with)}" if colocate_with else ""
    column_literal = "'" + column.replace("'", "''") + "'"
    return _where_citus(
        f"PERFORM create_distributed_table({_literal(table)}, {column_literal}{colocate});"
    )


def create_reference_table(table: str) -> DDL:
    """Copy `table` to every node (``create_reference_table``) where Citus is
    installed; nothing on plain PostgreSQL."""
    return _where_citus(f"PERFORM create_reference_table({_literal(table)});")


def distributed(model: type[Any] | Table, column: str, *, colocate_with: str | None = None) -> None:
    """Make ``create_all`` shard `model`'s table by `column` (see `distribute_table`).

    Declare it after the table's other DDL (its ``updated_at`` trigger), and
    the co-located table's first: tables are created in dependency order.
    """
    table = model if isinstance(model, Table) else model.__table__
    if column not in table.c:
        raise ValueError(f"table {table.name!r} has no column {column!r} to distribute by")
    event.listen(
        table, "after_create", distribute_table(table.name, column, colocate_with=colocate_with)
    )


def reference_table(model: type[Any] | Table) -> None:
    """Make ``create_all`` copy `model`'s table to every Citus node."""
    table = model if isinstance(model, Table) else model.__table__
    event.listen(table, "after_create", create_reference_table(table.name))
