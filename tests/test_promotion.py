"""Failover under load: the primary crashes, its streaming standby is promoted.

A private primary and its standby (``pg_basebackup``, synchronous replication,
so that a commit is acknowledged only once the standby has it). The app is
served by uvicorn with a multi-host ``DATABASE_URL`` (``?host=primary&host=
standby&target_session_attrs=read-write``): it reaches the promoted server
without a restart. Writers and readers run while the primary is stopped with
``pg_ctl stop -m immediate`` and the standby promoted. Every failed request
must be a 503 with Retry-After, none a 500, every acknowledged write must be
on the promoted server, and writes must succeed again after the promotion.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from plinth import Database, DatabaseSettings
from plinth.driver_errors import translate_outage
from plinth.embedded import EmbeddedServer
from plinth.embedded.postgres import bin_dir, run_program
from plinth.errors import DatabaseUnavailableError
from plinth.testing.replica import Standby, primary_and_standby
from tests.test_outages import Item, served

ENV = "PLINTH_EMBEDDED_DIR"


@dataclass
class Cluster:
    primary: EmbeddedServer
    standby: Standby

    def url(self, driver: str) -> str:
        hosts = f"host=127.0.0.1:{self.primary.port}&host=127.0.0.1:{self.standby.port}"
        return f"postgresql+{driver}://postgres@/postgres?{hosts}&target_session_attrs=read-write"

    def crash_primary(self) -> None:
        pg_ctl = str(bin_dir() / "pg_ctl")
        run_program([pg_ctl, "stop", "-w", "-m", "immediate", "-D", str(self.primary.data_dir)])


def _sql(port: int, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(
        f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True
    ) as connection:
        cursor = connection.execute(statement)  # type: ignore[arg-type]
        return cursor.fetchall() if cursor.description else []


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A fresh primary and synchronous standby for each test (it promotes the standby)."""
    with primary_and_standby("plinth-promotion-") as (primary, standby):
        # A commit waits until the standby has flushed it: acknowledged means on both.
        _sql(primary.port, "ALTER SYSTEM SET synchronous_standby_names = '*'")
        _sql(primary.port, "SELECT pg_reload_conf()")
        deadline = time.monotonic() + 30
        while not _sql(primary.port, "SELECT 1 FROM pg_stat_replication WHERE sync_state = 'sync'"):
            assert time.monotonic() < deadline, "the standby never became synchronous"
            time.sleep(0.05)
        yield Cluster(primary, standby)


@dataclass
class Load:
    requests: int = 0
    acknowledged: set[str] = field(default_factory=set)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    unexpected: list[str] = field(default_factory=list)
    down_at: float | None = None
    first_write_after_stop: float | None = None
    reads_after_stop: int = 0
    recovered: asyncio.Event = field(default_factory=asyncio.Event)


def _is_handled_503(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.headers.get("content-type") == "application/json"
        and str(response.json().get("detail", "")).startswith("database ")
        and response.headers.get("retry-after") == "1"
    )


async def _record(load: Load, request: object) -> httpx.Response | None:
    load.requests += 1
    try:
        response = await request  # type: ignore[misc]
    except httpx.TransportError as exc:  # a dropped connection: never expected
        load.statuses[type(exc).__name__] += 1
        return None
    load.statuses[str(response.status_code)] += 1
    if not response.is_success and not _is_handled_503(response):
        load.unexpected.append(f"{response.status_code} {response.text[:200]}")
    return response


async def _writer(client: httpx.AsyncClient, name: str, load: Load) -> None:
    for number in range(1, 100_000):
        key = f"{name}-{number}"
        down_at = load.down_at  # a write sent once the primary was down
        response = await _record(load, client.post(f"/items/{key}"))
        if response is not None and response.is_success:
            load.acknowledged.add(key)
            if down_at is not None and load.first_write_after_stop is None:
                load.first_write_after_stop = time.monotonic() - down_at
                load.recovered.set()
            await asyncio.sleep(0.005)
        else:
            await asyncio.sleep(0.02)  # bounded: ~50 requests/s per writer while down


