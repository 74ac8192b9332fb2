"""The ``plinth`` command: ``serve`` an app and manage its migrations (``db``).

Every command takes the app directory (``--app``, default: the current one),
reads ``DATABASE_URL`` (the embedded server when unset, outside production),
and turns a `PlinthError` into one line on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy import URL, text
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth import migrations
from plinth.engine import Database
from plinth.errors import PlinthError
from plinth.project import AppSpec, find_app, resolve_database_url
from plinth.settings import DatabaseSettings

__all__ = ["cli", "main"]

T = TypeVar("T")

cli = typer.Typer(
    name="plinth",
    help="The async PostgreSQL foundation for FastAPI.",
    no_args_is_help=True,
    # Locals in a traceback could include a DATABASE_URL with its password.
    pretty_exceptions_show_locals=False,
)
db = typer.Typer(
    help="Migrations: upgrade, downgrade, current, history, check, lint, reset, revision.",
    pretty_exceptions_show_locals=False,
)
cli.add_typer(db, name="db")
console = Console()
errors = Console(stderr=True)

AppOption = Annotated[
    Path, typer.Option("--app", help="The app directory (a package with main.py).")
]


def _fail(message: str) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def _on_connection(
    spec: AppSpec, action: Callable[[AsyncConnection], Awaitable[T]], *, upgrade_first: bool = False
) -> T:
    settings = _guarded(lambda: spec.settings)

    async def run(url: URL) -> T:
        async with (
            Database(settings.model_copy(update={"database_url": url})) as database,
            database.engine.connect() as connection,
        ):
            if upgrade_first:
                await migrations.upgrade(connection, spec.migrations)
            return await action(connection)

    with resolve_database_url(settings, spec.path) as url:
        return asyncio.run(run(url))


def _guarded(body: Callable[[], T]) -> T:
    try:
        return body()
    except PlinthError as exc:
        raise _fail(str(exc)) from None


@db.command()
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    app: AppOption = Path("."),
) -> None:
    """Upgrade the database (under an advisory lock: safe with many replicas)."""
    spec = _guarded(lambda: find_app(app))
    _guarded(
        lambda: _on_connection(spec, lambda c: migrations.upgrade(c, spec.migrations, revision))
    )
    console.print(f"{spec.name}: upgraded to {revision}")


@db.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="Target: -1, base, or a revision id.")],
    app: AppOption = Path("."),
) -> None:
    """Downgrade the database."""
    spec = _guarded(lambda: find_app(app))
    _guarded(
        lambda: _on_connection(spec, lambda c: migrations.downgrade(c, spec.migrations, revision))
    )
    console.print(f"{spec.name}: downgraded to {revision}")


@db.command()
def current(app: AppOption = Path(".")) -> None:
    """Show the revision the database is at."""
    spec = _guarded(lambda: find_app(app))
    revisions = _guarded(lambda: _on_connection(spec, migrations.current))
    head = _guarded(lambda: migrations.heads(spec.migrations))
    for revision in revisions or ("base",):
        marker = " (head)" if revision in head else ""
        console.print(f"{revision}{marker}")


@db.command()
def history(app: AppOption = Path(".")) -> None:
    """List the revisions, newest first."""
    from alembic import command

    spec = _guarded(lambda: find_app(app))
    config = _guarded(lambda: migrations.alembic_config(spec.migrations))
    command.history(config)


@db.command()
def check(app: AppOption = Path(".")) -> None:
    """Exit 1 unless there is one head and the models match the migrations.

    The comparison of the migration kit's test 3, in two scratch databases on
    the server: the database itself is not touched.
    """
    from plinth.kit import schema_drift

    spec = _guarded(lambda: find_app(app))
    head = _guarded(lambda: migrations.heads(spec.migrations))
    if len(head) != 1:
        raise _fail(f"{spec.name}: expected one head, found {len(head)}: {', '.join(head)}")
    metadata = _guarded(lambda: spec.metadata)
    settings = _guarded(lambda: spec.settings)

    def compare() -> Any:
        with resolve_database_url(settings, spec.path) as url:
            return asyncio.run(schema_drift(url, spec.migrations, metadata))

    found = _guarded(compare)
    if found:
        errors.print(f"{spec.name}: the models differ from the migrations.", highlight=False)
        errors.print(found.report(), highlight=False, markup=False)
        raise typer.Exit(1)
    console.print(f"{spec.name}: one head ({head[0]}), models match migrations")


@db.command("lint")
def lint_command(app: AppOption = Path(".")) -> None:
    """Report migrations that lock busy tables or break running code (squawk)."""
    from plinth.lint import lint

    spec = _guarded(lambda: find_app(app))
    findings = _guarded(lambda: lint(spec.migrations))
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
    spec = _guarded(lambda: find_app(app))
    settings = _guarded(lambda: spec.settings)
    if settings.app_env == "production" and not yes_really:
        raise _fail(
            "refusing to reset a production database (APP_ENV=production): it drops every "
            "table the migrations created, with its data; pass --yes-really to do it anyway"
        )

    async def run(connection: AsyncConnection) -> None:
        await migrations.downgrade(connection, spec.migrations, "base")
        await migrations.upgrade(connection, spec.migrations)

    _guarded(lambda: _on_connection(spec, run))
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

    spec = _guarded(lambda: find_app(app))

    async def create(connection: AsyncConnection) -> None:
        def body(sync_connection: Any) -> None:
            config = migrations.alembic_config(spec.migrations, sync_connection)
            command.revision(config, message=message, autogenerate=autogenerate)

        await connection.run_sync(body)

    _guarded(lambda: _on_connection(spec, create, upgrade_first=autogenerate))


@cli.command()
def doctor(app: AppOption = Path(".")) -> None:
    """Check the connection: server, SSL, role privileges, migrations, pool."""
    from rich.table import Table

    from plinth.security import inspect_connection

    spec = _guarded(lambda: find_app(app))
    settings = _guarded(lambda: spec.settings)

    async def inspect(connection: AsyncConnection) -> list[tuple[str, str, bool]]:
        security = await inspect_connection(connection)
        version = (await connection.execute(text("SHOW server_version"))).scalar_one()
        revisions = await migrations.current(connection)
        head = migrations.heads(spec.migrations)
        production = settings.app_env == "production"
        excess = ", ".join(security.excess_privileges) or "none"
        return [
            ("server", f"PostgreSQL {version}", True),
            ("ssl", security.ssl_version or "off", security.ssl or not production),
            (
                "role",
                f"{security.role} (extra privileges: {excess})",
                not (security.superuser and production),
            ),
            (
                "migrations",
                f"at {', '.join(revisions) or 'base'}, head {', '.join(head)}",
                sorted(revisions) == sorted(head),
            ),
            ("driver", connection.dialect.driver, True),
            ("pool", f"{settings.pool_size} + {settings.max_overflow} overflow", True),
        ]

    rows = _guarded(lambda: _on_connection(spec, inspect))
    table = Table(title=f"{spec.name}: {settings.redacted_url()} ({settings.app_env})")
    for column in ("check", "finding", "ok"):
        table.add_column(column)
    for name, finding, ok in rows:
        table.add_row(name, finding, "[green]yes[/]" if ok else "[red]no[/]")
    console.print(table)
    if not all(ok for _, _, ok in rows):
        raise typer.Exit(1)


@cli.command()
def serve(
    app: Annotated[Path, typer.Argument(help="The app directory, e.g. apps/translator.")] = Path(
        "."
    ),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
) -> None:
    """Migrate the app's database to head and serve the app with uvicorn."""
    import uvicorn

    spec = _guarded(lambda: find_app(app))
    # Not the app's settings: importing the app now would build its Database
    # from the environment before DATABASE_URL is set below.
    settings = _guarded(DatabaseSettings.load)
    try:
        with resolve_database_url(settings, spec.path) as url:
            # The app builds its Database from the environment when imported.
            os.environ["DATABASE_URL"] = url.render_as_string(hide_password=False)
            _on_connection(spec, migrations.current, upgrade_first=True)
            application = spec.app
            console.print(f"{spec.name}: database at head; serving on http://{host}:{port}")
            console.print(f"API docs: http://{host}:{port}/docs")
            # uvicorn re-raises SIGTERM once it has shut down; as SystemExit it
            # unwinds through this block, so the embedded server is stopped too.
            signal.signal(signal.SIGTERM, _exit_gracefully)
            uvicorn.run(application, host=host, port=port, log_level="info")
    except PlinthError as exc:
        raise _fail(str(exc)) from None


def _exit_gracefully(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli())
