"""The R&D project cards API: users, their batches, and ``GET /health``."""

from __future__ import annotations

from fastapi import FastAPI

from plinth import BodySizeLimit, exception_handlers, health_router
from rndcards.db import database
from rndcards.routes import users
from rndcards.routes.health import health_router as seed_health_router

VERSION = "1.0.0"

app = FastAPI(
    title="R&D project cards",
    version=VERSION,
    lifespan=database.lifespan,
    exception_handlers=exception_handlers,
)
app.add_middleware(BodySizeLimit)  # 413 over HTTP_MAX_BODY_BYTES (4 MiB)
app.include_router(seed_health_router(database, VERSION))
# Plinth's probes too: /health/live never touches the database, /health/ready
# also checks that the schema is at the migration head.
app.include_router(health_router(database))
app.include_router(users.router)

__all__ = ["VERSION", "app", "database"]
