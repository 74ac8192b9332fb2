"""A real Celery worker (``celery -A pdftranslate.tasks worker``, prefork, two
processes) against Redis, PostgreSQL and S3: jobs go in through the broker and
come out in the database, in S3 and in the result backend.

The worker runs in a subprocess on a database of its own (committed rows,
unlike the rolled-back test transaction), with the test run's bucket and
cache prefix, on Redis database 14 (broker and results, a queue per run).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from celery import Celery
from celery.result import AsyncResult
from redis import Redis
from sqlalchemy import URL, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pdftranslate.db import cache, storage
from pdftranslate.models import DocumentBlock, Glossary, Translation, TranslationStatus, User
from pdftranslate.tests.conftest import free_port
from plinth import CelerySettings, migrations
from plinth.db.scratch import create_database, drop_database, small_engine

APP_DIR = Path(__file__).parents[1]
BROKER_URL = BACKEND_URL = "redis://127.0.0.1:6379/14"
TIMEOUT = 30


def make_pdf(pages: list[list[str]], *, compress: bool = True) -> bytes:
    """A minimal PDF whose pages hold one text object per string."""
    objects = {1: b"<< /Type /Catalog /Pages 2 0 R >>"}
    kids = []
    for index, blocks in enumerate(pages):
        page, content = 3 + 2 * index, 4 + 2 * index
        kids.append(b"%d 0 R" % page)
        operations = []
        for number, text in enumerate(blocks):
            escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            operations.append(f"BT /F1 12 Tf 72 {720 - 20 * number} Td ({escaped}) Tj ET")
        data = "\n".join(operations).encode("latin-1")
        flate = b""
        if compress:
            data, flate = zlib.compress(data), b" /Filter /FlateDecode"
        objects[page] = b"<< /Type /Page /Parent 2 0 R /Contents %d 0 R >>" % content
        objects[content] = b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(data), flate, data)
    objects[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), len(kids))
    body = b"".join(b"%d 0 obj\n%s\nendobj\n" % item for item in sorted(objects.items()))
    return b"%PDF-1.4\n" + body + b"trailer << /Root 1 0 R >>\n%%EOF\n"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def worker_database(plinth_server: URL) -> AsyncIterator[AsyncEngine]:
    """A migrated database of the worker's own: it sees only committed rows."""
    name = f"plinth_worker_{os.getpid()}"
    url = await create_database(plinth_server, name)
    engine = small_engine(url)
    try:
        async with engine.connect() as connection:
            await migrations.upgrade(connection, APP_DIR / "migrations")
        yield engine
    finally:
        await engine.dispose()
        await drop_database(plinth_server, name)


