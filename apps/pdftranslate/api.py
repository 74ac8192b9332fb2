"""HTTP routes. Every query is scoped to the tenant that ``X-Tenant-ID`` names.

The header stands in for the tenant an authenticated session will carry once
Google sign-in exists (story 1.3); nothing here trusts a tenant id in a body.
Each unit of work is bound to the tenant (``Session``, and
``database.transaction(tenant=...)``), and PostgreSQL's row-level security
holds every query to it; the ``tenant_id`` filters below stay as a second wall.
Job statuses are cached per tenant for `STATUS_TTL` seconds and dropped
whenever a job changes; a Redis outage makes them slower, not unavailable.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pdftranslate.db import CacheDep, DatabaseDep, Session, StorageDep, TenantId
from pdftranslate.models import Glossary, Translation, TranslationStatus, User
from pdftranslate.queue import EnqueueDep
from pdftranslate.schemas import (
    DownloadLink,
    GlossaryIn,
    GlossaryOut,
    JobStatus,
    TranslationOut,
    TranslationUpdate,
    UserIn,
    UserOut,
)
from plinth import Cache, CacheUnavailableError, Limit, NotFound, PgText, PlinthError

logger = logging.getLogger(__name__)
router = APIRouter()

Tenant = TenantId
Lang = Annotated[str, Query(min_length=2, max_length=10, pattern=r"^[A-Za-z]{2,3}(-\w{2,4})?$")]

MAX_PDF_BYTES = 50 * 1024 * 1024
STATUS_TTL = 60
"""Seconds a cached status lives: it bounds how stale a status can be if an
update's invalidation is lost (Redis down at that moment)."""


async def _user(session: AsyncSession, tenant: uuid.UUID, user_id: uuid.UUID) -> User:
    user = await session.scalar(select(User).where(User.tenant_id == tenant, User.id == user_id))
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def _translation(
    session: AsyncSession, tenant: uuid.UUID, translation_id: uuid.UUID
) -> Translation:
    query = select(Translation).where(
        Translation.tenant_id == tenant, Translation.id == translation_id
    )
    translation = await session.scalar(query)
    if translation is None:
        raise NotFound(f"translation {translation_id} not found")
    return translation


def _status_key(translation_id: uuid.UUID) -> str:
    return f"translation:{translation_id}:status"


async def _remember_status(cache: Cache, tenant: uuid.UUID, status: JobStatus) -> None:
    try:
        await cache.scope("tenant", tenant).set(_status_key(status.id), status, ttl=STATUS_TTL)
    except CacheUnavailableError as exc:
        logger.warning("status of %s not cached: %s", status.id, exc)


async def _forget_status(cache: Cache, tenant: uuid.UUID, translation_id: uuid.UUID) -> None:
    try:
        await cache.scope("tenant", tenant).delete(_status_key(translation_id))
    except CacheUnavailableError as exc:
        logger.warning("status of %s not invalidated: %s", translation_id, exc)


@router.post("/users", status_code=201)
async def create_user(body: UserIn, tenant: Tenant, session: Session) -> UserOut:
    user = User(tenant_id=tenant, **body.model_dump())
    session.add(user)
    await session.flush()
    return UserOut.model_validate(user)


@router.get("/users/{user_id}")
async def get_user(user_id: uuid.UUID, tenant: Tenant, session: Session) -> UserOut:
    return UserOut.model_validate(await _user(session, tenant, user_id))


@router.post(
    "/users/{user_id}/translations",
    status_code=201,
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/pdf": {"schema": {}}}}
    },
)
async def create_translation(
    user_id: uuid.UUID,
    request: Request,
    tenant: Tenant,
    target_lang: Lang,
    database: DatabaseDep,
    cache: CacheDep,
    storage: StorageDep,
    enqueue: EnqueueDep,
    source_lang: Lang | None = None,
    filename: Annotated[PgText, Query(min_length=1, max_length=255)] = "document.pdf",
) -> TranslationOut:
    """Upload a PDF (the request body, ``Content-Type: application/pdf``) to translate.

    The job is committed, then handed to the workers (`pdftranslate.tasks`).
    """
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/pdf":
        raise HTTPException(415, "send the PDF itself as the body, Content-Type: application/pdf")
    if int(request.headers.get("content-length") or 0) > MAX_PDF_BYTES:
        raise HTTPException(413, f"a PDF may have at most {MAX_PDF_BYTES} bytes")
    data = await request.body()
    if len(data) > MAX_PDF_BYTES:
        raise HTTPException(413, f"a PDF may have at most {MAX_PDF_BYTES} bytes")
    if not data.startswith(b"%PDF-"):
        raise HTTPException(422, "the body is not a PDF (it does not start with %PDF-)")

    # Short transactions: no pooled connection waits while S3 receives the file.
    async with database.transaction(tenant=tenant) as session:
        await _user(session, tenant, user_id)
    translation_id = uuid.uuid4()
    key = f"{tenant}/{translation_id}/original.pdf"
    await storage.upload(key, data, content_type="application/pdf")
    translation = Translation(
        id=translation_id,
        tenant_id=tenant,
        user_id=user_id,
        source_lang=source_lang,
        target_lang=target_lang,
        original_filename=filename,
        original_path=key,
        file_size=len(data),
    )
    try:
        async with database.transaction(tenant=tenant) as session:
            session.add(translation)
    except Exception:
        # Without its row the file is unreachable: remove it now, not in a day.
        with contextlib.suppress(PlinthError):
            await storage.delete(key)
        raise
    await _remember_status(cache, tenant, JobStatus.model_validate(translation))
    await enqueue(translation.id, tenant)
    return TranslationOut.model_validate(translation)


