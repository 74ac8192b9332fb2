"""The Redis cache, against the real Redis on 127.0.0.1:6379 and private redis-servers."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from plinth import (
    Cache,
    CacheSettings,
    CacheUnavailableError,
    ConfigurationError,
    ServiceStateError,
)

# A database number of its own, and a prefix per test, keep these tests off others' keys.
REDIS_URL = "redis://127.0.0.1:6379/11"


class Job(BaseModel):
    id: uuid.UUID
    status: str
    at: datetime


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def cache() -> AsyncIterator[Cache]:
    prefix = f"plinth-test-{uuid.uuid4().hex[:12]}"
    async with Cache(CacheSettings(redis_url=REDIS_URL), key_prefix=prefix) as started:
        try:
            yield started
        finally:
            await started.clear()


@dataclass
class RedisServer:
    """A redis-server of the test's own, which the test may stop and restart."""

    port: int
    password: str
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--requirepass", self.password, "--save", "", "--appendonly", "no"),
                *("--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError("redis-server exited") from None
                subprocess.run(["sleep", "0.02"], check=True)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(free_port(), "s3cret-pw", tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_settings_defaults_follow_the_seed() -> None:
    settings = CacheSettings()
    assert settings.max_connections == 10
    assert settings.redis_url is None  # the embedded Valkey (tests/test_embedded_services.py)


def test_settings_read_redis_url_and_cache_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("CACHE_MAX_CONNECTIONS", "20")
    monkeypatch.setenv("CACHE_KEY_PREFIX", "staging")
    settings = CacheSettings.load()
    assert (settings.redis_url, settings.max_connections) == ("redis://cache:6379/2", 20)
    assert settings.key_prefix == "staging"


def test_repr_masks_the_password() -> None:
    settings = CacheSettings(redis_url="redis://app:hunter2@cache:6379/0")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)
    assert "redis://app:***@cache:6379/0" in repr(settings)
    cache = Cache(settings)
    assert "hunter2" not in repr(cache)


def test_a_bad_url_names_the_variable_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "http://app:hunter2@cache:6379/0")
    with pytest.raises(ConfigurationError) as caught:
        CacheSettings.load()
    assert str(caught.value).startswith("REDIS_URL must start with one of redis://")
    assert "hunter2" not in str(caught.value)


def test_a_bad_number_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_MAX_CONNECTIONS", "0")
    with pytest.raises(ConfigurationError, match=r"^CACHE_MAX_CONNECTIONS "):
        CacheSettings.load()


async def test_ping_reports_latency_and_version(cache: Cache) -> None:
    ping = await cache.ping()
    assert ping.latency_ms >= 0
    assert ping.server_version.split(".")[0].isdigit()


async def test_using_a_cache_before_start_says_how_to_start_it() -> None:
    cache = Cache(CacheSettings(redis_url=REDIS_URL))
    with pytest.raises(ServiceStateError, match=r"Cache is new: call `await cache.start\(\)`"):
        await cache.get("anything")


async def test_a_closed_cache_cannot_be_used_or_restarted() -> None:
    cache = Cache(CacheSettings(redis_url=REDIS_URL))
    async with cache:
        await cache.ping()
    with pytest.raises(ServiceStateError, match="Cache is closed"):
        await cache.ping()
    with pytest.raises(ServiceStateError, match="create a new one"):
        await cache.start()


async def test_values_round_trip_as_json(cache: Cache) -> None:
    value = {"pages": 3, "langs": ["en", "fr"], "done": False, "note": None}
    await cache.set("job", value)
    assert await cache.get("job") == value
    assert await cache.get("missing") is None


async def test_get_validates_into_the_type_asked_for(cache: Cache) -> None:
    job = Job(id=uuid.uuid4(), status="pending", at=datetime.now(UTC))
    await cache.set("job", job)
    assert await cache.get("job", Job) == job
    await cache.set("ids", [1, 2, 3])
    assert await cache.get("ids", list[int]) == [1, 2, 3]


async def test_a_value_that_no_longer_validates_is_a_miss(cache: Cache) -> None:
    # Cached by an older release whose model had other fields.
    await cache.set("job", {"id": 1, "state": "old"})
    assert await cache.get("job", Job) is None
    fresh = Job(id=uuid.uuid4(), status="pending", at=datetime.now(UTC))

    async def load() -> Job:
        return fresh

    assert await cache.get_or_set("job", load, Job) == fresh
    assert await cache.get("job", Job) == fresh


async def test_keys_carry_the_prefix(cache: Cache) -> None:
    await cache.set("k", 1)
    assert await cache.client.get(cache.key("k")) == b"1"
    assert cache.key("k").endswith(":k")
    assert await cache.client.get("k") is None


async def test_ttl_defaults_to_default_ttl_and_can_be_given(cache: Cache) -> None:
    await cache.set("default", 1)
    await cache.set("short", 1, ttl=30)
    await cache.set("delta", 1, ttl=timedelta(minutes=5))
    default = await cache.ttl("default")
    assert default is not None
    assert 3500 < default <= 3600
    short = await cache.ttl("short")
    assert short is not None
    assert 0 < short <= 30
    delta = await cache.ttl("delta")
    assert delta is not None
    assert 290 < delta <= 300
    assert await cache.ttl("missing") is None


