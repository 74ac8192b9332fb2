"""What every ``plinth`` command shares: output, the --app option, errors,
and a connection to the app's database (embedded when DATABASE_URL is unset)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from sqlalchemy import URL
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth import migrations
from plinth.db.database import Database
from plinth.errors import PlinthError
from plinth.project import AppSpec, resolve_database_url

__all__ = ["AppOption", "console", "errors", "fail", "guarded", "on_connection"]

T = TypeVar("T")

console = Console()
errors = Console(stderr=True)

AppOption = Annotated[
    Path, typer.Option("--app", help="The app directory (a package with main.py).")
]


def fail(message: str) -> typer.Exit:
    """Print `message` as one error line; return the exit to raise."""
    errors.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def guarded(body: Callable[[], T]) -> T:
    """Run `body`; a `PlinthError` becomes one line on stderr and exit code 1."""
    try:
        return body()
    except PlinthError as exc:
        raise fail(str(exc)) from None


def on_connection(
    spec: AppSpec,
    action: Callable[[AsyncConnection], Awaitable[T]],
    *,
    upgrade_first: bool = False,
    for_migrations: bool = True,
) -> T:
    """Run `action` on a connection to the app's database, in a new event loop:
    the migration URL unless `for_migrations` is False (then the app's own)."""
    settings = guarded(lambda: spec.settings)

    async def run(url: URL) -> T:
        async with (
            Database(settings.model_copy(update={"database_url": url})) as database,
            database.engine.connect() as connection,
        ):
            if upgrade_first:
                await migrations.upgrade(connection, spec.migrations)
            return await action(connection)

    with resolve_database_url(settings, spec.path, for_migrations=for_migrations) as url:
        return asyncio.run(run(url))
