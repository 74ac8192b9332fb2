"""Plinth's exceptions (driver errors become them in `plinth.driver_errors`).

The hierarchy::

    PlinthError
    ├── ConfigurationError          a setting is missing, malformed or unsafe
    │   └── EncryptionKeyError          encryption keys missing, malformed or not matching
    ├── DatabaseStateError          a Database used before start, or after close
    ├── DatabaseUnavailableError    PostgreSQL cannot be reached, or the connection
    │   │                           was lost                         (HTTP 503)
    │   └── DatabaseBusyError           no pooled connection came free in time (HTTP 503)
    ├── EmbeddedServerError         the embedded PostgreSQL failed to start or stop
    ├── ServiceStateError           a Cache or Storage used before start, or after close
    ├── CacheUnavailableError       Redis cannot be reached (after retries)
    ├── StorageUnavailableError     S3 cannot be reached, or refused the request
    ├── MigrationError              an Alembic operation failed
    └── DataError                   a statement was refused because of the data
        ├── NotFound                    no row matched                   (HTTP 404)
        ├── Conflict                    a unique constraint was violated (HTTP 409)
        ├── ConstraintViolation         a check, foreign key or not-null
        │                               constraint was violated          (HTTP 422)
        └── InvalidValue                a value does not fit its column:
                                        too long, out of range, malformed (HTTP 422)

Messages never contain a password: URLs are rendered with
``URL.render_as_string(hide_password=True)`` before they reach a message.
"""

from __future__ import annotations

from sqlalchemy.exc import DontWrapMixin

__all__ = [
    "CacheUnavailableError",
    "ConfigurationError",
    "Conflict",
    "ConstraintViolation",
    "DataError",
    "DatabaseBusyError",
    "DatabaseStateError",
    "DatabaseUnavailableError",
    "EmbeddedServerError",
    "EncryptionKeyError",
    "InvalidValue",
    "MigrationError",
    "NotFound",
    "PlinthError",
    "ServiceStateError",
    "StorageUnavailableError",
]


class PlinthError(Exception):
    """Base class of every error Plinth raises."""


class ConfigurationError(PlinthError, ValueError):
    """A setting is missing, malformed or unsafe; the message names the variable."""


class EncryptionKeyError(DontWrapMixin, ConfigurationError):
    """Encryption keys are missing or malformed, or none of them decrypts a stored value.

    Raised as is from inside a statement (SQLAlchemy does not wrap it in a
    `StatementError`, whose message would show the plaintext parameters).
    """


class DatabaseStateError(PlinthError, RuntimeError):
    """A `Database` was used in a state that does not allow it."""


class DatabaseUnavailableError(PlinthError, ConnectionError):
    """PostgreSQL could not be reached, or refused the connection."""


class DatabaseBusyError(DatabaseUnavailableError):
    """Every pooled connection stayed in use for ``DB_POOL_TIMEOUT`` seconds."""


class EmbeddedServerError(PlinthError, RuntimeError):
    """An embedded server (PostgreSQL, Valkey, SeaweedFS) could not be set up, started, stopped."""


class ServiceStateError(PlinthError, RuntimeError):
    """A `Cache` or `Storage` was used in a state that does not allow it."""


class CacheUnavailableError(PlinthError, ConnectionError):
    """Redis could not be reached, or refused the connection."""


class StorageUnavailableError(PlinthError, ConnectionError):
    """S3 could not be reached, or refused the request (credentials, bucket)."""


class MigrationError(PlinthError, RuntimeError):
    """An Alembic operation failed; the message names the revision."""


class DataError(PlinthError):
    """A statement was refused because of the data it carried.

    `exception_handlers` answer it with `status_code` and a JSON body
    ``{"detail": message}``, plus ``"constraint"`` when one is named.
    """

    status_code = 400
    """The HTTP status `exception_handlers` answer with (400 here; 404, 409, 422 below)."""

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint
        """The violated constraint's name (integrity errors), else None."""


class NotFound(DataError, LookupError):
    """No row matched."""

    status_code = 404


class Conflict(DataError):
    """A unique (or exclusion) constraint was violated."""

    status_code = 409


class ConstraintViolation(DataError):
    """A check, foreign key or not-null constraint was violated."""

    status_code = 422


class InvalidValue(DataError):
    """A value does not fit its column: too long, out of range, or malformed."""

    status_code = 422


# SQLSTATE classes: https://www.postgresql.org/docs/current/errcodes-appendix.html
