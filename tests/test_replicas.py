"""Read replicas on a real streaming replica (pg_basebackup of a private embedded server).

A unit of work reads on the replica until it writes, then stays on the
primary; ``primary=True`` never leaves it; a lagging or stopped replica is
skipped, and a read whose replica connection died runs again on the primary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from plinth import Database, DatabaseSettings, readiness
from plinth.embedded import EmbeddedServer
from plinth.testing.replica import Standby, primary_and_standby

ENV = "PLINTH_EMBEDDED_DIR"


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[EmbeddedServer, Standby]]:
    with primary_and_standby("plinth-replicas-") as servers:
        yield servers


def _database(cluster: tuple[EmbeddedServer, Standby], driver: str, **extra: object) -> Database:
    primary, standby = cluster
    options: dict[str, object] = {"replica_check_interval": 0.2, **extra}
    settings = DatabaseSettings(
        database_url=primary.url.replace("+asyncpg", f"+{driver}"),
        replica_urls=[standby.url(driver)],
        connect_retries=0,
        app_env="test",
        **options,  # type: ignore[arg-type]
    )
    return Database(settings)


async def _on_replica(session: AsyncSession) -> bool:
    return bool(await session.scalar(select(func.pg_is_in_recovery())))


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_reads_on_the_replica_until_the_first_write(
    cluster: tuple[EmbeddedServer, Standby], driver: str
) -> None:
    async with _database(cluster, driver) as database:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS seen (n int)"))
        async with database.transaction() as session:
            assert await _on_replica(session) is True
            await session.execute(text("INSERT INTO seen VALUES (1)"))
            # Sticky: after the write, reads see it on the primary.
            assert await _on_replica(session) is False
            assert await session.scalar(text("SELECT count(*) FROM seen")) >= 1
        async with database.transaction(primary=True) as session:
            assert await _on_replica(session) is False
        # plinth.Reads reads outside a unit of work: on the replica too.
        read_bind = database.read_bind
        assert isinstance(read_bind, AsyncEngine)
        async with read_bind.connect() as connection:
            assert await connection.scalar(select(func.pg_is_in_recovery())) is True
        ok, report = await readiness(database)
        assert ok, report
        (replica,) = report["replicas"]
        assert replica["healthy"] is True
        assert replica["lag_seconds"] is not None


async def test_a_lagging_replica_is_skipped(cluster: tuple[EmbeddedServer, Standby]) -> None:
    async with _database(cluster, "asyncpg", replica_max_lag=0.3) as database:
        replicas = database.replicas
        assert replicas is not None
        async with database.engine.connect() as primary:
            await primary.execute(text("CREATE TABLE IF NOT EXISTS lag (n int)"))
            await primary.commit()
        standby_engine = replicas.choose()
        assert standby_engine is not None
        async with standby_engine.connect() as standby:
            await standby.execute(text("SELECT pg_wal_replay_pause()"))
            await standby.commit()
        try:
            async with database.engine.connect() as primary:
                for n in range(5):
                    await primary.execute(text("INSERT INTO lag VALUES (:n)"), {"n": n})
                    await primary.commit()
                    await asyncio.sleep(0.2)
            await replicas.check()
            assert replicas.choose() is None
            async with database.transaction() as session:
                assert await _on_replica(session) is False  # the primary served
            assert "lags" in replicas.report()[0]["reason"]
        finally:
            async with standby_engine.connect() as standby:
                await standby.execute(text("SELECT pg_wal_replay_resume()"))
                await standby.commit()
        deadline = time.monotonic() + 10
        while replicas.choose() is None:
            assert time.monotonic() < deadline, replicas.report()
            await asyncio.sleep(0.1)


async def test_reads_go_on_when_the_replica_stops(cluster: tuple[EmbeddedServer, Standby]) -> None:
    """Reads in a loop while the replica is stopped: none fails (printed for the record)."""
    _, standby = cluster
    # No check comes in time: the failed read itself moves the work to the primary.
    async with _database(cluster, "asyncpg", replica_check_interval=60) as database:
        replicas = database.replicas
        assert replicas is not None
        async with database.transaction() as session:
            assert await _on_replica(session) is True  # a pooled replica connection now
        failures, reads, on_primary = 0, 0, 0
        standby.stop("immediate")
        try:
            started = time.monotonic()
            while time.monotonic() - started < 1.5:
                try:
                    async with database.transaction() as session:
                        on_primary += not await _on_replica(session)
                    reads += 1
                except Exception:
                    failures += 1
                await asyncio.sleep(0.01)
            print(f"\nreplica stopped: {reads} reads, {failures} failed, {on_primary} on primary")
            assert failures == 0
            assert on_primary == reads
            assert replicas.report()[0]["healthy"] is False
        finally:
            standby.start()
        deadline = time.monotonic() + 15
        while replicas.choose() is None:  # back in the rotation at its next check
            assert time.monotonic() < deadline, replicas.report()
            await replicas.check()
            await asyncio.sleep(0.1)


async def test_a_restarted_replica_of_an_idle_primary_is_healthy_at_once(
    cluster: tuple[EmbeddedServer, Standby],
) -> None:
    """Regression: after a restart the standby's receiver reports the start of
    the WAL segment it streams from, behind what it had replayed, until the
    primary sends WAL again (11-30 s when idle); the check took that for lag."""
    _, standby = cluster
    async with _database(cluster, "asyncpg", replica_max_lag=0.3) as database:
        replicas = database.replicas
        assert replicas is not None
        standby.stop("immediate")
        standby.start()
        await asyncio.sleep(0.5)  # older than DB_REPLICA_MAX_LAG: the last replayed transaction
        engine = create_async_engine(standby.url())
        try:
            behind = text(
                "SELECT status = 'streaming'"
                " AND pg_last_wal_receive_lsn() < pg_last_wal_replay_lsn()"
                " FROM pg_stat_wal_receiver"
            )
            deadline = time.monotonic() + 10
            async with engine.connect() as connection:
                while not await connection.scalar(behind):
                    assert time.monotonic() < deadline, "the receiver never resumed streaming"
                    await asyncio.sleep(0.05)
        finally:
            await engine.dispose()
        await replicas.check()
        assert replicas.report()[0]["healthy"] is True, replicas.report()


def test_replica_urls_are_read_from_one_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DATABASE_REPLICA_URLS", "postgresql://r1:5432/app, postgresql+psycopg://r2/app"
    )
    settings = DatabaseSettings.load()
    assert [url.host for url in settings.replica_urls] == ["r1", "r2"]
    assert settings.replica_urls[1].drivername == "postgresql+psycopg"
    monkeypatch.setenv("DATABASE_REPLICA_URLS", "postgresql://ok/app,mysql://bad/app")
    with pytest.raises(Exception, match=r"DATABASE_REPLICA_URLS has a URL \(number 2\)"):
        DatabaseSettings.load()
