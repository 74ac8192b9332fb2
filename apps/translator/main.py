"""The translator service: documents, their translations, full-text search."""

from __future__ import annotations

from fastapi import FastAPI

from plinth import BodySizeLimit, exception_handlers, health_router
from translator.api import router
from translator.db import database

app = FastAPI(
    title="Translator",
    version="1.0.0",
    lifespan=database.lifespan,
    exception_handlers=exception_handlers,
)
app.add_middleware(BodySizeLimit)  # 413 over HTTP_MAX_BODY_BYTES (4 MiB)
app.include_router(health_router(database))
app.include_router(router)

__all__ = ["app", "database"]
