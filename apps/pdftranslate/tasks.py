"""The translation workers: Celery on Redis (``celery -A pdftranslate.tasks worker``).

``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` default to Redis database
1 of ``REDIS_URL``'s server (the cache uses database 0). Each worker process
runs the task bodies on one event loop of its own, with the app's
`Database`, `Storage` and `Cache` started on it after the fork and closed when
the process ends (`plinth.WorkerLoop`).

`translate` takes a job from ``pending`` to ``completed``: it downloads the
PDF, extracts its text blocks, translates them with the user's glossary,
stores the blocks (``COPY``) and the translated document, and reports
progress on the way. A job that cannot be done ends ``failed`` with the
reason in ``error_message``. Running it again (a retry, a redelivery after a
worker died) is harmless: a completed job is returned as it is, and an
interrupted one starts over, its blocks replaced in the transaction that
completes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery, Task
from sqlalchemy import and_, delete, func, or_, select

from pdftranslate.api import _forget_status
from pdftranslate.db import cache, database, storage
from pdftranslate.extract import ExtractionError, extract_blocks, translate_text
from pdftranslate.models import DocumentBlock, Glossary, Translation, TranslationStatus
from plinth import (
    CelerySettings,
    DatabaseBusyError,
    DatabaseUnavailableError,
    NotFound,
    Repository,
    StorageUnavailableError,
    WorkerLoop,
)

logger = logging.getLogger(__name__)

app = Celery("pdftranslate")
app.conf.update(CelerySettings.load().celery_config())

worker = WorkerLoop(database, storage, cache, name="pdftranslate-worker")
"""This worker process's event loop, with the services started on it."""
worker.connect_celery()

TRANSIENT = (DatabaseUnavailableError, DatabaseBusyError, StorageUnavailableError)
"""Outages: retried with backoff; the job fails only when the retries run out."""

MAX_RETRIES = 3


class JobFailed(Exception):
    """The job failed for good; its row says why."""


class Jobs(Repository[Translation]):
    """Translation jobs, as the worker updates them."""


class Blocks(Repository[DocumentBlock]):
    """The text blocks of each job."""


@app.task(
    name="pdftranslate.translate",
    bind=True,
    autoretry_for=TRANSIENT,
    max_retries=MAX_RETRIES,
    retry_backoff=True,
    retry_backoff_max=60,
)
def translate(self: Task[Any, Any], translation_id: str, tenant_id: str) -> dict[str, Any]:
    """Translate job `translation_id` of tenant `tenant_id`; return its summary."""
    final = self.request.retries >= MAX_RETRIES
    return worker.run(process(uuid.UUID(translation_id), uuid.UUID(tenant_id), final=final))


@app.task(name="pdftranslate.requeue_stale")
def requeue_stale() -> int:
    """Send again the jobs pending for over `STALE_AFTER` (their enqueue was lost) and
    those processing with no progress for `STUCK_AFTER` (their worker could not finish
    them, nor mark them failed)."""
    return worker.run(_requeue_stale())


STALE_AFTER = timedelta(minutes=5)
STUCK_AFTER = timedelta(minutes=30)

app.conf.beat_schedule = {
    "requeue-stale-jobs": {"task": "pdftranslate.requeue_stale", "schedule": 300.0},
}


async def _requeue_stale() -> int:
    # Across tenants: under row-level security this sweep needs a role with
    # BYPASSRLS (or the tables' owner); every per-job transaction binds its tenant.
    async with database.transaction() as session:
        rows = await session.execute(
            select(Translation.id, Translation.tenant_id)
            .where(
                Translation.created_at < func.now() - STALE_AFTER,
                or_(
                    Translation.status == TranslationStatus.pending,
                    and_(
                        Translation.status == TranslationStatus.processing,
                        Translation.updated_at < func.now() - STUCK_AFTER,
                    ),
                ),
            )
            .order_by(Translation.created_at)
            .limit(1000)
        )
        jobs = list(rows.tuples())
    for translation_id, tenant_id in jobs:
        # kombu's publish blocks: off this loop, which other tasks may share.
        await asyncio.to_thread(translate.apply_async, args=(str(translation_id), str(tenant_id)))
    if jobs:
        logger.warning("requeued %d pending or stuck jobs", len(jobs))
    return len(jobs)


@app.task(name="pdftranslate.ping")
def ping() -> dict[str, Any]:
    """A database round trip from this worker process, and what served it (a health check)."""
    return worker.run(_ping())


async def _ping() -> dict[str, Any]:
    started = time.perf_counter()
    async with database.transaction() as session:
        backend = await session.scalar(select(func.pg_backend_pid()))
    return {
        "pid": os.getpid(),
        "loop": id(asyncio.get_running_loop()),
        "engine": id(database.engine),
        "backend_pid": backend,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }


async def process(
    translation_id: uuid.UUID, tenant_id: uuid.UUID, *, final: bool
) -> dict[str, Any]:
    """The task's body, on the worker's loop. `final`: no retry follows a failure."""
    job = await _claim(translation_id, tenant_id)
    if job.status is TranslationStatus.completed:
        return await _summary(job)  # done already: a redelivered or repeated task
    try:
        return await _translate(job)
    except TRANSIENT:
        if not final:
            raise  # Celery retries; the job stays `processing`
        await _fail(job, "services unavailable, retries exhausted")
        raise
    except ExtractionError as exc:
        await _fail(job, str(exc))
        raise JobFailed(str(exc)) from None
    except Exception as exc:
        await _fail(job, f"internal error ({type(exc).__name__})")
        raise