@pytest.fixture(scope="module")
def queue() -> str:
    return f"pdftranslate-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def celery_client(queue: str) -> Iterator[Celery]:
    """A client of the worker's broker and backend, as the API would hold."""
    settings = CelerySettings(
        CELERY_BROKER_URL=BROKER_URL, CELERY_RESULT_BACKEND=BACKEND_URL, CELERY_QUEUE=queue
    )
    client = Celery("pdftranslate-test", set_as_current=False)
    client.conf.update(settings.celery_config())
    try:
        yield client
    finally:
        with client.connection_for_write() as connection:
            channel: Any = connection.default_channel
            channel.queue_delete(queue)
        client.close()


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def worker(
    worker_database: AsyncEngine,
    services: None,
    queue: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Worker]:
    """``celery -A pdftranslate.tasks worker``: prefork, two processes, this run's queue."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    url = worker_database.url.render_as_string(hide_password=False)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(APP_DIR.parent), os.environ.get("PYTHONPATH", "")]),
        "DATABASE_URL": url,
        "APP_ENV": "test",
        **_services_env(queue),
    }
    command = [
        *(sys.executable, "-m", "celery", "-A", "pdftranslate.tasks", "worker"),
        *("--pool", "prefork", "--concurrency", "2"),
        *("--hostname", f"{queue}@%h", "--loglevel", "INFO"),
        *("--without-gossip", "--without-mingle", "--without-heartbeat"),
    ]
    with log.open("w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield Worker(process, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


async def result_of(result: AsyncResult[Any]) -> Any:
    return await asyncio.to_thread(result.get, timeout=TIMEOUT)


async def seed_job(engine: AsyncEngine, pdf: bytes, **values: Any) -> Translation:
    """A user with a glossary and a pending job whose PDF is in the bucket."""
    tenant = uuid.uuid4()
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        user = User(tenant_id=tenant, google_id=str(uuid.uuid4()), email="ada@example.com")
        session.add(user)
        await session.flush()
        term = {"term": "contract", "translation": "contrat", "target_lang": "fr"}
        session.add(Glossary(tenant_id=tenant, user_id=user.id, **term))
        job_id = uuid.uuid4()
        job = Translation(
            id=job_id,
            tenant_id=tenant,
            user_id=user.id,
            target_lang="fr",
            original_filename="doc.pdf",
            original_path=f"{tenant}/{job_id}/original.pdf",
            file_size=len(pdf),
            **values,
        )
        session.add(job)
    await storage.upload(job.original_path, pdf, content_type="application/pdf")
    return job


async def fetch(engine: AsyncEngine, job: Translation) -> tuple[Translation, list[DocumentBlock]]:
    async with AsyncSession(engine) as session:
        row = await session.get_one(Translation, (job.tenant_id, job.id))
        blocks = await session.scalars(
            select(DocumentBlock)
            .where(DocumentBlock.translation_id == job.id)
            .order_by(DocumentBlock.page_num, DocumentBlock.block_num)
        )
        return row, list(blocks)


def send(client: Celery, job: Translation) -> AsyncResult[Any]:
    return client.send_task("pdftranslate.translate", args=[str(job.id), str(job.tenant_id)])


async def test_each_worker_process_keeps_one_loop_and_engine_made_after_the_fork(
    worker: Worker, celery_client: Celery
) -> None:
    pings = [await result_of(celery_client.send_task("pdftranslate.ping")) for _ in range(6)]
    by_process: dict[int, set[tuple[int, int, int]]] = {}
    for ping in pings:
        seen = (ping["loop"], ping["engine"], ping["backend_pid"])
        by_process.setdefault(ping["pid"], set()).add(seen)
    # Not the main worker process (the parent of the fork): a pool child.
    assert worker.process.pid not in by_process
    # One loop, one engine and one pooled connection (the same PostgreSQL
    # backend) per process, whatever the number of tasks it ran: nothing is
    # rebuilt per task.
    assert all(len(seen) == 1 for seen in by_process.values()), by_process
    # No two processes share a connection.
    backends = [backend for seen in by_process.values() for _, _, backend in seen]
    assert len(backends) == len(set(backends))


async def test_a_job_goes_through_the_worker(
    worker: Worker, celery_client: Celery, worker_database: AsyncEngine
) -> None:
    pdf = make_pdf([["The contract (draft)", "Signed by both parties"], ["Annex: contract terms"]])
    job = await seed_job(worker_database, pdf)
    status_key = f"translation:{job.id}:status"
    tenant_cache = cache.scope("tenant", job.tenant_id)
    await tenant_cache.set(status_key, {"status": "pending"})

    summary = await result_of(send(celery_client, job))

    assert summary == {
        "translation_id": str(job.id),
        "status": "completed",
        "page_count": 2,
        "blocks": 3,
        "translated_path": f"{job.tenant_id}/{job.id}/translated.json",
    }
    row, blocks = await fetch(worker_database, job)
    assert (row.status, row.progress, row.page_count) == (TranslationStatus.completed, 100, 2)
    assert row.completed_at is not None
    assert row.error_message is None
    assert [(b.page_num, b.block_num, b.original_text, b.translated_text) for b in blocks] == [
        (0, 0, "The contract (draft)", "The contrat (draft)"),
        (0, 1, "Signed by both parties", "Signed by both parties"),
        (1, 0, "Annex: contract terms", "Annex: contrat terms"),
    ]
    assert blocks[0].coordinates == {"x": 72.0, "y": 720.0}
    assert all(block.tenant_id == job.tenant_id for block in blocks)
    document = json.loads(await storage.download(summary["translated_path"]))
    assert document["blocks"][0] == {"page": 0, "block": 0, "text": "The contrat (draft)"}
    # The worker dropped the cached status: the API reads the new one.
    assert await tenant_cache.get(status_key) is None

    # Again (a retry, a redelivery): the same answer, no duplicated blocks.
    assert await result_of(send(celery_client, job)) == summary
    assert len((await fetch(worker_database, job))[1]) == 3


async def test_a_job_that_fails_says_why(
    worker: Worker, celery_client: Celery, worker_database: AsyncEngine
) -> None:
    job = await seed_job(worker_database, make_pdf([[]]))  # a page without text: a scan

    result = send(celery_client, job)
    with pytest.raises(Exception, match="no text found in the PDF"):
        await result_of(result)

    assert result.state == "FAILURE"
    row, blocks = await fetch(worker_database, job)
    assert row.status is TranslationStatus.failed
    assert row.error_message == "no text found in the PDF (scanned pages need OCR)"
    assert blocks == []


async def test_a_job_whose_enqueue_was_lost_is_sent_again(
    worker: Worker, celery_client: Celery, worker_database: AsyncEngine
) -> None:
    earlier = datetime.now(UTC) - timedelta(minutes=40)
    job = await seed_job(worker_database, make_pdf([["Late"]]), created_at=earlier)
    stuck = await seed_job(
        worker_database,
        make_pdf([["Stuck"]]),
        status=TranslationStatus.processing,
        created_at=earlier,
        updated_at=earlier,
    )
    fresh = await seed_job(worker_database, make_pdf([["Just uploaded"]]))

    requeued = await result_of(celery_client.send_task("pdftranslate.requeue_stale"))

    assert requeued >= 2
    for late in (job, stuck):
        for _ in range(100):
            row, _ = await fetch(worker_database, late)
            if row.status is TranslationStatus.completed:
                break
            await asyncio.sleep(0.1)
        assert row.status is TranslationStatus.completed
    # A job uploaded a moment ago is its enqueue's to send, not the sweep's.
    assert (await fetch(worker_database, fresh))[0].status is TranslationStatus.pending


async def test_the_worker_closes_its_services_when_it_stops(
    worker: Worker, celery_client: Celery
) -> None:
    await result_of(celery_client.send_task("pdftranslate.ping"))
    worker.process.send_signal(signal.SIGTERM)  # a warm shutdown, as a deployment stops it
    assert await asyncio.to_thread(worker.process.wait, TIMEOUT) == 0
    log = worker.log.read_text()
    # Each pool process started its own services and closed them at its end.
    assert log.count("pdftranslate-worker: services closed") == log.count(
        "pdftranslate-worker: services started"
    )
    assert log.count("pdftranslate-worker: services started") >= 1


def test_plinth_serve_runs_the_worker_beside_the_app(
    services: None, queue: str, tmp_path: Path
) -> None:
    """``plinth serve --worker``: upload through the API, the worker translates, the API
    reports it completed; both on the embedded server's database."""
    import httpx

    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(_services_env(f"{queue}-serve"))
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "plinth", "serve", str(APP_DIR), "--port", str(port)]
    with log.open("w") as output:
        server = subprocess.Popen(
            [*command, "--worker"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    tenant = {"X-Tenant-ID": str(uuid.uuid4())}
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            try:
                httpx.get(f"{base}/health/live", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        user = httpx.post(
            f"{base}/users",
            json={"google_id": str(uuid.uuid4()), "email": "ada@example.com"},
            headers=tenant,
        ).json()
        job = httpx.post(
            f"{base}/users/{user['id']}/translations",
            params={"target_lang": "fr"},
            content=make_pdf([["Hello from the API"]]),
            headers={**tenant, "Content-Type": "application/pdf"},
        ).json()
        status: dict[str, Any] = {}
        while time.monotonic() < deadline + TIMEOUT:
            status = httpx.get(f"{base}/translations/{job['id']}/status", headers=tenant).json()
            if status["status"] in ("completed", "failed"):
                break
            time.sleep(0.1)
        assert status["status"] == "completed", log.read_text()
        assert status["progress"] == 100
    finally:
        server.terminate()
        server.wait(60)
        with Redis.from_url(BROKER_URL) as redis:
            redis.delete(f"{queue}-serve")
    output_text = log.read_text()
    assert server.returncode == 0, output_text
    assert "starting the worker: celery -A pdftranslate.tasks worker" in output_text
    assert "pdftranslate-worker: services closed" in output_text


def test_plinth_serve_worker_needs_a_tasks_module() -> None:
    translator = APP_DIR.parent / "translator"
    done = subprocess.run(
        [sys.executable, "-m", "plinth", "serve", str(translator), "--worker"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "has no tasks.py (the module with the Celery app)" in done.stderr


def _services_env(queue: str) -> dict[str, str]:
    """The broker, queue, cache and storage the test's own services use, for a subprocess."""
    return {
        "CELERY_BROKER_URL": BROKER_URL,
        "CELERY_RESULT_BACKEND": BACKEND_URL,
        "CELERY_QUEUE": queue,
        "REDIS_URL": cache.settings.redis_url or "",
        "CACHE_KEY_PREFIX": cache.settings.key_prefix or "",
        "AWS_BUCKET_NAME": storage.settings.bucket_name or "",
        "S3_ENDPOINT_URL": storage.settings.endpoint_url or "",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
    }