@router.get("/users/{user_id}/translations")
async def list_translations(
    user_id: uuid.UUID,
    tenant: Tenant,
    session: Session,
    status: TranslationStatus | None = None,
    limit: Limit = 20,
) -> list[TranslationOut]:
    query = select(Translation).where(
        Translation.tenant_id == tenant, Translation.user_id == user_id
    )
    if status is not None:
        query = query.where(Translation.status == status)
    rows = await session.scalars(query.order_by(Translation.created_at.desc()).limit(limit))
    return [TranslationOut.model_validate(row) for row in rows]


@router.get("/translations/{translation_id}")
async def get_translation(
    translation_id: uuid.UUID, tenant: Tenant, session: Session
) -> TranslationOut:
    return TranslationOut.model_validate(await _translation(session, tenant, translation_id))


@router.get("/translations/{translation_id}/status")
async def translation_status(
    translation_id: uuid.UUID, tenant: Tenant, session: Session, cache: CacheDep, response: Response
) -> JobStatus:
    """The job's status, from the cache when it is there (``X-Cache: hit``)."""
    try:
        cached = await cache.scope("tenant", tenant).get(_status_key(translation_id), JobStatus)
    except CacheUnavailableError as exc:
        logger.warning("status cache unavailable: %s", exc)
        response.headers["X-Cache"] = "unavailable"
        return JobStatus.model_validate(await _translation(session, tenant, translation_id))
    if cached is not None:
        response.headers["X-Cache"] = "hit"
        return cached
    status = JobStatus.model_validate(await _translation(session, tenant, translation_id))
    await _remember_status(cache, tenant, status)
    response.headers["X-Cache"] = "miss"
    return status


@router.patch("/translations/{translation_id}")
async def update_translation(
    translation_id: uuid.UUID,
    body: TranslationUpdate,
    tenant: Tenant,
    database: DatabaseDep,
    cache: CacheDep,
) -> TranslationOut:
    """A worker reports progress; the cached status is dropped once it is committed."""
    async with database.transaction(tenant=tenant) as session:
        translation = await _translation(session, tenant, translation_id)
        for field, value in body.model_dump(exclude_unset=True).items():
            setattr(translation, field, value)
        if body.status is TranslationStatus.completed and translation.completed_at is None:
            translation.completed_at = datetime.now(UTC)
        await session.flush()
    await _forget_status(cache, tenant, translation_id)
    return TranslationOut.model_validate(translation)


@router.get("/translations/{translation_id}/original")
async def original_link(
    translation_id: uuid.UUID, tenant: Tenant, session: Session, storage: StorageDep
) -> DownloadLink:
    """A presigned URL that downloads the uploaded PDF, without credentials, for a while."""
    translation = await _translation(session, tenant, translation_id)
    url = await storage.presigned_get(
        translation.original_path, filename=translation.original_filename
    )
    return DownloadLink(url=url, expires_in=storage.settings.presign_expires)


@router.post("/users/{user_id}/glossary", status_code=201)
async def add_glossary_term(
    user_id: uuid.UUID, body: GlossaryIn, tenant: Tenant, session: Session
) -> GlossaryOut:
    """Add a term; the same term and language twice for one user is a 409."""
    await _user(session, tenant, user_id)
    entry = Glossary(tenant_id=tenant, user_id=user_id, **body.model_dump())
    session.add(entry)
    await session.flush()
    return GlossaryOut.model_validate(entry)


@router.get("/users/{user_id}/glossary")
async def list_glossary(
    user_id: uuid.UUID, tenant: Tenant, session: Session, target_lang: Lang | None = None
) -> list[GlossaryOut]:
    await _user(session, tenant, user_id)
    query = select(Glossary).where(Glossary.tenant_id == tenant, Glossary.user_id == user_id)
    if target_lang is not None:
        query = query.where(Glossary.target_lang == target_lang)
    rows = await session.scalars(query.order_by(Glossary.term, Glossary.target_lang))
    return [GlossaryOut.model_validate(row) for row in rows]
