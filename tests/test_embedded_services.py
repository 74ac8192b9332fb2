"""The embedded Valkey and SeaweedFS S3, and the development encryption keys.

Real servers from the wheels, in embedded homes of the tests' own: reused
across processes, stopped with their last user, bound to loopback, behind
credentials made once (0600).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis

from plinth import Cache, ConfigurationError, EncryptionKeyError, Keyring, Storage
from plinth.cache import CacheSettings
from plinth.embedded import EmbeddedService, start_seaweedfs, start_valkey
from plinth.embedded.process import process_state
from plinth.encryption import ENV_VAR
from plinth.storage import StorageSettings

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = "PLINTH_EMBEDDED_DIR"


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="plinth-services-"))
    monkeypatch.setenv(ENV, str(path))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class _User:
    """Another process that starts or releases a server, driven over stdin."""

    SCRIPT = (
        "import json, sys\n"
        "from plinth import embedded\n"
        "start = getattr(embedded, sys.argv[1])\n"
        "for line in sys.stdin:\n"
        "    if line == 'start\\n':\n"
        "        server = start()\n"
        "        print(json.dumps([server.port, server.pid, server.started_here]), flush=True)\n"
        "    else:\n"
        "        print(json.dumps(server.release()), flush=True)\n"
    )

    def __init__(self, start: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", self.SCRIPT, start],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(SRC)},
        )

    def ask(self, command: str) -> Any:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(f"{command}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        assert answer, f"user process exited with code {self.proc.wait()}"
        return json.loads(answer)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate()


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _who_listens(port: int) -> list[tuple[int | None, str]]:
    return [
        (conn.pid, psutil.Process(conn.pid).name() if conn.pid else "?")
        for conn in psutil.net_connections(kind="inet")
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN
    ]


def _listen_addresses(pid: int) -> set[str]:
    return {
        conn.laddr.ip
        for conn in psutil.Process(pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }


@pytest.mark.parametrize(
    ("start", "program"), [("start_valkey", "valkey-server"), ("start_seaweedfs", "weed")]
)
def test_shared_between_processes_and_stopped_by_the_last_user(
    home: Path, start: str, program: str
) -> None:
    a, b = _User(start), _User(start)
    try:
        started = time.perf_counter()
        port, pid, started_here = a.ask("start")
        cold = time.perf_counter() - started
        assert started_here
        started = time.perf_counter()
        assert b.ask("start") == [port, pid, False]
        print(f"{program}: cold start {cold:.2f} s, reuse {time.perf_counter() - started:.3f} s")
        assert _listen_addresses(pid) == {"127.0.0.1"}  # every component, loopback only

        assert a.ask("release") is False  # B still uses it
        assert _listening(port)
        b.kill()  # SIGKILL: the kernel drops its hold
        started = time.perf_counter()
        assert a.ask("release") is True
        print(f"{program}: stop {time.perf_counter() - started:.2f} s")
        assert process_state(pid, program) != "running"
        assert not _listening(port), (program, port, _who_listens(port))

        # The next user starts it again, on the same port (clients keep their URL).
        port_again, pid_again, started_here = a.ask("start")
        assert (port_again, started_here) == (port, True)
        assert pid_again != pid
        assert a.ask("release") is True
    finally:
        a.kill()
        b.kill()


def _check_credentials(service: EmbeddedService) -> None:
    file = service.data_dir / "credentials.json"
    assert file.stat().st_mode & 0o777 == 0o600
    assert service.data_dir.stat().st_mode & 0o777 == 0o700
    assert json.loads(file.read_text()) == dict(service.credentials)
    assert str(service.credentials) not in repr(service)


def test_valkey_needs_its_password_and_keeps_nothing_on_disk(home: Path) -> None:
    service = start_valkey()
    try:
        _check_credentials(service)
        password = service.credentials["password"]
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=service.port).ping()
        client = redis.Redis.from_url(service.url)
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()
        with open(f"/proc/{service.pid}/cmdline", "rb") as cmdline:
            assert password.encode() not in cmdline.read()  # not visible in ps
        again = start_valkey()  # same process: one hold, same server and password
        assert (again.pid, again.url) == (service.pid, service.url)
        assert again.release() is False
    finally:
        assert service.release() is True


def test_seaweedfs_refuses_unsigned_requests_and_keeps_objects(home: Path) -> None:
    service = start_seaweedfs()
    try:
        _check_credentials(service)
        assert httpx.get(f"{service.url}/plinth/").status_code == 403
        with open(f"/proc/{service.pid}/cmdline", "rb") as cmdline:
            assert service.credentials["secret_access_key"].encode() not in cmdline.read()
    finally:
        assert service.release() is True


async def test_cache_and_storage_use_the_embedded_servers(
    home: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    for name in ("REDIS_URL", "AWS_BUCKET_NAME", "S3_ENDPOINT_URL", "APP_ENV"):
        monkeypatch.delenv(name, raising=False)
    async with Cache(key_prefix="t") as cache:
        await cache.set("k", {"v": 1})
        assert await cache.get("k") == {"v": 1}
        assert (await cache.ping()).server_version.startswith("8.")
        assert "***" in repr(cache)
    async with Storage(expire_after_days=1) as storage:
        await storage.upload("a/b.txt", b"hello")
        assert await storage.download("a/b.txt") == b"hello"
        assert [rule["ID"] for rule in await storage.lifecycle_rules()] == ["plinth-expire"]
        url = await storage.presigned_get("a/b.txt")
        async with httpx.AsyncClient() as client:
            assert (await client.get(url)).content == b"hello"
    async with Storage() as storage:  # a restarted server keeps its objects
        assert await storage.download("a/b.txt") == b"hello"
    err = capfd.readouterr().err
    assert "Started embedded Valkey 8.1.8 on 127.0.0.1:" in err
    assert f"(data: {home / 'valkey'})" in err
    assert "Started embedded SeaweedFS S3 " in err
    assert not [path for path in os.listdir(home / "valkey") if path.endswith((".rdb", ".aof"))]


def test_production_requires_the_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "AWS_BUCKET_NAME", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(ConfigurationError, match=r"^REDIS_URL is required when APP_ENV=production"):
        CacheSettings.load()
    with pytest.raises(
        ConfigurationError, match=r"^AWS_BUCKET_NAME is required when APP_ENV=production"
    ):
        StorageSettings.load()


def test_development_keys_are_made_once_and_refused_in_production(
    home: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("APP_ENV", "test")
    token = Keyring.from_env().encrypt("secret")
    keys = home / "development-keys.json"
    assert keys.stat().st_mode & 0o777 == 0o600
    assert "Generated development encryption keys in" in capfd.readouterr().err
    # Another process (the next run) gets the same key back.
    script = (
        "import sys; from plinth import Keyring; print(Keyring.from_env().decrypt(sys.argv[1]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, token], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )  # fmt: skip
    assert proc.stdout.strip() == "secret"
    assert f"Using development encryption keys in {keys}" in proc.stderr

    monkeypatch.setenv("APP_ENV", "production")
    with pytest.raises(EncryptionKeyError, match=f"^{ENV_VAR} is not set.*APP_ENV=production"):
        Keyring.from_env()


def test_celery_without_redis_url_uses_the_embedded_valkey(home: Path) -> None:
    """``plinth serve --worker`` on a fresh machine: the broker is the project's
    Valkey (database 1), a message goes through it, and the Valkey is released
    when the process exits."""
    script = (
        "import kombu\n"
        "from plinth import CelerySettings\n"
        "settings = CelerySettings.load(_env_file=None)\n"
        "with kombu.Connection(settings.broker) as connection:\n"
        "    queue = connection.SimpleQueue('plinth-test')\n"
        "    queue.put({'job': 1})\n"
        "    message = queue.get(timeout=5)\n"
        "    message.ack()\n"
        "    print(message.payload['job'], settings.broker.rsplit('/', 1)[1])\n"
        "    print(settings.backend == settings.broker)\n"
        "    print(repr(settings))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "CELERY_"))}
    env.pop("APP_ENV", None)
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    job, backend_same, settings_repr = result.stdout.splitlines()
    assert job == "1 1"
    assert backend_same == "True"
    assert "Started embedded Valkey" in result.stderr
    assert "Stopped embedded Valkey" in result.stderr  # released at exit: no user left
    password = json.loads((home / "valkey" / "credentials.json").read_text())["password"]
    assert password not in settings_repr + result.stderr
