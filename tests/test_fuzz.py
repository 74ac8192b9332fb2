"""Property-based fuzz of each app's OpenAPI (schemathesis): no input is a 5xx.

Each app is served by ``plinth serve`` in a process of its own, on a fresh
database of the test server, and schemathesis calls every operation over
HTTP with valid and invalid data (a bounded number of examples each). A
hand-written list of bad inputs misses classes this finds; each class it
found has a hand-written test in `test_bad_input.py`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import requests
from sqlalchemy import URL

from plinth.testing import served_app

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

APPS = Path(__file__).parents[1] / "apps"
EXAMPLES = int(os.environ.get("PLINTH_FUZZ_EXAMPLES", "25"))
"""Examples per operation and mode; ~60 s for the four apps on two shared cores."""


@pytest.fixture
def served(request: pytest.FixtureRequest, scratch_url: URL, s3_server: str) -> Iterator[str]:
    """The app (named by the test's parameter) served on loopback; its base URL."""
    app: str = request.param
    run = uuid.uuid4().hex[:12]
    env = {
        **os.environ,
        "DATABASE_URL": scratch_url.render_as_string(hide_password=False),
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
    try:
        with served_app(APPS / app, env=env) as served:
            yield served.url
    finally:
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
