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

import re
from collections.abc import Iterator
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
    "2201W": "LIMIT must not be negative",
    "2201X": "OFFSET must not be negative",
}
# The bounds of PostgreSQL's integer types, by the name its messages use.
_INTEGER_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, SQLAlchemy's `.orig`, and the causes behind them."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [getattr(current, "orig", None), current.__cause__]


# What a placeholder stands for: `LIMIT $1`, `col = $2`, `col IN ($3, ...)`.
_KEYWORD_BEFORE = re.compile(r"\b(LIMIT|OFFSET)\s+$", re.IGNORECASE)
_COLUMN_BEFORE = re.compile(
    r"\b(\w+)\s*(?:=|<>|!=|<=|>=|<|>|\bI?LIKE\b|\bIN\b)\s*[(\s]*$", re.IGNORECASE
)
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+\S+\s*\(([^)]*)\)\s*VALUES\s*", re.IGNORECASE)


def _elements(values: str) -> list[str]:
    """The top-level elements of `(a, b), (c, d)`, flattened: a, b, c, d."""
    elements, current, depth = [], "", 0
    for char in values:
        if char == "(":
            depth += 1
            if depth == 1:
                continue
        elif char == ")":
            depth -= 1
            if depth == 0:
                elements.append(current)
                current = ""
                continue
        elif char == "," and depth == 1:
            elements.append(current)
            current = ""
            continue
        if depth >= 1:
            current += char
    return elements


def _placeholder_name(statement: str, placeholder: str) -> str | None:
    """The column (or LIMIT / OFFSET) that a placeholder of a statement stands for."""
    pattern = re.escape(placeholder) + (r"(?!\d)" if placeholder[-1].isdigit() else "")
    found = re.search(pattern, statement)
    if found is None:
        return None
    before = statement[: found.start()]
    keyword = _KEYWORD_BEFORE.search(before)
    if keyword:
        return keyword.group(1).upper()
    insert = _INSERT.match(statement)
    if insert:
        columns = [column.strip().strip('"') for column in insert.group(1).split(",")]
        for index, element in enumerate(_elements(statement[insert.end() :])):
            if re.search(pattern, element):
                return columns[index % len(columns)]
    column = _COLUMN_BEFORE.search(before)
    if column:
        return column.group(1).strip('"')
    return None


def _parameters(exc: BaseException) -> list[tuple[str, Any]]:
    """A failed statement's parameters as (placeholder, value), in either paramstyle."""
    for link in _chain(exc):
        params = getattr(link, "params", None)
        if isinstance(params, dict):
            return [(f"%({key})s", value) for key, value in params.items()]
        if isinstance(params, list | tuple):
            if params and isinstance(params[0], dict | list | tuple):  # executemany
                return [item for one in params for item in _parameters_of(one)]
            return _parameters_of(params)
    return []


def _parameters_of(params: Any) -> list[tuple[str, Any]]:
    if isinstance(params, dict):
        return [(f"%({key})s", value) for key, value in params.items()]
    return [(f"${index}", value) for index, value in enumerate(params, start=1)]


def _statement(exc: BaseException) -> str:
    for link in _chain(exc):
        statement = getattr(link, "statement", None)
        if isinstance(statement, str):
            return statement
    return ""


def _names(exc: BaseException, placeholders: list[str]) -> str:
    """ " for 'a', 'b'" naming the columns behind the placeholders, or "" if unknown."""
    statement = _statement(exc)
    names: list[str] = []
    for placeholder in placeholders:
        name = _placeholder_name(statement, placeholder)
        if (
            name is None
            and placeholder.startswith("%(")
            and not re.match(r"%\(param_\d+\)s", placeholder)
        ):
            name = re.sub(r"_\d+$", "", placeholder[2:-2])  # the bind's own name
        if name is not None and name not in names:
            names.append(name)
    return (" for " + ", ".join(repr(name) for name in names)) if names else ""


def _culprits(exc: BaseException, wrong: Any) -> list[str]:
    """The placeholders whose values `wrong(value)` finds at fault (values never shown)."""
    return [placeholder for placeholder, value in _parameters(exc) if wrong(value)]


def _has_nul(value: Any) -> bool:
    return isinstance(value, str) and "\x00" in value


def _has_surrogate(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _refused_by_the_driver(exc: BaseException) -> InvalidValue | None:
    """A value that the driver refused to send: it never reached the server.

    asyncpg raises its `DataError` ("invalid input for query argument $N")
    from the `OverflowError` or `UnicodeEncodeError` of its encoder; psycopg
    refuses NUL characters with a `DataError` that has no SQLSTATE, and lets
    a `UnicodeEncodeError` out unwrapped. No message repeats the value.
    """
    chain = list(_chain(exc))
    argument = None
    for link in chain:
        found = re.match(r"invalid input for query argument (\$\d+)", str(link))
        if found and type(link).__module__.startswith("asyncpg"):  # refused by its encoder
            argument = found.group(1)
    if any(
        isinstance(link, UnicodeEncodeError) and link.reason == "surrogates not allowed"
        for link in chain
    ):
        placeholders = [argument] if argument else _culprits(exc, _has_surrogate)
        named = _names(exc, placeholders)
        return InvalidValue(f"text with a character that cannot be stored{named}")
    if any(
        type(link).__module__.startswith("psycopg") and "NUL (0x00)" in str(link) for link in chain
    ):
        named = _names(exc, _culprits(exc, _has_nul))
        return InvalidValue(f"text with a NUL character{named}")
    if argument is None:
        return None
    named = _names(exc, [argument])
    if any(isinstance(link, OverflowError) for link in chain):
        return InvalidValue(f"number out of range{named}")
    if isinstance(chain[-1], ValueError):
        return InvalidValue(f"invalid value{named}")
    return None  # a TypeError behind it: the code passed the wrong type, not the client


def _out_of_range(exc: BaseException, message: str) -> InvalidValue:
    """22003: name the integer parameters outside the range the server named."""
    for type_name, (low, high) in _INTEGER_RANGES.items():
        if message.startswith(f"{type_name} out of range"):
            named = _names(
                exc,
                _culprits(
                    exc,
                    lambda v, low=low, high=high: (
                        isinstance(v, int) and not isinstance(v, bool) and not low <= v <= high
                    ),
                ),
            )
            return InvalidValue(f"number out of range{named}")
    return InvalidValue(_INVALID_STATES["22003"])


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
    translated, whether the server refused them (by SQLSTATE) or the driver
    did before sending them (an integer beyond its type, a NUL character, a
    lone surrogate); anything else is not the caller's data at fault and
    should stay a server error. Messages name the column, or LIMIT / OFFSET,
    when the statement shows it, and never the value.
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
    refused = _refused_by_the_driver(exc)
    if refused is not None:
        return refused
    if sqlstate == "22021" and (nul := _culprits(exc, _has_nul)):
        return InvalidValue(f"text with a NUL character{_names(exc, nul)}")
    if sqlstate == "22003":
        return _out_of_range(exc, str(getattr(orig, "__cause__", None) or orig or exc))
    if sqlstate in _INVALID_STATES:
        return InvalidValue(_INVALID_STATES[sqlstate])
    return None
