"""Exceptions raised by Plinth.

PlinthError
├── ConfigurationError
├── DatabaseStateError
├── DatabaseUnavailableError
├── MigrationError
├── EmbeddedServerError
└── DataError
    ├── NotFound
    ├── Conflict
    └── ConstraintViolation
"""

# RECONSTRUCTED by the embedded.py helper session: it accidentally overwrote the
# lead's errors.py (the file appeared between its existence check and its write).
# The names below are rebuilt only from what other modules import and use;
# the lead should replace this file with the original.

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "Conflict",
    "ConstraintViolation",
    "DataError",
    "DatabaseStateError",
    "DatabaseUnavailableError",
    "EmbeddedServerError",
    "MigrationError",
    "NotFound",
    "PlinthError",
    "translate_dbapi_error",
]


class PlinthError(Exception):
    """Base class of every error Plinth raises."""


class ConfigurationError(PlinthError):
    """Settings or the project layout are invalid."""


class DatabaseStateError(PlinthError):
    """The `Database` is used in a state that does not allow it."""


class DatabaseUnavailableError(PlinthError):
    """The database cannot be reached."""


class MigrationError(PlinthError):
    """A migration command failed."""


class EmbeddedServerError(PlinthError):
    """The embedded PostgreSQL server could not be set up, started or stopped."""


class DataError(PlinthError):
    """Bad data from the client: answered with a 4xx, never a 500."""

    status_code = 400

    def __init__(self, detail: str, *, constraint: str | None = None) -> None:
        super().__init__(detail)
        self.constraint = constraint


class NotFound(DataError):
    """The requested row does not exist."""

    status_code = 404


class Conflict(DataError):
    """A unique constraint rejected the write."""

    status_code = 409


class ConstraintViolation(DataError):
    """A foreign key, not-null, check or exclusion constraint rejected the write."""

    status_code = 422


_SQLSTATES: dict[str, tuple[type[DataError], str]] = {
    "23505": (Conflict, "duplicate value"),
    "23P01": (Conflict, "conflicting value"),
    "23503": (ConstraintViolation, "referenced row does not exist"),
    "23502": (ConstraintViolation, "missing required value"),
    "23514": (ConstraintViolation, "value fails a check"),
}


def translate_dbapi_error(exc: BaseException) -> DataError | None:
    """The `DataError` for a driver integrity error, or None if it is not one."""
    seen: list[Any] = [exc, getattr(exc, "orig", None)]
    seen.append(getattr(seen[1], "__cause__", None))
    sqlstate = next(
        (
            code
            for err in seen
            for code in (getattr(err, "sqlstate", None), getattr(err, "pgcode", None))
            if isinstance(code, str)
        ),
        None,
    )
    if sqlstate not in _SQLSTATES:
        return None
    constraint = next(
        (
            name
            for err in seen
            for name in (
                getattr(err, "constraint_name", None),
                getattr(getattr(err, "diag", None), "constraint_name", None),
            )
            if isinstance(name, str)
        ),
        None,
    )
    cls, detail = _SQLSTATES[sqlstate]
    return cls(detail, constraint=constraint)
