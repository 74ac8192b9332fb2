"""FastAPI glue: errors as HTTP answers, and health endpoints.

    handlers   exception_handlers: Plinth's errors as 404/409/422/503 JSON
    health     health_router (/health/live, /health/ready) and readiness()
    limits     BodySizeLimit: a request body over HTTP_MAX_BODY_BYTES is a 413
    tenancy    tenant_header: the request's tenant (X-Tenant-ID), 422 when missing

The unit-of-work dependency itself is `Database.depends` (`plinth.db`): it is
the `Database`'s own unit of work, so it lives beside it.

May import `plinth.db`, `plinth.migrations` and `plinth.errors`.
"""

from __future__ import annotations

from plinth.web.handlers import exception_handlers as exception_handlers
from plinth.web.health import health_router as health_router
from plinth.web.health import readiness as readiness
from plinth.web.limits import BodySizeLimit as BodySizeLimit
from plinth.web.tenancy import tenant_header as tenant_header

__all__ = ["BodySizeLimit", "exception_handlers", "health_router", "readiness", "tenant_header"]
