"""Do the models match the migrations? Two views, both must agree.

1. Autogenerate: Alembic compares the models with a database migrated to
   head (types, nullability, server defaults, indexes, foreign keys, unique
   constraints and, through ``alembic-postgresql-enum``, enum types and their
   values). Whatever it would generate is printed as the ``op.*`` code a
   ``plinth db revision`` would write.
2. The catalogs: ``metadata.create_all`` builds the models in an empty
   database, with every object Plinth's DDL helpers attach (extensions,
   functions, triggers; see `plinth.ddl`), and `plinth.migrations.snapshot` compares it
   with the migrated one. This catches what autogenerate cannot see: check
   constraints, triggers, functions, extensions, enum label order, and any
   definition PostgreSQL normalises differently.

`compare` needs both databases on the same server, so that server-dependent
output (extension versions, ``pg_get_*def`` spelling) cannot differ.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alembic.autogenerate import produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext

from plinth.migrations import snapshot

if TYPE_CHECKING:
    from sqlalchemy import Connection, MetaData
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = ["COMPARE_OPTIONS", "Drift", "autogenerate", "compare"]

COMPARE_OPTIONS: dict[str, Any] = {"compare_type": True, "compare_server_default": True}
"""The options `plinth.migrations.run_env` also gives autogenerate."""


@dataclass(frozen=True)
class Drift:
    """What separates the migrations from the models; empty when they agree."""

    operations: str = ""
    """The ``op.*`` code autogenerate would write, or ``""``."""
    catalog: list[str] = field(default_factory=list)
    """Catalog differences between ``create_all`` (models) and the migrations."""
    notes: list[str] = field(default_factory=list)
    """Warnings autogenerate gave (not failures by themselves)."""

    def __bool__(self) -> bool:
        return bool(self.operations or self.catalog)

    def report(self) -> str:
        """The human-readable report: what to generate, then what differs."""
        parts: list[str] = []
        if self.operations:
            parts.append(
                "autogenerate would emit (run `plinth db revision -m ...` to write it):\n"
                + _indent(self.operations)
            )
        if self.catalog:
            parts.append(
                "the schema the models build (create_all, with Plinth's DDL helpers) differs "
                "from the one the migrations build:\n"
                + "\n".join(f"  - {line}" for line in self.catalog)
            )
        if self.notes:
            parts.append("autogenerate warned:\n" + "\n".join(f"  - {n}" for n in self.notes))
        return "\n".join(parts) if parts else "models match migrations"


def _indent(code: str) -> str:
    lines = [line for line in code.splitlines() if line.strip() and "### " not in line]
    return "\n".join("  " + line.strip() if line.startswith("    ") else line for line in lines)


async def autogenerate(migrated: AsyncConnection, metadata: MetaData) -> tuple[str, list[str]]:
    """The code autogenerate would write against `migrated`, and its warnings."""

    def run(sync_connection: Connection) -> tuple[str, list[str]]:
        context = MigrationContext.configure(
            sync_connection, opts={**COMPARE_OPTIONS, "target_metadata": metadata}
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            script = produce_migrations(context, metadata)
        notes = [str(warning.message) for warning in caught]
        upgrade_ops = script.upgrade_ops
        if upgrade_ops is None or upgrade_ops.is_empty():
            return "", notes
        return render_python_code(upgrade_ops, migration_context=context), notes

    try:
        return await migrated.run_sync(run)
    finally:
        await migrated.rollback()


async def compare(migrated: AsyncConnection, empty: AsyncConnection, metadata: MetaData) -> Drift:
    """Compare `metadata` with the database `migrated` is on (at head).

    `empty` must be on an empty database of the same server: the models are
    built there with ``create_all`` (and stay; drop the database afterwards).
    """
    operations, notes = await autogenerate(migrated, metadata)
    await empty.run_sync(metadata.create_all)
    await empty.commit()
    models = await snapshot.take(empty)
    migrations = await snapshot.take(migrated)
    catalog = models.diff(migrations, ours="models", theirs="migrations")
    return Drift(operations, catalog, notes)
