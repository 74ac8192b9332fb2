"""``plinth doctor``: server, SSL, role privileges, migrations, driver, pool."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from plinth import migrations
from plinth.cli._common import AppOption, console, guarded, on_connection
from plinth.db.settings import hosts
from plinth.project import find_app

__all__ = ["doctor"]


async def _pooler(connection: AsyncConnection, setting: str) -> tuple[str, str, bool]:
    """What answers on the URL's port: PostgreSQL itself, or a pooler or proxy
    (the server reports another port than the one we connected to)."""
    server_port = (await connection.execute(text("SELECT inet_server_port()"))).scalar()
    # Several hosts (failover): whichever answered, its port is one of theirs.
    url_ports = sorted({port or 5432 for _, port in hosts(connection.engine.url)})
    if server_port is None or server_port in url_ports:
        return ("pooler", f"none seen (DB_POOLER={setting})", True)
    ports = ", ".join(map(str, url_ports))
    seen = f"a pooler or proxy answers on port {ports} (PostgreSQL: {server_port})"
    if setting == "none":
        return ("pooler", f"{seen}; PgBouncer in transaction mode needs "
                "DB_POOLER=pgbouncer-transaction", True)  # fmt: skip
    return ("pooler", f"{seen}; DB_POOLER={setting}", True)


def doctor(app: AppOption = Path(".")) -> None:
    """Check the connection: server, SSL, role privileges, migrations, pool."""
    from rich.table import Table

    from plinth.db.security import inspect_connection

    spec = guarded(lambda: find_app(app))
    settings = guarded(lambda: spec.settings)

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
            await _pooler(connection, settings.pooler),
        ]

    rows = guarded(lambda: on_connection(spec, inspect, for_migrations=False))
    table = Table(title=f"{spec.name}: {settings.redacted_url()} ({settings.app_env})")
    for column in ("check", "finding", "ok"):
        table.add_column(column)
    for name, finding, ok in rows:
        table.add_row(name, finding, "[green]yes[/]" if ok else "[red]no[/]")
    console.print(table)
    if not all(ok for _, _, ok in rows):
        raise typer.Exit(1)
