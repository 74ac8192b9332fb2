"""The PDF translation service: users, translation jobs, text blocks, glossaries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pdftranslate.api import MAX_PDF_BYTES, router
from pdftranslate.db import cache, database, storage
from pdftranslate.health import router as health
from plinth import BodySizeLimit, exception_handlers, health_router


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Started in order and closed in reverse; any that cannot start stops the app.
    async with database.lifespan(app), cache.lifespan(app), storage.lifespan(app):
        yield


app = FastAPI(
    title="PDF translation",
    version="1.0.0",
    lifespan=lifespan,
    exception_handlers=exception_handlers,
)
# 413 over HTTP_MAX_BODY_BYTES (4 MiB); the PDF upload takes up to MAX_PDF_BYTES.
app.add_middleware(BodySizeLimit, media_types={"application/pdf": MAX_PDF_BYTES})
app.include_router(health)
app.include_router(health_router(database))
app.include_router(router)

__all__ = ["app", "database"]
