"""The one place where driver errors become Plinth's: bad data, or an outage.

`translate_dbapi_error` turns what the client's data caused (a violated
constraint, a value that does not fit its column, refused by the server or by
the driver's encoder before it) into a `DataError`; `translate_outage` turns
a database that is away or busy into a `DatabaseUnavailableError`. Anything
else is not translated: it stays a logged 500. Messages name the column or
constraint, never the value.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

from sqlalchemy import exc as sa_exc

from plinth.errors import (
    Conflict,
    ConstraintViolation,
    DatabaseBusyError,
    DatabaseUnavailableError,
    DataError,
    InvalidValue,
)

__all__ = [
    "TRY_LATER_MESSAGES",
    "no_host_matches",
    "translate_dbapi_error",
    "translate_outage",
]

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


_NAMED_CONSTRAINT = re.compile(r'constraint "([^"]+)"')
_SHARD_ID_SUFFIX = re.compile(r"_\d+$")
_RELAYED_BY_CITUS = "while executing command on"


def _relayed_constraint(candidates: list[Any]) -> str | None:
    # Citus relays a worker's error with its message, detail and context but
    # without the constraint field, and the message names the shard's
    # constraint: the table's name with "_<shard id>" appended.
    message = _first(candidates, ("message",), ("diag", "message_primary"))
    context = _first(candidates, ("context",), ("diag", "context"))
    if message is None or context is None or _RELAYED_BY_CITUS not in context:
        return None
    named = _NAMED_CONSTRAINT.search(message)
    return _SHARD_ID_SUFFIX.sub("", named[1]) if named else None


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
    if constraint is None and sqlstate in (*_CONFLICT_STATES, *_VIOLATION_STATES):
        constraint = _relayed_constraint(candidates)
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


# Connection exceptions (class 08), a server shutting down or starting (57P0x),
# too many connections (53300): the server is away or full, not the data wrong.
_OUTAGE_STATES = {"57P01", "57P02", "57P03", "57P05", "53300"}
# libpq's words for "try again later" (psycopg reports a failed connection without
# a SQLSTATE): the server is starting or stopping, or has no connection slot left.
TRY_LATER_MESSAGES = ("database system is", "too many clients", "connection slots are reserved")
_DRIVER_MODULES = ("sqlalchemy.", "asyncpg.", "psycopg.", "psycopg_pool.")


def _raised_by_driver(exc: BaseException) -> bool:
    traceback = exc.__traceback__
    while traceback is not None:
        if traceback.tb_frame.f_globals.get("__name__", "").startswith(_DRIVER_MODULES):
            return True
        traceback = traceback.tb_next
    return False


def no_host_matches(exc: BaseException) -> bool:
    """asyncpg's "None of the hosts match the target attribute requirement": with
    several hosts and ``target_session_attrs=read-write``, none is writable (yet),
    as during a failover. (By name: this module imports no driver.)"""
    return any(type(error).__name__ == "TargetServerAttributeNotMatched" for error in _chain(exc))


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
        if no_host_matches(exc):
            return DatabaseUnavailableError("database unavailable")
        if isinstance(exc, sa_exc.OperationalError) and exc.statement is None:
            # psycopg failed to connect: final if the server itself refused us.
            message = str(orig)
            if "FATAL:" not in message or any(hint in message for hint in TRY_LATER_MESSAGES):
                return DatabaseUnavailableError("database unreachable")
        return None
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror) and _raised_by_driver(exc):
        # asyncpg's connect raises these as they are (refused, reset, timed out).
        return DatabaseUnavailableError("database unreachable")
    return None
