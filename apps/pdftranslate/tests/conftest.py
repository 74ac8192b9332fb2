from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from pdftranslate.db import cache, storage
from pdftranslate.main import app
from pdftranslate.queue import get_enqueue
from plinth.testing.alembic import alembic_config, alembic_engine  # noqa: F401  (pytest-alembic)

# Redis database 12 and a prefix per run: these tests touch no one else's keys.
REDIS_URL = "redis://127.0.0.1:6379/12"


@pytest.fixture
def plinth_app_dir() -> Path:
    return Path(__file__).parents[1]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def services(s3_server: str) -> AsyncIterator[None]:
    """The app's cache on the local Redis and its storage on moto, as its lifespan would."""
    run = uuid.uuid4().hex[:12]
    with pytest.MonkeyPatch.context() as env:
        # Read from the environment at start, as in production.
        env.setenv("REDIS_URL", REDIS_URL)
        env.setenv("CACHE_KEY_PREFIX", f"pdftranslate-test-{run}")
        env.setenv("AWS_BUCKET_NAME", f"pdftranslate-test-{run}")
        env.setenv("S3_ENDPOINT_URL", s3_server)
        env.setenv("AWS_REGION", "us-east-1")
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
        await cache.start()
        await storage.start()
    try:
        yield
    finally:
        await cache.clear()
        await cache.close()
        await storage.close()


@pytest.fixture
def enqueued() -> Iterator[list[tuple[uuid.UUID, uuid.UUID]]]:
    """The jobs the API hands to the workers, recorded: no broker in these tests."""
    jobs: list[tuple[uuid.UUID, uuid.UUID]] = []

    async def record(translation_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
        jobs.append((translation_id, tenant_id))
        return True

    app.dependency_overrides[get_enqueue] = lambda: record
    try:
        yield jobs
    finally:
        app.dependency_overrides.pop(get_enqueue, None)


@pytest.fixture
def client(
    client: httpx.AsyncClient, services: None, enqueued: list[tuple[uuid.UUID, uuid.UUID]]
) -> httpx.AsyncClient:
    """Plinth's client (database bound to the test), with cache and storage started."""
    return client


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of the test's own (URL with a password), to take down mid-test."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    process = subprocess.Popen(
        [
            *("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""),
            *("--requirepass", "outage-pw", "--dir", str(tmp_path)),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.02)
        yield f"redis://:outage-pw@127.0.0.1:{port}/0", process
    finally:
        process.terminate()
        process.wait(10)
