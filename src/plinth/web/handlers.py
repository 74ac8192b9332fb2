"""FastAPI exception handlers: bad data is a 4xx with a JSON body, never a 500.

Pass `exception_handlers` to ``FastAPI(exception_handlers=...)``. Handlers are
wired at construction because Starlette builds its middleware stack before
the lifespan runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError

from plinth.errors import (
    CacheUnavailableError,
    DatabaseUnavailableError,
    DataError,
    StorageUnavailableError,
    translate_dbapi_error,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any

    from starlette.requests import Request
    from starlette.responses import Response

__all__ = ["exception_handlers"]


def _body(error: DataError) -> JSONResponse:
    content: dict[str, str] = {"detail": str(error)}
    if error.constraint:
        content["constraint"] = error.constraint
    return JSONResponse(content, status_code=error.status_code)


async def _data_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DataError)
    return _body(exc)


async def _driver_error(request: Request, exc: Exception) -> Response:
    error = translate_dbapi_error(exc)
    if error is not None:
        return _body(error)
    if isinstance(exc, IntegrityError):
        return JSONResponse({"detail": "integrity error"}, status_code=409)
    # Not the client's data: Starlette's error middleware logs it and answers 500.
    raise exc


async def _unavailable(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": "database unavailable"}, status_code=503)


async def _cache_unavailable(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": "cache unavailable"}, status_code=503)


async def _storage_unavailable(request: Request, exc: Exception) -> Response:
    return JSONResponse({"detail": "storage unavailable"}, status_code=503)


# Typed as FastAPI's parameter is, so apps pass it under mypy --strict.
exception_handlers: dict[
    int | type[Exception], Callable[[Request, Any], Coroutine[Any, Any, Response]]
] = {
    DataError: _data_error,
    # asyncpg's adapter raises plain DBAPIError for many data exceptions (22xxx).
    DBAPIError: _driver_error,
    DatabaseUnavailableError: _unavailable,
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
