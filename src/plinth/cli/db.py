"""``plinth db``: the app's migrations, under the advisory lock and timeouts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth import migrations
from plinth.cli._common import AppOption, console, errors, fail, guarded, on_connection
from plinth.migrations.config import revision_template
from plinth.project import find_app, resolve_database_url

__all__ = ["db"]

db = typer.Typer(
    help="Migrations: upgrade, downgrade, current, history, check, lint, reset, revision.",
    pretty_exceptions_show_locals=False,
)


@db.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    app: AppOption = Path("."),
) -> None:
    """Upgrade the database (under an advisory lock: safe with many replicas)."""
    spec = guarded(lambda: find_app(app))
    guarded(lambda: on_connection(spec, lambda c: migrations.upgrade(c, spec.migrations, revision)))
    console.print(f"{spec.name}: upgraded to {revision}")


# "-1" looks like an option to click; taken as unknown, it reaches the argument.
@db.command(context_settings={"ignore_unknown_options": True})
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target: -1, base, or a revision id.")],
    app: AppOption = Path("."),
) -> None:
    """Downgrade the database."""
    spec = guarded(lambda: find_app(app))
    guarded(
        lambda: on_connection(spec, lambda c: migrations.downgrade(c, spec.migrations, revision))
    )
    console.print(f"{spec.name}: downgraded to {revision}")


@db.command()
def current(app: AppOption = Path(".")) -> None:
    """Show the revision the database is at."""
    spec = guarded(lambda: find_app(app))
    revisions = guarded(lambda: on_connection(spec, migrations.current))
    head = guarded(lambda: migrations.heads(spec.migrations))
    for revision in revisions or ("base",):
        marker = " (head)" if revision in head else ""
        console.print(f"{revision}{marker}")


@db.command()
def history(app: AppOption = Path(".")) -> None:
    """List the revisions, newest first."""
    from alembic import command

    spec = guarded(lambda: find_app(app))
    config = guarded(lambda: migrations.alembic_config(spec.migrations))
    command.history(config)


@db.command()
def check(app: AppOption = Path(".")) -> None:
    """Exit 1 unless there is one head and the models match the migrations.

    The comparison of the migration kit's test 3, in two scratch databases on
    the server: the database itself is not touched.
    """
    from plinth.migrations.kit import schema_drift

    spec = guarded(lambda: find_app(app))
    head = guarded(lambda: migrations.heads(spec.migrations))
    if len(head) != 1:
        raise fail(f"{spec.name}: expected one head, found {len(head)}: {', '.join(head)}")
    metadata = guarded(lambda: spec.metadata)
    settings = guarded(lambda: spec.settings)

    def compare() -> Any:
        with resolve_database_url(settings, spec.path) as url:
            return asyncio.run(schema_drift(url, spec.migrations, metadata))

    found = guarded(compare)
    if found:
        errors.print(f"{spec.name}: the models differ from the migrations.", highlight=False)
        errors.print(found.report(), highlight=False, markup=False)
        raise typer.Exit(1)
    console.print(f"{spec.name}: one head ({head[0]}), models match migrations")


@db.command("lint")
def lint_command(app: AppOption = Path(".")) -> None:
    """Report migrations that lock busy tables or break running code (squawk)."""
    from plinth.migrations.lint import lint

    spec = guarded(lambda: find_app(app))
    findings = guarded(lambda: lint(spec.migrations))
    for finding in findings:
        (console if finding.allowed else errors).print(str(finding), highlight=False, markup=False)
    unsafe = [finding for finding in findings if not finding.allowed]
    if unsafe:
        errors.print(
            f"{spec.name}: {len(unsafe)} unsafe operation(s); use the safe alternative, or "
            "acknowledge one with `# plinth: allow <rule>` in its revision file",
            highlight=False,
            markup=False,
        )
        raise typer.Exit(1)
    allowed = f" ({len(findings)} acknowledged)" if findings else ""
    console.print(f"{spec.name}: no unsafe operations{allowed}", highlight=False)


@db.command()
def reset(
    app: AppOption = Path("."),
    yes_really: Annotated[
        bool, typer.Option("--yes-really", help="Allow it with APP_ENV=production.")
    ] = False,
) -> None:
    """Downgrade to base, then upgrade to head: every migrated table loses its data."""
    spec = guarded(lambda: find_app(app))
    settings = guarded(lambda: spec.settings)
    if settings.app_env == "production" and not yes_really:
        raise fail(
            "refusing to reset a production database (APP_ENV=production): it drops every "
            "table the migrations created, with its data; pass --yes-really to do it anyway"
        )

    async def run(connection: AsyncConnection) -> None:
        await migrations.downgrade(connection, spec.migrations, "base")
        await migrations.upgrade(connection, spec.migrations)

    guarded(lambda: on_connection(spec, run))
    console.print(f"{spec.name}: reset (downgraded to base, upgraded to head)")


@db.command()
def revision(
    message: Annotated[str, typer.Option("-m", "--message", help="What the revision does.")],
    autogenerate: Annotated[
        bool, typer.Option(help="Diff the models against the database.")
    ] = True,
    app: AppOption = Path("."),
) -> None:
    """Create a revision, autogenerated from the models by default."""
    from alembic import command

    spec = guarded(lambda: find_app(app))
    written = revision_template(spec.migrations)
    if written is not None:
        console.print(f"{spec.name}: wrote {written} (Plinth's revision template)")

    async def create(connection: AsyncConnection) -> None:
        def body(sync_connection: Any) -> None:
            config = migrations.alembic_config(spec.migrations, sync_connection)
            command.revision(config, message=message, autogenerate=autogenerate)

        await connection.run_sync(body)

    guarded(lambda: on_connection(spec, create, upgrade_first=autogenerate))
