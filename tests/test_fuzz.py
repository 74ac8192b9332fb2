"""Property-based fuzz of each app's OpenAPI (schemathesis): no input is a 5xx.

Each app is served by ``plinth serve`` in a process of its own, on a fresh
database of the test server, and schemathesis calls every operation over
HTTP with valid and invalid data (a bounded number of examples each). A
hand-written list of bad inputs misses classes this finds; each class it
found has a hand-written test in `test_bad_input.py`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import requests
from sqlalchemy import URL

from plinth.db.scratch import create_database, drop_database

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

APPS = Path(__file__).parents[1] / "apps"
EXAMPLES = int(os.environ.get("PLINTH_FUZZ_EXAMPLES", "25"))
"""Examples per operation and mode; ~60 s for the four apps on two shared cores."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest_asyncio.fixture(loop_scope="session")
async def fuzz_database(plinth_server: URL) -> AsyncIterator[URL]:
    name = f"plinth_fuzz_{uuid.uuid4().hex[:12]}"
    url = await create_database(plinth_server, name)
    try:
        yield url
    finally:
        await drop_database(plinth_server, name)


@pytest.fixture
def served(
    request: pytest.FixtureRequest, fuzz_database: URL, s3_server: str, tmp_path: Path
) -> Iterator[str]:
    """The app (named by the test's parameter) served on loopback; its base URL."""
    app: str = request.param
    port = _free_port()
    run = uuid.uuid4().hex[:12]
    env = {
        **os.environ,
        "DATABASE_URL": fuzz_database.render_as_string(hide_password=False),
        # mailagent's token columns
        "PLINTH_ENCRYPTION_KEYS": _encryption_key(),
        # pdftranslate's cache and storage
        "REDIS_URL": "redis://127.0.0.1:6379/13",
        "CACHE_KEY_PREFIX": f"pdftranslate-fuzz-{run}",
        "AWS_BUCKET_NAME": f"pdftranslate-fuzz-{run}",
        "S3_ENDPOINT_URL": s3_server,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        # pdftranslate's jobs: a queue of this run's own, deleted at the end
        "CELERY_BROKER_URL": FUZZ_BROKER,
        "CELERY_RESULT_BACKEND": FUZZ_BROKER,
        "CELERY_QUEUE": f"pdftranslate-fuzz-{run}",
    }
    log = tmp_path / "server.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "plinth", "serve", str(APPS / app), "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
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
        yield base
    finally:
        server.terminate()
        server.wait(30)
        _delete_queue(f"pdftranslate-fuzz-{run}")


FUZZ_BROKER = "redis://127.0.0.1:6379/14"


def _delete_queue(name: str) -> None:
    import redis

    with redis.Redis.from_url(FUZZ_BROKER) as client:
        client.delete(name)


def _encryption_key() -> str:
    from plinth.encryption import generate_key

    return generate_key()


@pytest.mark.parametrize(
    "served", ["translator", "rndcards", "pdftranslate", "mailagent"], indirect=True
)
def test_no_input_is_a_server_error(served: str) -> None:
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode

    # pdftranslate's upload is a PDF: sent as bytes, as octet-stream would be.
    schemathesis.serializer.alias("application/pdf", "application/octet-stream")
    schema = schemathesis.openapi.from_dict(httpx.get(f"{served}/openapi.json").json())
    failures: list[str] = []
    with requests.Session() as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=operation.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=False,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                    report_multiple_bugs=False,
                )
                def call(case: schemathesis.Case) -> None:
                    response = case.call(base_url=served, session=http, timeout=30)
                    assert response.status_code < 500, (
                        f"{case.method} {case.formatted_path}: {response.status_code}\n"
                        f"{case.as_curl_command()}"
                    )

                try:
                    call()
                except hypothesis.errors.Unsatisfiable:
                    pass  # no invalid request exists (an operation without parameters)
                except AssertionError as exc:
                    failures.append(f"{mode.value}: {str(exc)[:600]}")
    assert not failures, "\n".join(failures)
