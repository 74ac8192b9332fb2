"""``GET /health``: the seed's health check, with the database's state."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from plinth import Database, DatabaseStateError, DatabaseUnavailableError


def health_router(database: Database, version: str) -> APIRouter:
    """``GET /health``: 200 when ``SELECT 1`` answers, else 503 ``"disconnected"``."""
    router = APIRouter(tags=["health"])

    @router.get(
        "/health",
        responses={503: {"description": "The database does not answer."}},
    )
    async def health() -> JSONResponse:
        try:
            await database.ping()
        except (DatabaseUnavailableError, DatabaseStateError):
            return JSONResponse(
                {"status": "unhealthy", "version": version, "database": "disconnected"},
                status_code=503,
            )
        return JSONResponse({"status": "healthy", "version": version, "database": "connected"})

    return router
