"""``GET /health``: PostgreSQL, Redis and S3, checked at once, each by name.

503 names what is down (``{"down": ["redis"]}``) and why in a word; the
details, which name hosts, go to the log, never to the response.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pdftranslate.db import CacheDep, DatabaseDep, StorageDep
from plinth import (
    CacheUnavailableError,
    DatabaseUnavailableError,
    Ping,
    PlinthError,
    StorageUnavailableError,
)

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

TIMEOUT = 2.0
_UNREACHABLE = (DatabaseUnavailableError, CacheUnavailableError, StorageUnavailableError)


async def _check(name: str, ping: Awaitable[Ping]) -> dict[str, Any]:
    try:
        result = await ping
    except PlinthError as exc:
        logger.warning("health: %s is down: %s", name, exc)
        reason = "unreachable" if isinstance(exc, _UNREACHABLE) else "not started"
        return {"status": "down", "reason": reason}
    return {"status": "up", "latency_ms": result.latency_ms}


@router.get("/health")
async def health(database: DatabaseDep, cache: CacheDep, storage: StorageDep) -> JSONResponse:
    names = ("postgres", "redis", "s3")
    results = await asyncio.gather(
        _check("postgres", database.ping(TIMEOUT)),
        _check("redis", cache.ping(TIMEOUT)),
        _check("s3", storage.ping(TIMEOUT)),
    )
    checks = dict(zip(names, results, strict=True))
    down = [name for name, result in checks.items() if result["status"] == "down"]
    body: dict[str, Any] = {"status": "unavailable" if down else "ok", "checks": checks}
    if down:
        body["down"] = down
    return JSONResponse(body, status_code=503 if down else 200)
