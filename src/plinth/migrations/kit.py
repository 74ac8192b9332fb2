"""The migration kit's checks, each on its own scratch database.

Plain async functions, so that the pytest plugin (`plinth.testing.migration_kit`)
and ``plinth db check`` run the same code. Each raises `KitFailure` (an
`AssertionError`) with a message that says what to fix:

1. `single_head` — one head revision (two mean an unmerged branch);
2. `upgrade_from_empty` — base to head on an empty database;
3. `models_match` — `plinth.migrations.schema_diff.compare` finds nothing;
4. `stairway` — for every revision: upgrade, downgrade, upgrade again;
5. `no_trace` — the schema after upgrade + downgrade equals the one before;
6. `data_survives` — the app's hooks seed rows before a revision and check
   them after it (see `DataHook`).

Migrations run through `plinth.migrations.runner`, under the same lock, timeouts and
per-revision transactions as ``plinth db upgrade``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alembic.script import Script

from plinth.db.scratch import scratch_database
from plinth.errors import MigrationError
from plinth.migrations import config, runner, schema_diff, snapshot

if TYPE_CHECKING:
    from sqlalchemy import URL, MetaData
    from sqlalchemy.ext.asyncio import AsyncConnection

__all__ = [
    "DataHook",
    "KitFailure",
    "data_survives",
    "models_match",
    "no_trace",
    "revisions",
    "schema_drift",
    "single_head",
    "stairway",
    "upgrade_from_empty",
]

DataHook = Callable[["AsyncConnection"], AsyncIterator[None]]
"""An async generator: seed rows, ``yield``, then assert on them.

The kit runs the part before ``yield`` at the revision before the hooked one
(and commits it), upgrades, then runs the rest on a fresh transaction."""


class KitFailure(AssertionError):
    """A migration kit check found a problem; the message says which and how to fix it."""


@dataclass(frozen=True)
class Step:
    """One revision and the revision a downgrade of it returns to."""

    revision: str
    down: str
    label: str


def revisions(migrations_dir: Path) -> list[Step]:
    """The revisions from base to head, in the order an upgrade applies them."""
    script = config.load_scripts(migrations_dir)
    steps = []
    for revision in reversed(list(script.walk_revisions("base", "heads"))):
        steps.append(Step(revision.revision, _down(revision), _label(revision)))
    return steps


def _down(revision: Script) -> str:
    down = revision.down_revision
    if down is None:
        return "base"
    # A merge revision goes back one step along its first parent's line.
    return down if isinstance(down, str) else f"{revision.revision}-1"


def _label(revision: Script) -> str:
    doc = (revision.doc or "").strip()
    return f"{revision.revision} ({doc!r}, {Path(revision.path).name})"


def single_head(migrations_dir: Path) -> str:
    """The single head; `KitFailure` if there are several (or none)."""
    found = config.heads(migrations_dir)
    if len(found) != 1:
        raise KitFailure(
            f"expected one head revision, found {len(found)}: {', '.join(found) or 'none'}. "
            "Two heads mean two branches of migrations: merge them with "
            "`alembic merge heads` (or rebase one revision's down_revision onto the other)."
        )
    return found[0]


@dataclass(frozen=True)
class _Runner:
    connection: AsyncConnection
    migrations_dir: Path

    async def _guard(self, doing: str, work: Awaitable[None]) -> None:
        try:
            await work
        except MigrationError as exc:
            raise KitFailure(f"{doing}: {exc}") from exc

    async def up(self, step: Step | None = None, doing: str = "") -> None:
        target = step.revision if step is not None else "heads"
        await self._guard(
            doing or f"upgrading to {target}",
            runner.upgrade(self.connection, self.migrations_dir, target),
        )

    async def down(self, step: Step) -> None:
        await self._guard(
            f"downgrading {step.revision} to {step.down}",
            runner.downgrade(self.connection, self.migrations_dir, step.down),
        )


async def upgrade_from_empty(server: URL, migrations_dir: Path) -> None:
    """Upgrade an empty database from base to head."""
    async with scratch_database(server, "kit_up") as engine, engine.connect() as connection:
        await _Runner(connection, migrations_dir).up(doing="upgrading an empty database to head")
        at = await runner.current(connection)
        head = config.heads(migrations_dir)
        if set(at) != set(head):
            raise KitFailure(f"after upgrading to head the database is at {at}, not {head}")


async def schema_drift(server: URL, migrations_dir: Path, metadata: MetaData) -> schema_diff.Drift:
    """`schema_diff.compare` on two scratch databases: migrated to head, and empty."""
    async with (
        scratch_database(server, "kit_migrated") as migrated_engine,
        scratch_database(server, "kit_models") as models_engine,
        migrated_engine.connect() as migrated,
        models_engine.connect() as empty,
    ):
        await _Runner(migrated, migrations_dir).up(doing="upgrading an empty database to head")
        return await schema_diff.compare(migrated, empty, metadata)


async def models_match(server: URL, migrations_dir: Path, metadata: MetaData) -> None:
    """Fail unless the models and the migrations build the same schema."""
    found = await schema_drift(server, migrations_dir, metadata)
    if found:
        raise KitFailure("the models do not match the migrations.\n" + found.report())


async def stairway(server: URL, migrations_dir: Path) -> None:
    """For every revision: upgrade to it, downgrade one step, upgrade again."""
    async with scratch_database(server, "kit_stairs") as engine, engine.connect() as connection:
        runner = _Runner(connection, migrations_dir)
        for step in revisions(migrations_dir):
            await runner.up(step)
            await runner.down(step)
            await runner.up(step, f"upgrading to {step.revision} again after its downgrade")


async def no_trace(server: URL, migrations_dir: Path) -> None:
    """Upgrade + downgrade of each revision leaves the schema as it was."""
    problems: list[str] = []
    async with scratch_database(server, "kit_trace") as engine, engine.connect() as connection:
        runner = _Runner(connection, migrations_dir)
        for step in revisions(migrations_dir):
            before = await snapshot.take(connection)
            await runner.up(step)
            await runner.down(step)
            after = await snapshot.take(connection)
            left = before.diff(
                after, ours="the schema before the upgrade", theirs="the schema after the downgrade"
            )
            if left:
                problems.append(
                    f"revision {step.label}: its downgrade does not undo its upgrade:\n"
                    + "\n".join(f"  - {line}" for line in left)
                )
            await runner.up(step)
    if problems:
        raise KitFailure("\n".join(problems))


async def data_survives(server: URL, migrations_dir: Path, hooks: Mapping[str, DataHook]) -> None:
    """Run each hook around its revision on a database upgraded step by step."""
    steps = revisions(migrations_dir)
    unknown = sorted(set(hooks) - {step.revision for step in steps})
    if unknown:
        raise KitFailure(f"data hooks name unknown revisions: {', '.join(unknown)}")
    async with (
        scratch_database(server, "kit_data") as engine,
        engine.connect() as migrating,
        engine.connect() as data,
    ):
        runner = _Runner(migrating, migrations_dir)
        for step in steps:
            hook = hooks.get(step.revision)
            if hook is None:
                await runner.up(step)
                continue
            generator = hook(data)
            await anext(generator)
            await data.commit()
            await runner.up(step, f"upgrading to {step.revision} with the data hook's rows")
            try:
                await anext(generator)
            except StopAsyncIteration:
                pass
            else:
                raise KitFailure(
                    f"the data hook for revision {step.revision} yields more than once"
                )
            finally:
                await data.rollback()
