"""Read throughput, primary alone vs primary + one streaming replica; reads lost when it stops.

    python -m benchmarks.replicas                   # ~2 minutes; writes RESULTS-replicas.md
    python -m benchmarks.replicas --seconds 0.3 --rounds 1 --drivers asyncpg   # a smoke run

A private embedded PostgreSQL and its hot standby (``pg_basebackup``), both on
this machine. The workload: GET-by-id, each read its own unit of work
(``Database.transaction()``, a Core ``SELECT`` by primary key on a random id of
10,000 rows), 16 at a time, for a fixed time. Two `Database` objects alternate,
in shuffled order within each round: one without replicas, one with
``DATABASE_REPLICA_URLS`` naming the standby. The ratio (with replica / primary
alone) is taken within each round and reported as median (min-max).

Then the standby is stopped (``-m immediate``) while 16 readers run on the
replicated `Database`: every failed read is counted, with the time of the last
failure after the stop, and the time until the replica is back in the rotation
once restarted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import platform
import random
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import DBAPIError

from plinth import Database, DatabaseSettings
from plinth.testing.replica import Standby, primary_and_standby

ROWS = 10_000
CONCURRENCY = 16
metadata = MetaData()
items = Table(
    "bench_replica_items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(40)),
)


def _settings(url: str, replica: str | None) -> DatabaseSettings:
    return DatabaseSettings(
        database_url=url,
        replica_urls=[replica] if replica else [],
        pool_size=CONCURRENCY,
        max_overflow=0,
        connect_retries=0,
        app_env="test",
    )


async def _reads(database: Database, seconds: float, rng: random.Random) -> tuple[int, int]:
    """(reads done, reads failed) by CONCURRENCY readers in `seconds`."""
    done, failed = 0, 0
    until = time.perf_counter() + seconds

    async def reader() -> None:
        nonlocal done, failed
        while time.perf_counter() < until:
            key = rng.randint(1, ROWS)
            try:
                async with database.transaction() as session:
                    await session.execute(select(items.c.id, items.c.name).where(items.c.id == key))
                done += 1
            except Exception:
                failed += 1

    await asyncio.gather(*(reader() for _ in range(CONCURRENCY)))
    return done, failed


@dataclass
class DriverResult:
    driver: str
    alone: list[float] = field(default_factory=list)  # reads/s per round
    replicated: list[float] = field(default_factory=list)
    served_by: str = ""
    stop_reads: int = 0
    stop_failed: int = 0
    last_failure_ms: float | None = None
    back_after_s: float | None = None

    def ratios(self) -> list[float]:
        return [r / a for r, a in zip(self.replicated, self.alone, strict=True)]


async def _measure(primary_url: str, standby: Standby, driver: str, args: argparse.Namespace,
                   rng: random.Random) -> DriverResult:  # fmt: skip
    result = DriverResult(driver)
    url = primary_url.replace("+asyncpg", f"+{driver}")
    alone = Database(_settings(url, None))
    replicated = Database(_settings(url, standby.url(driver)))
    async with alone, replicated:
        async with replicated.transaction() as session:  # where a read goes
            in_recovery = await session.scalar(select(func.pg_is_in_recovery()))
        result.served_by = "the standby" if in_recovery else "the primary (replica not healthy)"
        for database in (alone, replicated):
            await _reads(database, min(1.0, args.seconds), rng)  # warm the pools up
        for _ in range(args.rounds):
            order = [("alone", alone), ("replicated", replicated)]
            rng.shuffle(order)
            for name, database in order:
                done, _ = await _reads(database, args.seconds, rng)
                getattr(result, name).append(done / args.seconds)
        await _stop_under_reads(replicated, standby, result, args, rng)
    return result


async def _stop_under_reads(database: Database, standby: Standby, result: DriverResult,
                            args: argparse.Namespace, rng: random.Random) -> None:  # fmt: skip
    failures: list[float] = []
    stopped_at = 0.0

    async def reader(until: float) -> None:
        while time.perf_counter() < until:
            key = rng.randint(1, ROWS)
            try:
                async with database.transaction() as session:
                    await session.execute(select(items.c.name).where(items.c.id == key))
                result.stop_reads += 1
            except Exception:
                result.stop_failed += 1
                failures.append(time.perf_counter() - stopped_at)

    window = max(1.0, args.seconds)
    until = time.perf_counter() + 2 * window
    readers = [asyncio.create_task(reader(until)) for _ in range(CONCURRENCY)]
    await asyncio.sleep(window / 2)
    stopped_at = time.perf_counter()
    await asyncio.to_thread(standby.stop, "immediate")
    await asyncio.gather(*readers)
    result.last_failure_ms = max(failures) * 1000 if failures else None
    await asyncio.to_thread(standby.start)
    restarted = time.perf_counter()
    replicas = database.replicas
    assert replicas is not None
    for _ in range(600):  # up to ~30 s: back at the watcher's next check
        if replicas.choose() is not None:
            result.back_after_s = time.perf_counter() - restarted
            return
        await asyncio.sleep(0.05)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _versions(server: str) -> str:
    names = ("sqlalchemy", "asyncpg", "psycopg", "plinth-pg")
    packages = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in names)
    return (
        f"PostgreSQL {server} (primary and standby), Python {platform.python_version()}, {packages}"
    )


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load averages " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(results: list[DriverResult], args: argparse.Namespace, server: str,
           load_before: str, load_after: str) -> str:  # fmt: skip
    lines = [
        "# Read replicas: read throughput, and reads lost when a replica stops",
        "",
        "Written by `python -m benchmarks.replicas` "
        f"(`--seconds {args.seconds} --rounds {args.rounds}`).",
        "",
        f"- Versions: {_versions(server)}.",
        f"- Machine: {os.cpu_count()} CPUs, {platform.platform()}.",
        f"- Load before: `{load_before}`",
        f"- Load after: `{load_after}`",
        f"- Workload: GET-by-id of {ROWS:,} rows, one `Database.transaction()` per read, "
        f"{CONCURRENCY} concurrent readers, pool {CONCURRENCY}; {args.seconds} s per variant and "
        f"round, {args.rounds} interleaved rounds (shuffled order), in one process.",
        "",
        "| driver | primary alone, reads/s | with one replica, reads/s | ratio (replica / alone) "
        "| reads served by |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.driver} | {statistics.median(r.alone):,.0f} | "
            f"{statistics.median(r.replicated):,.0f} | {_spread(r.ratios())} | {r.served_by} |"
        )
    lines += [
        "",
        "Ratios are median (min-max) over rounds, each within one round.",
        "",
        "## A replica stopped under reads",
        "",
        f"{CONCURRENCY} readers on the replicated `Database` (`DB_REPLICA_CHECK_INTERVAL` 1 s); "
        "the standby stopped with `pg_ctl stop -m immediate`, then started again.",
        "",
        "| driver | reads | failed | last failure after the stop "
        "| back in rotation after restart |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in results:
        last = "none" if r.last_failure_ms is None else f"{r.last_failure_ms:.0f} ms"
        back = "not within 30 s" if r.back_after_s is None else f"{r.back_after_s:.2f} s"
        lines.append(f"| {r.driver} | {r.stop_reads} | {r.stop_failed} | {last} | {back} |")
    lines += [
        "",
        "## What these figures can and cannot show",
        "",
        "Both servers and the client share this machine's CPUs. With one replica every read of a "
        "unit of work goes to the replica and none to the primary, so the ratio measures the cost "
        "of the routing with the same CPUs doing the same work: 1.0 would mean it costs nothing; "
        "below 1.0 is its cost (`RoutingSession.get_bind` per statement, a second pool) plus "
        "what the standby's own processes (startup, WAL receiver) take from the shared CPUs. "
        "It cannot show the gain of a replica on its own "
        "host, which is the point of a replica: there, the read capacity adds up (up to the "
        "client's own limit), and the primary's CPU is left to the writes. That needs two "
        "hosts; on one machine a higher figure would only mean that two servers' processes got "
        "more of the shared CPUs than one.",
        "",
        "A failed read is one whose replica connection died after the unit of work's first "
        "statement began and whose rerun also failed: the first read of a unit of work runs "
        "once more on the primary when its replica connection is lost (`plinth.db.failover`, "
        "`RoutingSession`), and the replica is skipped from then on until a check finds it "
        "healthy again.",
        "",
    ]
    return "\n".join(lines)


async def _seed(url: str) -> str:
    database = Database(_settings(url, None))
    async with database, database.engine.begin() as connection:
        await connection.run_sync(metadata.drop_all)
        await connection.run_sync(metadata.create_all)
        rows = [{"id": n, "name": f"item {n}"} for n in range(1, ROWS + 1)]
        await connection.execute(insert(items), rows)
        return str(await connection.scalar(select(func.current_setting("server_version"))))


async def _caught_up(standby: Standby) -> None:
    database = Database(_settings(standby.url(), None))
    async with database:
        for _ in range(600):
            try:
                async with database.engine.connect() as connection:
                    count = await connection.scalar(select(func.count()).select_from(items))
            except DBAPIError:  # the table itself not replayed yet
                count = 0
            if count == ROWS:
                return
            await asyncio.sleep(0.05)
    raise RuntimeError("the standby did not replay the seed rows in 30 s")


async def run(args: argparse.Namespace) -> str:
    with primary_and_standby("plinth-bench-replicas-") as (primary, standby):
        load_before = _uptime()
        server = await _seed(primary.url)
        await _caught_up(standby)
        rng = random.Random(args.seed)
        results = []
        for driver in args.drivers.split(","):
            results.append(await _measure(primary.url, standby, driver, args, rng))
        return report(results, args, server, load_before, _uptime())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replicas", description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--drivers", default="asyncpg,psycopg")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).with_name("RESULTS-replicas.md")
    )
    args = parser.parse_args(argv)
    text = asyncio.run(run(args))
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
