"""The service's database, cache and storage, and their FastAPI dependencies."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from plinth import Cache, Database, Storage, tenant_header

database = Database(migrations=Path(__file__).parent / "migrations")

cache = Cache(key_prefix="pdftranslate")
"""Job statuses, per tenant (``pdftranslate:tenant:<id>:...``); ``REDIS_URL``."""

storage = Storage(expire_after_days=1)
"""Uploaded and translated PDFs, deleted by S3 a day after they were written (the
seed's "cleanup after 24 hours"); the bucket holds nothing else. ``AWS_BUCKET_NAME``."""


# Functions rather than the objects themselves, so that a test can override them.
def get_database() -> Database:
    return database


def get_cache() -> Cache:
    return cache


def get_storage() -> Storage:
    return storage


DatabaseDep = Annotated[Database, Depends(get_database)]
CacheDep = Annotated[Cache, Depends(get_cache)]
StorageDep = Annotated[Storage, Depends(get_storage)]


TenantId = Annotated[uuid.UUID, Depends(tenant_header("X-Tenant-ID"))]
"""The request's tenant: ``X-Tenant-ID``, a UUID; 422 when missing or malformed."""


async def tenant_session(database: DatabaseDep, tenant: TenantId) -> AsyncIterator[AsyncSession]:
    """The request's unit of work, bound to its tenant: row-level security
    (migration ``0002``) shows and accepts only that tenant's rows."""
    async with database.transaction(tenant=tenant) as session:
        yield session


Session = Annotated[AsyncSession, Depends(tenant_session, scope="function")]
"""A unit of work per request, scoped to its tenant; committed before the response is sent."""
