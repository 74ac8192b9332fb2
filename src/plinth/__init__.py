"""Plinth: the async PostgreSQL foundation for FastAPI services.

The public API is what this module exports; everything else may change.
"""

from __future__ import annotations

from plinth import ddl as ddl
from plinth import migrations as migrations
from plinth.engine import Database as Database
from plinth.engine import Ping as Ping
from plinth.errors import ConfigurationError as ConfigurationError
from plinth.errors import Conflict as Conflict
from plinth.errors import ConstraintViolation as ConstraintViolation
from plinth.errors import DatabaseStateError as DatabaseStateError
from plinth.errors import DatabaseUnavailableError as DatabaseUnavailableError
from plinth.errors import DataError as DataError
from plinth.errors import EmbeddedServerError as EmbeddedServerError
from plinth.errors import MigrationError as MigrationError
from plinth.errors import NotFound as NotFound
from plinth.errors import PlinthError as PlinthError
from plinth.handlers import exception_handlers as exception_handlers
from plinth.health import health_router as health_router
from plinth.health import readiness as readiness
from plinth.settings import DatabaseSettings as DatabaseSettings

__all__ = [
    "ConfigurationError",
    "Conflict",
    "ConstraintViolation",
    "DataError",
    "Database",
    "DatabaseSettings",
    "DatabaseStateError",
    "DatabaseUnavailableError",
    "EmbeddedServerError",
    "MigrationError",
    "NotFound",
    "Ping",
    "PlinthError",
    "ddl",
    "exception_handlers",
    "health_router",
    "migrations",
    "readiness",
]

__version__ = "0.1.0"
