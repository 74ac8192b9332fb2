"""Plinth's exceptions, and the one place where driver errors are translated.

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

import socket
from typing import Any

from sqlalchemy import exc as sa_exc
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
    "translate_dbapi_error",
    "translate_outage",
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
    """A statement was refused because of the data it carried."""

    status_code = 400

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


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


# Connection exceptions (class 08), a server shutting down or starting (57P0x),
# too many connections (53300): the server is away or full, not the data wrong.
_OUTAGE_STATES = {"57P01", "57P02", "57P03", "57P05", "53300"}
# libpq's words for the same (psycopg reports a failed connection without a SQLSTATE).
_OUTAGE_FATAL = ("database system is", "too many clients", "connection slots are reserved")
_DRIVER_MODULES = ("sqlalchemy.", "asyncpg.", "psycopg.", "psycopg_pool.")


def _raised_by_driver(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__", "").startswith(_DRIVER_MODULES):
            return True
        traceback = traceback.tb_next
    return False


def translate_outage(exc: BaseException) -> DatabaseUnavailableError | None:
    """Return the 503 error that a driver or pool error stands for, or None.

    - the pool's checkout timeout (``DB_POOL_TIMEOUT``): `DatabaseBusyError`;
    - a connection lost (SQLAlchemy invalidated it), refused, reset or timed
      out, a server shutting down or starting up, too many connections:
      `DatabaseUnavailableError`.

    Anything else (a wrong password, a missing database, a bug) is None: it
    stays a server error. A plain ``ConnectionError``/``TimeoutError`` counts
    only when raised inside SQLAlchemy or a driver, not by other client code.
    """
    if isinstance(exc, DatabaseUnavailableError):
        return exc
    if isinstance(exc, sa_exc.TimeoutError):
        return DatabaseBusyError("database busy: no pooled connection came free in time")
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return DatabaseUnavailableError("database connection lost")
        orig = exc.orig
        sqlstate = _first([orig], ("sqlstate",), ("pgcode",))
        if sqlstate is not None:
            if sqlstate.startswith("08") or sqlstate in _OUTAGE_STATES:
                return DatabaseUnavailableError("database unavailable")
            return None
        if isinstance(orig, OSError | TimeoutError) or isinstance(
            getattr(orig, "__cause__", None), OSError | TimeoutError
        ):
            return DatabaseUnavailableError("database unreachable")
        if isinstance(exc, sa_exc.OperationalError) and exc.statement is None:
            # psycopg failed to connect: final if the server itself refused us.
            message = str(orig)
            if "FATAL:" not in message or any(hint in message for hint in _OUTAGE_FATAL):
                return DatabaseUnavailableError("database unreachable")
        return None
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror) and _raised_by_driver(exc):
        # asyncpg's connect raises these as they are (refused, reset, timed out).
        return DatabaseUnavailableError("database unreachable")
    return None