async def _claim(translation_id: uuid.UUID, tenant_id: uuid.UUID) -> Translation:
    """Lock the job and mark it processing (unless completed); raise `NotFound`."""
    async with database.transaction(tenant=tenant_id) as session:
        job = await session.scalar(
            select(Translation)
            .where(Translation.id == translation_id, Translation.tenant_id == tenant_id)
            .with_for_update()
        )
        if job is None:
            raise NotFound(f"translation {translation_id} not found")
        if job.status is not TranslationStatus.completed:
            job.status = TranslationStatus.processing
            job.progress = 0
            job.error_message = None
            await session.flush()
    await _forget_status(cache, tenant_id, translation_id)
    return job


def _key(job: Translation) -> tuple[uuid.UUID, uuid.UUID]:
    # The identity is (tenant_id, id): every statement names the tenant, so on
    # Citus each one goes to the tenant's shard alone.
    return (job.tenant_id, job.id)


async def _progress(job: Translation, progress: int) -> None:
    async with database.transaction(tenant=job.tenant_id) as session:
        await Jobs(session).update(_key(job), progress=progress)
    await _forget_status(cache, job.tenant_id, job.id)


async def _translate(job: Translation) -> dict[str, Any]:
    pdf = await storage.download(job.original_path)
    await _progress(job, 20)
    page_count, blocks = await asyncio.to_thread(extract_blocks, pdf)
    await _progress(job, 50)
    async with database.transaction(tenant=job.tenant_id) as session:
        rows = await session.execute(
            select(Glossary.term, Glossary.translation).where(
                Glossary.tenant_id == job.tenant_id,
                Glossary.user_id == job.user_id,
                Glossary.target_lang == job.target_lang,
            )
        )
        glossary = {term: translation for term, translation in rows.tuples()}
    translated = [translate_text(block.text, glossary) for block in blocks]
    document = {
        "translation_id": str(job.id),
        "target_lang": job.target_lang,
        "page_count": page_count,
        "blocks": [
            {"page": block.page_num, "block": block.block_num, "text": text}
            for block, text in zip(blocks, translated, strict=True)
        ],
    }
    key = f"{job.tenant_id}/{job.id}/translated.json"
    await storage.upload(
        key, json.dumps(document, ensure_ascii=False).encode(), content_type="application/json"
    )
    await _progress(job, 80)
    # The blocks and the completion commit together: a job is never
    # completed without its blocks, nor left with half of them. The row lock
    # makes a second delivery of the same job running meanwhile wait here,
    # then find the job completed.
    async with database.transaction(tenant=job.tenant_id) as session:
        current = await session.scalar(
            select(Translation)
            .where(Translation.tenant_id == job.tenant_id, Translation.id == job.id)
            .with_for_update()
        )
        if current is None:
            raise NotFound(f"translation {job.id} not found")
        if current.status is TranslationStatus.completed:
            return await _summary(current)
        await session.execute(
            delete(DocumentBlock).where(
                DocumentBlock.tenant_id == job.tenant_id, DocumentBlock.translation_id == job.id
            )
        )
        await Blocks(session).bulk_insert(
            {
                "tenant_id": job.tenant_id,
                "translation_id": job.id,
                "page_num": block.page_num,
                "block_num": block.block_num,
                "original_text": block.text,
                "translated_text": text,
                "coordinates": block.coordinates,
            }
            for block, text in zip(blocks, translated, strict=True)
        )
        job = await Jobs(session).update(
            _key(job),
            status=TranslationStatus.completed,
            progress=100,
            page_count=page_count,
            translated_path=key,
            completed_at=datetime.now(UTC),
        )
    await _forget_status(cache, job.tenant_id, job.id)
    logger.info("translation %s completed: %d blocks", job.id, len(blocks))
    return await _summary(job)


async def _fail(job: Translation, reason: str) -> None:
    """Mark the job failed; if even that fails (the database is away), the job stays
    `processing` and `requeue_stale` sends it again later."""
    try:
        async with database.transaction(tenant=job.tenant_id) as session:
            await Jobs(session).update(
                _key(job), status=TranslationStatus.failed, error_message=reason
            )
    except Exception:
        logger.exception("translation %s failed (%s) and cannot be marked failed", job.id, reason)
        return
    await _forget_status(cache, job.tenant_id, job.id)
    logger.warning("translation %s failed: %s", job.id, reason)


async def _summary(job: Translation) -> dict[str, Any]:
    async with database.transaction(tenant=job.tenant_id) as session:
        blocks = await session.scalar(
            select(func.count()).where(
                DocumentBlock.tenant_id == job.tenant_id, DocumentBlock.translation_id == job.id
            )
        )
    return {
        "translation_id": str(job.id),
        "status": job.status.value,
        "page_count": job.page_count,
        "blocks": blocks,
        "translated_path": job.translated_path,
    }
