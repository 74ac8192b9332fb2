"""Handing jobs to the workers: the API enqueues, `pdftranslate.tasks` runs them.

A job is committed first and enqueued after: a worker never receives a job
it cannot see. If the broker is away at that moment, the job stays
``pending`` and `pdftranslate.tasks.requeue_stale` (every few minutes, with
``celery ... worker --beat`` or a ``celery beat``) sends it again: a job
is late, never lost. Sending a job twice is harmless (the task is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends

__all__ = ["Enqueue", "EnqueueDep", "enqueue", "get_enqueue"]

logger = logging.getLogger(__name__)

Enqueue = Callable[[uuid.UUID, uuid.UUID], Awaitable[bool]]
"""``await enqueue(translation_id, tenant_id)``: True once the broker has the job."""

PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}


async def enqueue(translation_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
    """Send job `translation_id` to the workers; False (logged) if the broker is away."""
    # Imported here: the task module imports the API's helpers.
    from pdftranslate.tasks import translate

    try:
        # kombu's publish is blocking I/O: off the event loop.
        await asyncio.to_thread(
            translate.apply_async,
            args=(str(translation_id), str(tenant_id)),
            retry=True,
            retry_policy=PUBLISH_RETRY,
        )
    except Exception as exc:  # kombu's OperationalError, a refused or lost connection
        logger.warning(
            "translation %s not enqueued (the sweep will): %s", translation_id, type(exc).__name__
        )
        return False
    return True


def get_enqueue() -> Enqueue:
    """The dependency, so that a test can replace the broker."""
    return enqueue


EnqueueDep = Annotated[Enqueue, Depends(get_enqueue)]
