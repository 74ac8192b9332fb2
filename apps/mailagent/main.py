"""The mail agent service: users, their encrypted Gmail tokens, a database health check."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from mailagent.api import router
from mailagent.db import database
from plinth import BodySizeLimit, Keyring, exception_handlers, health_router


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Fail at start-up, not at the first user who links Gmail.
    Keyring.from_env()
    async with database.lifespan(app):
        yield


app = FastAPI(
    title="Mail agent",
    version="1.0.0",
    lifespan=lifespan,
    exception_handlers=exception_handlers,
)
app.add_middleware(BodySizeLimit)  # 413 over HTTP_MAX_BODY_BYTES (4 MiB)
app.include_router(health_router(database))
app.include_router(router)

__all__ = ["app", "database"]