async def _reader(client: httpx.AsyncClient, load: Load) -> None:
    while True:
        response = await _record(load, client.get("/items/count"))
        if load.down_at is not None and response is not None and response.is_success:
            load.reads_after_stop += 1
        await asyncio.sleep(0.01)


async def _a_standby_alone_is_a_503(cluster: Cluster, driver: str) -> None:
    """No writable host (only the standby answers): a 503, not a 500."""
    only_standby = DatabaseSettings(
        database_url=f"postgresql+{driver}://postgres@/postgres?host=127.0.0.1:"
        f"{cluster.standby.port}&target_session_attrs=read-write",
        connect_retries=0,
        app_env="test",
    )
    with pytest.raises(DatabaseUnavailableError):
        await Database(only_standby).start()
    engine = create_async_engine(only_standby.database_url)  # type: ignore[arg-type]
    try:
        with pytest.raises(DBAPIError) as caught:
            await engine.connect().start()
        assert isinstance(translate_outage(caught.value), DatabaseUnavailableError)
    finally:
        await engine.dispose()


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_promotion_under_load_is_503_then_writes_resume_and_loses_nothing(
    cluster: Cluster, driver: str
) -> None:
    settings = DatabaseSettings(
        database_url=cluster.url(driver),
        pool_size=4,
        max_overflow=4,
        pool_timeout=2.0,
        connect_timeout=2.0,
        connect_retries=0,
        app_env="test",
    )
    await _a_standby_alone_is_a_503(cluster, driver)
    database = Database(settings)
    await database.start()
    load = Load()
    try:
        async with served(database) as base_url:
            limits = httpx.Limits(max_connections=12, max_keepalive_connections=12)
            async with httpx.AsyncClient(base_url=base_url, timeout=20, limits=limits) as client:
                tasks = [asyncio.create_task(_writer(client, f"w{n}", load)) for n in range(6)]
                tasks += [asyncio.create_task(_reader(client, load)) for _ in range(3)]
                try:
                    await asyncio.sleep(0.7)
                    assert load.acknowledged, load.statuses
                    await asyncio.to_thread(cluster.crash_primary)
                    load.down_at = time.monotonic()
                    await asyncio.sleep(0.5)  # the cluster has no writable server meanwhile
                    promote_started = time.monotonic() - load.down_at
                    await asyncio.to_thread(cluster.standby.promote)
                    promoted = time.monotonic() - load.down_at
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(load.recovered.wait(), 20)
                    await asyncio.sleep(0.5)  # steady again
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
            async with database.transaction() as session:
                stored = set((await session.scalars(select(Item.key))).all())
                in_recovery = await session.scalar(select(func.pg_is_in_recovery()))
                server_port = await session.scalar(select(func.inet_server_port()))
    finally:
        await database.close()
    lost = load.acknowledged - stored
    first = load.first_write_after_stop
    errors = {status: n for status, n in load.statuses.items() if status not in ("200", "201")}
    print(
        f"\n{driver} promotion: requests {load.requests}, acknowledged writes "
        f"{len(load.acknowledged)}, lost {len(lost)}, errors by status {errors}, "
        f"promotion began {promote_started:.2f} s and ended {promoted:.2f} s after the primary "
        f"was down, first write {'never' if first is None else f'{first:.2f} s'} after it, "
        f"{load.reads_after_stop} reads served after the stop"
    )
    assert not lost
    assert set(load.statuses) <= {"200", "201", "503"}, load.statuses  # never 500, never dropped
    assert not load.unexpected, load.unexpected[:3]  # every 503 JSON with Retry-After
    assert load.statuses["503"] > 0  # the outage was seen
    assert first is not None  # writes succeed again after the promotion
    assert first > promote_started  # ... not before it: nothing else was writable
    assert (in_recovery, server_port) == (False, cluster.standby.port)
