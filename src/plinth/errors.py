"""Plinth's exceptions, and the one place where driver errors are translated.

The hierarchy::

    PlinthError
    ├── ConfigurationError          a setting is missing, malformed or unsafe
    │   └── EncryptionKeyError          encryption keys missing, malformed or not matching
    ├── DatabaseStateError          a Database used before start, or after close
    ├── DatabaseUnavailableError    PostgreSQL cannot be reached (after retries)
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

from typing import Any

from sqlalchemy.exc import DontWrapMixin

__all__ = [
    "CacheUnavailableError",
    "ConfigurationError",
    "Conflict",
    "ConstraintViolation",
    "DataError",
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
    "translate_dbapi_error",
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


class EmbeddedServerError(PlinthError, RuntimeError):
    """The embedded PostgreSQL server could not be set up, started or stopped."""


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
_CONFLICT_STATES = {"23505": "unique", "23P01": "exclusion"}
_VIOLATION_STATES = {"23503": "foreign key", "23514": "check", "23502": "not-null"}
_INVALID_STATES = {
    "22001": "value too long for its column",
    "22003": "number out of range for its column",
    "22P02": "invalid input syntax for its column's type",
    "22007": "invalid date or time",
    "22008": "date or time out of range",
    "22021": "invalid byte sequence",
    "22P05": "character cannot be stored",
}


def _first(candidates: list[Any], *paths: tuple[str, ...]) -> str | None:
    for candidate in candidates:
        for path in paths:
            value = candidate
            for name in path:
                value = getattr(value, name, None)
            if isinstance(value, str):
                return value
    return None


def translate_dbapi_error(exc: BaseException) -> DataError | None:
    """Return the `DataError` that a driver error stands for, or None.

    Only integrity violations and values that do not fit their column are
    translated; anything else is not the caller's data at fault and should
    stay a server error.
    """
    # psycopg puts `sqlstate` and `diag.constraint_name` on the DBAPI error;
    # SQLAlchemy's asyncpg adapter puts `sqlstate` there and keeps the asyncpg
    # exception, which has `constraint_name`, as its cause.
    orig = getattr(exc, "orig", None)
    candidates = [exc, orig, getattr(orig, "__cause__", None)]
    sqlstate = _first(candidates, ("sqlstate",), ("pgcode",))
    constraint = _first(candidates, ("constraint_name",), ("diag", "constraint_name"))
    named = f" {constraint!r}" if constraint else ""
    if sqlstate in _CONFLICT_STATES:
        kind = _CONFLICT_STATES[sqlstate]
        return Conflict(f"{kind} constraint{named} violated", constraint=constraint)
    if sqlstate in _VIOLATION_STATES:
        kind = _VIOLATION_STATES[sqlstate]
        return ConstraintViolation(f"{kind} constraint{named} violated", constraint=constraint)
    if sqlstate in _INVALID_STATES:
        return InvalidValue(_INVALID_STATES[sqlstate])
    return None
