"""Plinth: the async PostgreSQL foundation for FastAPI services.

The public API is what this module exports; everything else may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plinth import ddl as ddl
from plinth import migrations as migrations
from plinth.db.database import Database as Database
from plinth.db.settings import DatabaseSettings as DatabaseSettings
from plinth.errors import CacheUnavailableError as CacheUnavailableError
from plinth.errors import ConfigurationError as ConfigurationError
from plinth.errors import Conflict as Conflict
from plinth.errors import ConstraintViolation as ConstraintViolation
from plinth.errors import DatabaseBusyError as DatabaseBusyError
from plinth.errors import DatabaseStateError as DatabaseStateError
from plinth.errors import DatabaseUnavailableError as DatabaseUnavailableError
from plinth.errors import DataError as DataError
from plinth.errors import EmbeddedServerError as EmbeddedServerError
from plinth.errors import EncryptionKeyError as EncryptionKeyError
from plinth.errors import InvalidValue as InvalidValue
from plinth.errors import MigrationError as MigrationError
from plinth.errors import NotFound as NotFound
from plinth.errors import PlinthError as PlinthError
from plinth.errors import ServiceStateError as ServiceStateError
from plinth.errors import StorageUnavailableError as StorageUnavailableError
from plinth.lifecycle import Ping as Ping
from plinth.migrations.guard import MigrationSettings as MigrationSettings
from plinth.repository.base import Repository as Repository
from plinth.repository.pagination import Page as Page
from plinth.repository.reads import Reads as Reads
from plinth.tasks import CelerySettings as CelerySettings
from plinth.tasks import WorkerLoop as WorkerLoop
from plinth.web.handlers import exception_handlers as exception_handlers
from plinth.web.health import health_router as health_router
from plinth.web.health import readiness as readiness
from plinth.web.limits import BodySizeLimit as BodySizeLimit
from plinth.web.params import BoundedJson as BoundedJson
from plinth.web.params import BoundedJsonObject as BoundedJsonObject
from plinth.web.params import Int4 as Int4
from plinth.web.params import Int4Id as Int4Id
from plinth.web.params import Int8 as Int8
from plinth.web.params import Int8Id as Int8Id
from plinth.web.params import Limit as Limit
from plinth.web.params import Offset as Offset
from plinth.web.params import PgText as PgText
from plinth.web.params import limit_bounds as limit_bounds
from plinth.web.tenancy import tenant_header as tenant_header

__all__ = [
    "BodySizeLimit",
    "BoundedJson",
    "BoundedJsonObject",
    "Cache",
    "CacheScope",
    "CacheSettings",
    "CacheUnavailableError",
    "CelerySettings",
    "ConfigurationError",
    "Conflict",
    "ConstraintViolation",
    "DataError",
    "Database",
    "DatabaseBusyError",
    "DatabaseSettings",
    "DatabaseStateError",
    "DatabaseUnavailableError",
    "EmbeddedServerError",
    "EncryptedText",
    "EncryptionKeyError",
    "Int4",
    "Int4Id",
    "Int8",
    "Int8Id",
    "InvalidValue",
    "Keyring",
    "Limit",
    "MigrationError",
    "MigrationSettings",
    "NotFound",
    "Offset",
    "Page",
    "PgText",
    "Ping",
    "PlinthError",
    "Reads",
    "Repository",
    "ServiceStateError",
    "Storage",
    "StorageSettings",
    "StorageUnavailableError",
    "WorkerLoop",
    "ddl",
    "exception_handlers",
    "health_router",
    "limit_bounds",
    "migrations",
    "readiness",
    "tenant_header",
]

__version__ = "0.1.0"

if TYPE_CHECKING:
    from plinth.cache import Cache as Cache
    from plinth.cache import CacheScope as CacheScope
    from plinth.cache import CacheSettings as CacheSettings
    from plinth.encryption import EncryptedText as EncryptedText
    from plinth.encryption import Keyring as Keyring
    from plinth.storage import Storage as Storage
    from plinth.storage import StorageSettings as StorageSettings


def __getattr__(name: str) -> Any:
    # These need the `crypto` extra (cryptography): imported only when used.
    if name in ("EncryptedText", "Keyring"):
        from plinth import encryption

        return getattr(encryption, name)
    # The `redis` and `s3` extras, likewise.
    if name in ("Cache", "CacheScope", "CacheSettings"):
        from plinth import cache

        return getattr(cache, name)
    if name in ("Storage", "StorageSettings"):
        from plinth import storage

        return getattr(storage, name)
    raise AttributeError(f"module 'plinth' has no attribute {name!r}")
