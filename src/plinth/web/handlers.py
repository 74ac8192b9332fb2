"""FastAPI exception handlers: bad data is a 4xx with a JSON body, never a 500.

A database that is away (refused, lost, restarting) or busy (no pooled
connection came free within ``DB_POOL_TIMEOUT``) is a 503 with a JSON body and
a ``Retry-After`` header: a handled response, so the client's keep-alive
connection stays open.

Pass `exception_handlers` to ``FastAPI(exception_handlers=...)``. Handlers are
wired at construction because Starlette builds its middleware stack before
the lifespan runs.
"""

from __future__ import annotations

import json
import socket
from typing import TYPE_CHECKING, Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from plinth.driver_errors import translate_dbapi_error, translate_outage
from plinth.errors import (
    CacheUnavailableError,
    DatabaseBusyError,
    DatabaseUnavailableError,
    DataError,
    StorageUnavailableError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["RETRY_AFTER_SECONDS", "exception_handlers"]

RETRY_AFTER_SECONDS = 1
"""The ``Retry-After`` of a database 503: a restart or a burst is over in seconds."""


def _body(error: DataError) -> JSONResponse:
    content: dict[str, str] = {"detail": str(error)}
    if error.constraint:
        content["constraint"] = error.constraint
    return JSONResponse(content, status_code=error.status_code)


async def _data_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DataError)
    return _body(exc)


class _AsciiJSONResponse(JSONResponse):
    """JSON escaped to ASCII: a lone surrogate in a location renders as ``\\ud800``."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422, without the rejected input: no request data goes back out.

    FastAPI's own handler echoes each invalid value (``input``), and fails
    with a 500 when that value holds a lone surrogate.
    """
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"type": error.get("type"), "loc": list(error.get("loc", ())), "msg": error.get("msg")}
        for error in exc.errors()
    ]
    return _AsciiJSONResponse({"detail": errors}, status_code=422)


async def _driver_error(request: Request, exc: Exception) -> Response:
    error = translate_dbapi_error(exc)
    if error is not None:
        return _body(error)
    outage = translate_outage(exc)
    if outage is not None:
        return _outage_body(outage)
    if isinstance(exc, IntegrityError):
        return JSONResponse({"detail": "integrity error"}, status_code=409)
    # Not the client's data: Starlette's error middleware logs it and answers 500.
    raise exc


def _outage_body(error: DatabaseUnavailableError) -> JSONResponse:
    detail = "database busy" if isinstance(error, DatabaseBusyError) else "database unavailable"
    return JSONResponse(
        {"detail": detail}, status_code=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)}
    )


async def _unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DatabaseUnavailableError)
    return _outage_body(exc)


async def _outage(request: Request, exc: Exception) -> Response:
    # The pool's checkout timeout, or a connection refused/reset/timed out in the driver.
    error = translate_outage(exc)
    if error is None:
        raise exc  # not the database's: Starlette logs it and answers 500
    return _outage_body(error)


async def _cache_unavailable(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": "cache unavailable"}, status_code=503)


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": "storage unavailable"}, status_code=503)


# Typed as FastAPI's parameter is, so apps pass it under mypy --strict.
exception_handlers: dict[
    int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]
] = {
    RequestValidationError: _validation_error,
    DataError: _data_error,
    # asyncpg's adapter raises plain DBAPIError for many data exceptions (22xxx).
    DBAPIError: _driver_error,
    # A value refused before it reached the driver (a bind processor failed)...
    StatementError: _driver_error,
    # ...or by psycopg's encoder, which lets a lone surrogate's error out unwrapped.
    UnicodeEncodeError: _driver_error,
    DatabaseUnavailableError: _unavailable,
    PoolTimeoutError: _outage,
    ConnectionError: _outage,
    TimeoutError: _outage,
    socket.gaierror: _outage,
    CacheUnavailableError: _cache_unavailable,
    StorageUnavailableError: _storage_unavailable,
}
"""Pass to ``FastAPI(exception_handlers=exception_handlers)``.

Bad data is a 4xx with a JSON body, never a 500: `DataError` and its subclasses are
answered with their `status_code` (`NotFound` 404, `Conflict` 409, `ConstraintViolation`
and `InvalidValue` 422, others 400) and ``{"detail": ..., "constraint": ...}``, which
names the constraint, never the values; a driver's integrity or data error that escaped
a repository is translated the same way. `DatabaseUnavailableError`,
`CacheUnavailableError` and `StorageUnavailableError` are 503. Any other error stays a
logged 500.
"""
