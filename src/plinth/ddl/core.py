"""The DDL of a plain schema: naming, extensions, ``updated_at`` triggers, full text.

`as_ddl`, `quote_identifier` and `qualified_name` are shared with the other
modules of `plinth.ddl`.
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
    "as_ddl",
    "create_extension",
    "create_updated_at_function",
    "create_updated_at_trigger",
    "ddl_registry",
    "drop_extension",
    "drop_updated_at_function",
    "drop_updated_at_trigger",
    "extensions",
    "fulltext_index",
    "fulltext_match",
    "new_metadata",
    "qualified_name",
    "quote_identifier",
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


def as_ddl(statement: str) -> DDL:
    return DDL(statement)  # type: ignore[no-untyped-call]


def new_metadata(schema: str | None = None) -> MetaData:
    """A `MetaData` with Plinth's naming convention; one per app."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def ddl_registry(metadata: MetaData) -> dict[str, set[str]]:
    registry: dict[str, set[str]] = metadata.info.setdefault(
        "plinth.ddl", {"extensions": set(), "functions": set(), "triggers": set()}
    )
    registry.setdefault("policies", set())
    return registry


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified_name(table: str) -> str:
    """``"schema"."table"`` from ``schema.table``, or ``"table"``."""
    return ".".join(quote_identifier(part) for part in table.split(".", 1))


def create_extension(name: str, *, if_available: bool = False) -> DDL:
    """``CREATE EXTENSION IF NOT EXISTS``; with `if_available`, skipped where the
    server does not ship it (the embedded server has no ``uuid-ossp``)."""
    statement = f"CREATE EXTENSION IF NOT EXISTS {quote_identifier(name)}"
    if not if_available:
        return as_ddl(statement)
    literal = name.replace("'", "''")
    return as_ddl(
        "DO $plinth$ BEGIN "
        f"IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = '{literal}') "
        f"THEN {statement}; END IF; END $plinth$"
    )


def drop_extension(name: str) -> DDL:
    """``DROP EXTENSION IF EXISTS``."""
    return as_ddl(f"DROP EXTENSION IF EXISTS {quote_identifier(name)}")


def create_updated_at_function() -> DDL:
    """The ``update_updated_at_column()`` trigger function."""
    return as_ddl(
        f"CREATE OR REPLACE FUNCTION {UPDATED_AT_FUNCTION}() RETURNS TRIGGER AS $$\n"
        "BEGIN\n"
        "    NEW.updated_at = now();\n"
        "    RETURN NEW;\n"
        "END;\n"
        "$$ LANGUAGE plpgsql"
    )


def drop_updated_at_function() -> DDL:
    """Drop the ``update_updated_at_column()`` function."""
    return as_ddl(f"DROP FUNCTION IF EXISTS {UPDATED_AT_FUNCTION}()")


def _trigger_name(table: str) -> str:
    return f"update_{table}_updated_at"


def create_updated_at_trigger(table: str) -> DDL:
    """A ``BEFORE UPDATE`` trigger on `table` that sets ``updated_at = now()``."""
    return as_ddl(
        f"CREATE TRIGGER {quote_identifier(_trigger_name(table))} BEFORE UPDATE "
        f"ON {quote_identifier(table)} FOR EACH ROW EXECUTE FUNCTION {UPDATED_AT_FUNCTION}()"
    )


def drop_updated_at_trigger(table: str) -> DDL:
    """Drop the ``updated_at`` trigger of `table`."""
    trigger = quote_identifier(_trigger_name(table))
    return as_ddl(f"DROP TRIGGER IF EXISTS {trigger} ON {quote_identifier(table)}")


def extensions(metadata: MetaData, *names: str, if_available: tuple[str, ...] = ()) -> None:
    """Create these extensions before ``metadata.create_all`` creates tables."""
    registry = ddl_registry(metadata)
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
    registry = ddl_registry(table.metadata)
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
