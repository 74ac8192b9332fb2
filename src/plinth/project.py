"""Finding an app, and its database, from a directory.

An app directory is a Python package with this layout (``plinth init``
makes one; the reference apps in ``apps/`` follow it)::

    apps/translator/            the package `translator`
        main.py                 app: FastAPI, database: plinth.Database
        models.py               Base: the DeclarativeBase whose metadata is the schema
        migrations/env.py       plinth.migrations.run_env(Base.metadata)
        migrations/versions/

The CLI and the pytest plugin both start from this, so an app is found the
same way everywhere.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import URL
from sqlalchemy.engine import make_url

from plinth.errors import ConfigurationError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy import MetaData

    from plinth.db.database import Database
    from plinth.db.settings import DatabaseSettings
    from plinth.embedded.postgres import EmbeddedServer

__all__ = ["AppSpec", "find_app", "resolve_database_url"]


@dataclass(frozen=True)
class AppSpec:
    """Where an app lives; `load` imports it."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def migrations(self) -> Path:
        return self.path / "migrations"

    def importable(self) -> None:
        """Put the app's parent directory on ``sys.path`` (for env.py's imports too)."""
        parent = str(self.path.parent)
        if parent not in sys.path:
            sys.path.insert(0, parent)

    def _import(self, module: str) -> Any:
        self.importable()
        try:
            return importlib.import_module(f"{self.name}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name in (self.name, f"{self.name}.{module}"):
                raise ConfigurationError(
                    f"{str(self.path)!r} has no {module}.py: an app directory is a package "
                    f"with main.py (app, database) and models.py (Base)"
                ) from exc
            raise

    @property
    def app(self) -> FastAPI:
        return self._attribute("main", "app")  # type: ignore[no-any-return]

    @property
    def database(self) -> Database:
        return self._attribute("main", "database")  # type: ignore[no-any-return]

    @property
    def settings(self) -> DatabaseSettings:
        """Database settings read from the environment now, with the class of
        the app's `Database` settings: its own `DatabaseSettings` subclass, if
        it has one, brings its defaults (such as ``driver``)."""
        return type(self.database.settings).load()

    @property
    def metadata(self) -> MetaData:
        return self._attribute("models", "Base").metadata  # type: ignore[no-any-return]

    def _attribute(self, module: str, name: str) -> Any:
        found = getattr(self._import(module), name, None)
        if found is None:
            raise ConfigurationError(f"{self.name}.{module} defines no {name!r}")
        return found


def find_app(path: Path | str = ".") -> AppSpec:
    """The app at `path`; a one-line `ConfigurationError` if it is not one."""
    resolved = Path(path).resolve()
    if not (resolved / "__init__.py").is_file() or not (resolved / "main.py").is_file():
        raise ConfigurationError(
            f"{str(path)!r} is not a Plinth app: expected a package with __init__.py and "
            "main.py (pass --app apps/<name>)"
        )
    spec = AppSpec(resolved)
    spec.importable()
    return spec


@contextmanager
def resolve_database_url(
    settings: DatabaseSettings, app_dir: Path, *, for_migrations: bool = True
) -> Iterator[URL]:
    """The URL to work on: for migrations ``DATABASE_MIGRATION_URL`` or else
    ``DATABASE_URL`` (`DatabaseSettings.migrations_url`), otherwise
    ``DATABASE_URL``; unset, while the block runs, the app's own database on the
    embedded server of its project (created on first use).

    One server per project (`plinth.embedded.project_root`), one database per
    app on it, named after the app's package: ``plinth``, the app itself under
    uvicorn and the plain ``alembic`` command all find the same one. On exit
    the embedded server is stopped unless another process (another `plinth
    serve`, a test run) still uses it.
    """
    url = settings.migrations_url() if for_migrations else settings.database_url
    if url is not None:
        yield url
        return
    from plinth.db.scratch import app_database_name, ensure_database

    server = start_announced(app_dir)
    try:
        yield asyncio.run(ensure_database(make_url(server.url), app_database_name(app_dir)))
    finally:
        stop_announced(server)


def start_announced(project: Path) -> EmbeddedServer:
    """Start (or reuse) the embedded server and say so on stderr."""
    from plinth.embedded.postgres import start_embedded
    from plinth.embedded.process import announce

    server = start_embedded(project)
    announce("PostgreSQL", server.version, server.port, server.data_dir, server.started_here)
    return server


def stop_announced(server: EmbeddedServer) -> None:
    """Release the embedded server (stopped unless still in use), and say so."""
    from plinth.embedded.process import announce_release

    announce_release("PostgreSQL", server.port, server.release())
