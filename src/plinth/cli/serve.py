"""``plinth serve``: migrate to head, then serve the app with uvicorn."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from plinth import migrations
from plinth.cli._common import console, fail, guarded, on_connection
from plinth.db.settings import DatabaseSettings
from plinth.errors import PlinthError
from plinth.project import find_app, resolve_database_url

__all__ = ["serve"]


def serve(
    app: Annotated[Path, typer.Argument(help="The app directory, e.g. apps/translator.")] = Path(
        "."
    ),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
) -> None:
    """Migrate the app's database to head and serve the app with uvicorn."""
    import uvicorn

    spec = guarded(lambda: find_app(app))
    # Not the app's settings: importing the app now would build its Database
    # from the environment before DATABASE_URL is set below.
    settings = guarded(DatabaseSettings.load)
    try:
        with resolve_database_url(settings, spec.path, for_migrations=False) as url:
            # The app builds its Database from the environment when imported.
            os.environ["DATABASE_URL"] = url.render_as_string(hide_password=False)
            # On DATABASE_MIGRATION_URL when set: past a pooler, or as the owner role.
            on_connection(spec, migrations.current, upgrade_first=True)
            application = spec.app
            console.print(f"{spec.name}: database at head; serving on http://{host}:{port}")
            console.print(f"API docs: http://{host}:{port}/docs")
            # uvicorn re-raises SIGTERM once it has shut down; as SystemExit it
            # unwinds through this block, so the embedded server is stopped too.
            signal.signal(signal.SIGTERM, _exit_gracefully)
            uvicorn.run(application, host=host, port=port, log_level="info")
    except PlinthError as exc:
        raise fail(str(exc)) from None


def _exit_gracefully(signum: int, frame: object) -> None:
    raise SystemExit(0)
