"""The API hands each new job to the workers, after its commit."""

from __future__ import annotations

import uuid

import httpx
import pytest
from kombu.exceptions import OperationalError

from pdftranslate import queue
from pdftranslate.tasks import translate
from pdftranslate.tests.test_api import create_user, tenant_headers, upload


async def test_an_uploaded_job_is_enqueued(
    client: httpx.AsyncClient, enqueued: list[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    headers = tenant_headers()
    user = await create_user(client, headers)
    response = await upload(client, headers, user["id"])
    assert response.status_code == 201, response.text
    tenant = uuid.UUID(headers["X-Tenant-ID"])
    assert enqueued == [(uuid.UUID(response.json()["id"]), tenant)]


async def test_a_refused_upload_enqueues_nothing(
    client: httpx.AsyncClient, enqueued: list[tuple[uuid.UUID, uuid.UUID]]
) -> None:
    headers = tenant_headers()
    response = await upload(client, headers, str(uuid.uuid4()))  # no such user
    assert response.status_code == 404
    assert enqueued == []


async def test_a_broker_outage_leaves_the_job_pending_for_the_sweep(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[object] = []

    def refused(*args: object, **kwargs: object) -> None:
        sent.append(kwargs["args"])
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(translate, "apply_async", refused)
    job, tenant = uuid.uuid4(), uuid.uuid4()
    assert await queue.enqueue(job, tenant) is False
    assert sent == [(str(job), str(tenant))]
    assert f"translation {job} not enqueued (the sweep will): OperationalError" in caplog.text
