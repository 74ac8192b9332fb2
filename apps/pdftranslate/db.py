"""The service's database, cache and storage, and their FastAPI dependencies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from plinth import Cache, Database, Storage

database = Database(migrations=Path(__file__).parent / "migrations")

cache = Cache(key_prefix="pdftranslate")
"""Job statuses, per tenant (``pdftranslate:tenant:<id>:...``); ``REDIS_URL``."""

storage = Storage(expire_after_days=1)
"""Uploaded and translated PDFs, deleted by S3 a day after they were written (the
seed's "cleanup after 24 hours"); the bucket holds nothing else. ``AWS_BUCKET_NAME``."""

Session = Annotated[AsyncSession, database.depends]
"""A unit of work per request: committed before the response is sent."""


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
