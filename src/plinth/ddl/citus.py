"""Citus: tables sharded by a column, or copied to every node, where Citus is installed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DDL, Table, event

from plinth.ddl.core import as_ddl, quote_identifier

__all__ = [
    "create_reference_table",
    "distribute_table",
    "distributed",
    "reference_table",
    "undistribute_table",
]


def _where_citus(body: str) -> DDL:
    # `citus.enable_unsafe_triggers` for this transaction only: Citus refuses to
    # distribute a table with triggers (updated_at) unless told they are safe,
    # which a trigger that only sets NEW's own column is.
    return as_ddl(
        "DO $plinth$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN "
        "PERFORM set_config('citus.enable_unsafe_triggers', 'on', true); "
        f"{body} END IF; END $plinth$"
    )


def _literal(name: str) -> str:
    return "'" + quote_identifier(name).replace("'", "''") + "'"


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


def undistribute_table(table: str) -> DDL:
    """Make a distributed or reference `table` an ordinary local table again
    (``undistribute_table``, for a migration's downgrade) where Citus is
    installed and the table is distributed; nothing elsewhere.

    Drop the foreign keys between distributed tables first: Citus refuses to
    undistribute a table that takes part in one.
    """
    return _where_citus(
        "IF EXISTS (SELECT 1 FROM pg_dist_partition "
        f"WHERE logicalrelid = to_regclass({_literal(table)})) THEN "
        f"PERFORM undistribute_table({_literal(table)}); END IF;"
    )