async def test_values_expire(cache: Cache) -> None:
    await cache.set("brief", "x", ttl=0.05)
    for _ in range(100):
        if not await cache.exists("brief"):
            break
        await asyncio.sleep(0.02)
    assert await cache.get("brief") is None


async def test_a_non_positive_ttl_is_refused(cache: Cache) -> None:
    with pytest.raises(ValueError, match="ttl must be positive"):
        await cache.set("k", 1, ttl=0)


async def test_delete_and_exists(cache: Cache) -> None:
    await cache.set("a", 1)
    await cache.set("b", 2)
    assert await cache.exists("a")
    assert await cache.delete("a", "b", "never-set") == 2
    assert not await cache.exists("a")
    assert await cache.delete() == 0


async def test_get_or_set_calls_the_factory_once(cache: Cache) -> None:
    calls = 0

    async def load() -> dict[str, int]:
        nonlocal calls
        calls += 1
        return {"progress": 40}

    assert await cache.get_or_set("status", load, dict[str, int]) == {"progress": 40}
    assert await cache.get_or_set("status", load, dict[str, int]) == {"progress": 40}
    assert calls == 1


async def test_a_cached_none_is_a_hit(cache: Cache) -> None:
    calls = 0

    async def load() -> None:
        nonlocal calls
        calls += 1

    await cache.get_or_set("nothing", load, type(None))
    await cache.get_or_set("nothing", load, type(None))
    assert calls == 1


async def test_scopes_keep_tenants_apart(cache: Cache) -> None:
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    a, b = cache.scope("tenant", tenant_a), cache.scope("tenant", tenant_b)
    await a.set("status", "pending")
    assert await b.get("status") is None
    assert a.key("status") == cache.key(f"tenant:{tenant_a}:status")
    await b.set("status", "done")
    assert await a.clear() == 1
    assert await a.get("status") is None
    assert await b.get("status") == "done"


async def test_clear_deletes_only_below_the_prefix(cache: Cache) -> None:
    outside = f"{cache.prefix}-not-ours"
    await cache.client.set(outside, b"keep")
    try:
        for n in range(1200):  # more than one SCAN/UNLINK batch
            await cache.client.set(cache.key(f"k{n}"), b"1")
        assert await cache.clear() == 1200
        assert await cache.client.get(outside) == b"keep"
    finally:
        await cache.client.delete(outside)


async def test_clear_refuses_an_unprefixed_cache() -> None:
    async with Cache(CacheSettings(redis_url=REDIS_URL)) as cache:
        with pytest.raises(ValueError, match="without a key prefix"):
            await cache.clear()


async def test_cache_key_prefix_overrides_the_apps_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("CACHE_KEY_PREFIX", "run-42")
    cache = Cache(key_prefix="myapp")
    assert cache.key("k") == "myapp:k"
    async with cache:
        assert cache.key("k") == "run-42:k"


async def test_more_tasks_than_connections_wait_for_the_pool() -> None:
    prefix = f"plinth-test-{uuid.uuid4().hex[:12]}"
    settings = CacheSettings(redis_url=REDIS_URL, max_connections=2, pool_timeout=30)
    async with Cache(settings, key_prefix=prefix) as cache:
        try:
            await asyncio.gather(*(cache.set(f"k{n}", n) for n in range(50)))
            values = await asyncio.gather(*(cache.get(f"k{n}") for n in range(50)))
            assert values == list(range(50))
            pool = cache.client.connection_pool
            assert len(pool._available_connections) <= 2  # type: ignore[attr-defined]
        finally:
            await cache.clear()


async def test_an_unreachable_redis_is_a_clear_error_without_the_password() -> None:
    port = free_port()
    settings = CacheSettings(
        redis_url=f"redis://:hunter2@127.0.0.1:{port}/0", connect_retries=1, retry_delay=0
    )
    cache = Cache(settings)
    with pytest.raises(CacheUnavailableError) as caught:
        await cache.start()
    message = str(caught.value)
    assert message.startswith(f"cannot connect to redis://:***@127.0.0.1:{port}/0 after 2 attempts")
    assert message.endswith("connection refused")
    assert "hunter2" not in message


async def test_a_wrong_password_fails_at_once(redis_server: RedisServer) -> None:
    url = redis_server.url.replace(redis_server.password, "wrong-pw")
    cache = Cache(CacheSettings(redis_url=url, connect_retries=5, retry_delay=60))
    with pytest.raises(CacheUnavailableError) as caught:
        await cache.start()
    assert "after 1 attempt " in str(caught.value)
    assert "authentication failed" in str(caught.value)
    assert "wrong-pw" not in str(caught.value)


async def test_redis_going_away_and_coming_back(redis_server: RedisServer) -> None:
    async with Cache(CacheSettings(redis_url=redis_server.url), key_prefix="t") as cache:
        await cache.set("k", 1)
        redis_server.stop()
        with pytest.raises(CacheUnavailableError) as caught:
            await cache.get("k")
        assert redis_server.password not in str(caught.value)
        with pytest.raises(CacheUnavailableError):
            await cache.ping()
        redis_server.start()
        # The pooled connection died with the server; the retry takes a fresh one.
        assert (await cache.ping()).latency_ms >= 0
        assert await cache.get("k") is None  # the server kept nothing (--save "")
