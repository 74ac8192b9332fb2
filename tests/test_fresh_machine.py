"""Every reference app on a fresh machine: ``plinth serve`` with no variable set.

No DATABASE_URL, REDIS_URL, AWS_*/S3_* or PLINTH_ENCRYPTION_KEYS: PostgreSQL,
Valkey, SeaweedFS's S3 and the development encryption keys all come from the
embedded servers, in an embedded home of this module's own (a fresh machine's
``.plinth/``), and stop with their last user.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from plinth.embedded import EmbeddedServer
from plinth.embedded.process import process_state

ROOT = Path(__file__).parents[1]
STRIPPED = ("DATABASE_URL", "REDIS_URL", "PLINTH_ENCRYPTION_KEYS", "APP_ENV", "TEST_DATABASE_URL")
STRIPPED_PREFIXES = ("AWS_", "S3_", "CACHE_", "DB_")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def home() -> Iterator[Path]:
    # Reachable by the PostgreSQL server user when the tests run as root.
    path = Path(tempfile.mkdtemp(prefix="plinth-fresh-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        EmbeddedServer(path / "postgres18", 0, "", started_here=False).stop()
        shutil.rmtree(path, ignore_errors=True)


def _environment(home: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in STRIPPED and not key.startswith(STRIPPED_PREFIXES)
    }
    env["PLINTH_EMBEDDED_DIR"] = str(home)
    return env


@contextlib.contextmanager
def _serving(app: str, home: Path) -> Iterator[tuple[int, list[str]]]:
    """`plinth serve apps/<app>` until the block ends; yields its port and its stderr."""
    port = _free_port()
    with tempfile.TemporaryFile("w+") as err:
        server = subprocess.Popen(
            [sys.executable, "-m", "plinth", "serve", str(ROOT / "apps" / app),
             "--port", str(port)],
            env=_environment(home), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True,
        )  # fmt: skip
        lines: list[str] = []
        try:
            deadline = time.monotonic() + 45
            while True:
                if server.poll() is not None:
                    err.seek(0)
                    pytest.fail(f"plinth serve apps/{app} exited:\n{err.read()[-3000:]}")
                with contextlib.suppress(httpx.TransportError):
                    httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1)
                    break
                assert time.monotonic() < deadline, f"apps/{app} did not answer in 45 s"
                time.sleep(0.1)
            yield port, lines
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            err.seek(0)
            lines.extend(err.read().splitlines())
        assert server.returncode == 0, "\n".join(lines[-30:])


def _started(lines: list[str], title: str) -> bool:
    return any(line.startswith(("Started embedded " + title, "Reusing embedded " + title))
               for line in lines)  # fmt: skip


def test_translator_and_rndcards(home: Path) -> None:
    for app in ("translator", "rndcards"):
        with _serving(app, home) as (port, lines):
            ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=5)
            assert ready.status_code == 200, ready.text
            assert ready.json()["migrations"]["at_head"] is True
        assert _started(lines, "PostgreSQL 18")


def test_pdftranslate_has_postgres_redis_and_s3(home: Path) -> None:
    with _serving("pdftranslate", home) as (port, lines):
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        assert health.status_code == 200, health.text
        checks = health.json()["checks"]
        assert {name: check["status"] for name, check in checks.items()} == {
            "postgres": "up", "redis": "up", "s3": "up"
        }  # fmt: skip
        tenant = {"X-Tenant-ID": "00000000-0000-0000-0000-000000000001"}
        user = httpx.post(
            f"http://127.0.0.1:{port}/users",
            json={"google_id": "g-1", "email": "a@example.com", "name": "A"},
            headers=tenant,
        )
        assert user.status_code == 201, user.text
    assert _started(lines, "Valkey 8.")
    assert _started(lines, "SeaweedFS S3")
    # The last user gone, the servers are gone too.
    assert any(line.startswith("Stopped embedded Valkey on 127.0.0.1:") for line in lines)
    assert any(line.startswith("Stopped embedded SeaweedFS S3 on 127.0.0.1:") for line in lines)
    for name, program in (("valkey", "valkey-server"), ("seaweedfs", "weed")):
        state = (home / f"{name}.json").read_text()
        pid = int(state.split('"pid": ')[1].split(",")[0])
        assert process_state(pid, program) != "running", name


def test_mailagent_runs_on_development_keys(home: Path) -> None:
    with _serving("mailagent", home) as (port, lines):
        health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health/db", timeout=5)
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "connected"
    keys = home / "development-keys.json"
    assert any("development encryption keys in " + str(keys) in line for line in lines)
    assert keys.stat().st_mode & 0o777 == 0o600
