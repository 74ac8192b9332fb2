"""``plinth serve``: migrate to head, then serve the app with uvicorn."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from plinth import migrations
from plinth.cli._common import console, fail, guarded, on_connection
from plinth.db.settings import DatabaseSettings
from plinth.errors import PlinthError
from plinth.project import AppSpec, find_app, resolve_database_url

__all__ = ["serve"]


def serve(
    app: Annotated[Path, typer.Argument(help="The app directory, e.g. apps/translator.")] = Path(
        "."
    ),
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    worker: Annotated[
        bool,
        typer.Option(
            "--worker",
            help="Also run the app's Celery worker (celery -A <app>.tasks worker), "
            "on the same database; for development.",
        ),
    ] = False,
) -> None:
    """Migrate the app's database to head and serve the app with uvicorn."""
    import uvicorn

    spec = guarded(lambda: find_app(app))
    tasks = worker_module(spec) if worker else None
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
            celery = start_worker(spec, tasks) if tasks is not None else None
            try:
                uvicorn.run(application, host=host, port=port, log_level="info")
            finally:
                if celery is not None:
                    stop_worker(celery)
    except PlinthError as exc:
        raise fail(str(exc)) from None


def worker_module(spec: AppSpec) -> str:
    """The module holding the app's Celery app, ``<app>.tasks``; exit 1 if there is none."""
    if importlib.util.find_spec("celery") is None:
        raise fail("--worker needs Celery: pip install 'plinth-pg[celery]'")
    if not (spec.path / "tasks.py").is_file():
        raise fail(f"--worker: {str(spec.path)!r} has no tasks.py (the module with the Celery app)")
    return f"{spec.name}.tasks"


def start_worker(spec: AppSpec, module: str) -> subprocess.Popen[bytes]:
    """``celery -A <module> worker`` in a subprocess, with this process's environment
    (``DATABASE_URL`` included, so it uses the database just migrated)."""
    parent = str(spec.path.parent)
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([parent, path]) if path else parent}
    command = [sys.executable, "-m", "celery", "-A", module, "worker", "--loglevel", "INFO"]
    # One worker beside one app: no neighbours to synchronise with at start-up.
    command += ["--without-mingle", "--without-gossip"]
    console.print(f"{spec.name}: starting the worker: celery -A {module} worker")
    return subprocess.Popen([*command, "--concurrency", "2"], env=env)


def stop_worker(process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """A warm shutdown (SIGTERM: running tasks finish), then a kill after `timeout` s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _exit_gracefully(signum: int, frame: object) -> None:
    raise SystemExit(0)
