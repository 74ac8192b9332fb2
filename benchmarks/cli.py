"""``python -m benchmarks``: start PostgreSQL, seed, measure, write RESULTS.md.

Without ``--url`` the embedded PostgreSQL of this directory is started (and
released at the end); with it, the given server is used. Either way the run
creates its own scratch databases there and drops them afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import importlib.metadata
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy import URL, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from benchmarks.cases import QUICK, Sizes, bulk_cases, http_cases, network_cases
from benchmarks.harness import Case, CaseResult, run_case
from benchmarks.isolation import isolation_bench
from benchmarks.netdelay import delayed_proxy
from benchmarks.report import markdown, write_json
from benchmarks.schema import create_schema, seed
from benchmarks.variants import VARIANTS, Variant, build_variant, close_all
from benchmarks.wire import RoundTripCounter, counting_proxy

__all__ = ["main"]

HERE = Path(__file__).parent
# Cases whose round trips equal another's (counted once, without concurrency).
SAME_TRIPS = {"get_c16": "get_c1"}


def _dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def _server(url: str | None) -> AsyncIterator[URL]:
    if url is not None:
        yield make_url(url).set(drivername="postgresql+asyncpg")
        return
    from plinth.embedded import start_embedded

    # The cases measure the client side, not the disk: a durable COMMIT costs 0.3-0.9 ms of
    # fsync here (against ~0.05 ms), which would swamp the create and N1 cases.
    os.environ.setdefault("PLINTH_EMBEDDED_SYNCHRONOUS_COMMIT", "off")
    server = await asyncio.to_thread(start_embedded, HERE)
    try:
        yield make_url(server.url)
    finally:
        await asyncio.to_thread(server.release)


@contextlib.asynccontextmanager
async def _database(server: URL, name: str) -> AsyncIterator[URL]:
    admin = create_async_engine(server, poolclass=NullPool)

    async def run(*statements: str) -> None:
        async with admin.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            for statement in statements:
                await connection.execute(text(statement))

    await run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name)
    finally:
        await run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


@contextlib.asynccontextmanager
async def _variants(
    url: URL, keys: Sequence[str]
) -> AsyncIterator[tuple[dict[str, Variant], dict[str, httpx.AsyncClient]]]:
    variants: dict[str, Variant] = {}
    clients: dict[str, httpx.AsyncClient] = {}
    try:
        for key in keys:
            variants[key] = await build_variant(key, url.render_as_string(hide_password=False))
            transport = httpx.ASGITransport(app=variants[key].app)
            clients[key] = httpx.AsyncClient(transport=transport, base_url="http://bench")
        yield variants, clients
    finally:
        for client in clients.values():
            await client.aclose()
        await close_all(variants)


def _cases(
    variants: dict[str, Variant],
    clients: dict[str, httpx.AsyncClient],
    admin: asyncpg.Connection,
    sizes: Sizes,
    seed_value: int,
) -> list[Case]:
    rng = random.Random(seed_value)
    return [*http_cases(clients, variants, sizes, rng), *bulk_cases(variants, admin, sizes)]


async def _count(cases: Sequence[Case], counter: RoundTripCounter) -> dict[str, dict[str, float]]:
    """Round trips per operation of every runner: warm up, then count a few operations."""
    trips: dict[str, dict[str, float]] = {}
    for case in cases:
        if case.key in SAME_TRIPS:
            continue
        trips[case.key] = {}
        for key, runner in case.runners.items():
            if case.setup is not None:
                await case.setup()
            await runner(case.warmup)
            if case.setup is not None:
                await case.setup()
            counter.reset()
            done = await runner(case.ops)
            trips[case.key][key] = counter.count / (done if done is not None else case.ops)
    for key, same in SAME_TRIPS.items():
        if same in trips:
            trips[key] = trips[same]
    return trips


def _versions(server_version: str) -> dict[str, str]:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "PostgreSQL": server_version,
        "asyncpg": version("asyncpg"),
        "SQLAlchemy": version("sqlalchemy"),
        "advanced-alchemy": version("advanced-alchemy"),
        "FastAPI": version("fastapi"),
        "plinth": version("plinth-pg"),
        "Python": platform.python_version(),
    }


@dataclasses.dataclass
class Report:
    results: list[CaseResult]
    environment: dict[str, str]
    markdown: str


async def run(args: argparse.Namespace) -> Report:
    sizes = QUICK if args.quick else Sizes()
    if args.rows is not None:
        sizes = dataclasses.replace(sizes, rows=args.rows)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    args.rounds_used = rounds
    only = set(args.only.split(",")) if args.only else None
    load_before = os.getloadavg()
    started = time.perf_counter()
    prefix = f"plinth_bench_{os.getpid()}"
    results: list[CaseResult] = []
    async with _server(args.url) as server, _database(server, prefix) as url:
        admin = await asyncpg.connect(_dsn(url))
        try:
            await create_schema(admin)
            await seed(admin, sizes.rows)
            server_version = await admin.fetchval("SHOW server_version")
            environment = _versions(str(server_version).split()[0])
            environment["synchronous_commit"] = str(await admin.fetchval("SHOW synchronous_commit"))
            async with _variants(url, VARIANTS) as (variants, clients):
                cases = _cases(variants, clients, admin, sizes, args.seed)
                async with isolation_bench(server, f"{prefix}_iso") as isolation:
                    cases.append(isolation.case(sizes.tests, sizes.slow_tests))
                    for case in cases:
                        if only is None or case.key in only:
                            _say(f"{case.title} ...")
                            results.append(await run_case(case, rounds, random.Random(args.seed)))
            delays = sizes.network_delays if args.network is None else args.network
            rtts: dict[str, str] = {}
            for delay in delays:
                rtts[f"{delay:g} ms"] = await _network(results, url, sizes, args, delay, only)
            if rtts:
                environment["network round trip of SELECT 1 (median), per one-way delay"] = (
                    ", ".join(f"{delay}: {rtt}" for delay, rtt in rtts.items())
                )
            if not args.no_round_trips:
                _say("counting round trips ...")
                await _round_trips(results, server, url, admin, sizes, args.seed, prefix)
        finally:
            await admin.close()
    elapsed = time.perf_counter() - started
    load_after = os.getloadavg()
    environment.update(
        {
            "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.system()}",
            "load average (1 min) before / after": f"{load_before[0]:.2f} / {load_after[0]:.2f}",
            "rounds": str(rounds),
            "sizes": f"{sizes}",
            "run time": f"{elapsed:.0f} s",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        }
    )
    command = " ".join(["python -m benchmarks", *_redacted(args.argv)])
    preamble = [
        f"Written by `{command}`. Times are per operation; ratios are "
        "taken within each round (same load) and summarised over rounds. Round "
        "trips are counted on the wire (PostgreSQL `ReadyForQuery` messages) in a "
        "separate, untimed pass.",
    ]
    return Report(
        results, environment, markdown(results, environment=environment, preamble=preamble)
    )


async def _rtt(dsn: str, count: int = 200) -> float:
    """The median round trip of ``SELECT 1`` on one connection to `dsn`, in ms."""
    connection = await asyncpg.connect(dsn)
    try:
        times = []
        for _ in range(count):
            started = time.perf_counter()
            await connection.fetchval("SELECT 1")
            times.append(time.perf_counter() - started)
    finally:
        await connection.close()
    return statistics.median(times) * 1000


async def _network(
    results: list[CaseResult],
    url: URL,
    sizes: Sizes,
    args: argparse.Namespace,
    delay_ms: float,
    only: set[str] | None,
) -> str:
    """The network cases at `delay_ms` each way, every variant through one proxy."""
    assert url.host is not None
    with delayed_proxy(url.host, url.port or 5432, delay_ms) as (host, port):
        proxied = url.set(host=host, port=port)
        rtt = await _rtt(_dsn(proxied))
        async with _variants(proxied, VARIANTS) as (variants, clients):
            rng = random.Random(args.seed)
            for case in network_cases(clients, variants, sizes, rng, delay_ms, rtt):
                if only is None or case.key in only or "network" in only:
                    _say(f"{case.title} ...")
                    results.append(await run_case(case, args.rounds_used, random.Random(args.seed)))
    return f"{rtt:.2f} ms (loopback + {2 * delay_ms:g} ms ideal)"


async def _round_trips(
    results: Sequence[CaseResult],
    server: URL,
    url: URL,
    admin: asyncpg.Connection,
    sizes: Sizes,
    seed_value: int,
    prefix: str,
) -> None:
    counter = RoundTripCounter()
    keys = {result.case.key for result in results}
    keys |= {key.split("_", 1)[1] for key in keys if key.startswith("net")}
    few = dataclasses.replace(
        sizes, requests=10, concurrent_requests=16, deep_requests=2, tests=4, slow_tests=2
    )
    assert url.host is not None
    async with counting_proxy(url.host, url.port or 5432, counter) as (host, port):
        proxied = url.set(host=host, port=port)
        async with _variants(proxied, VARIANTS) as (variants, clients):
            cases = [c for c in _cases(variants, clients, admin, few, seed_value) if c.key in keys]
            async with isolation_bench(server.set(host=host, port=port), f"{prefix}_rt") as iso:
                if "isolation" in keys:
                    cases.append(iso.case(few.tests, few.slow_tests))
                trips = await _count(cases, counter)
    for result in results:
        # A network case makes the round trips of its loopback case.
        key = result.case.key
        base = key.split("_", 1)[1] if key.startswith("net") else key
        result.case.round_trips = trips.get(base, {})


def _redacted(argv: Sequence[str]) -> list[str]:
    out = []
    for i, arg in enumerate(argv):
        previous = argv[i - 1] if i else ""
        if previous == "--url" or arg.startswith("--url="):
            from plinth.db.settings import redact

            value = arg.removeprefix("--url=")
            out.append(("--url=" if arg.startswith("--url=") else "") + redact(make_url(value)))
        else:
            out.append(arg)
    return out


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Plinth against raw asyncpg, seed-style SQLAlchemy and advanced-alchemy.",
    )
    p.add_argument("--url", help="PostgreSQL server to use (default: the embedded one)")
    p.add_argument("--rounds", type=int, help="timed rounds per benchmark (default 5; quick 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds")
    p.add_argument("--rows", type=int, help="rows seeded and bulk-inserted (default 100,000)")
    p.add_argument("--only", help="comma-separated case keys (get_c1,post,page,bulk,...)")
    p.add_argument("--seed", type=int, default=1, help="random seed")
    p.add_argument("--output", default=str(HERE / "RESULTS.md"), help="Markdown report path")
    p.add_argument("--json", help="also write the results as JSON here")
    p.add_argument("--no-round-trips", action="store_true", help="skip the counting pass")
    p.add_argument(
        "--network",
        type=lambda value: tuple(float(v) for v in value.split(",") if v),
        help="one-way delays in ms for the network scenario (default 0.25,1; '' for none)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv
    report = asyncio.run(run(args))
    Path(args.output).write_text(report.markdown)
    if args.json:
        write_json(Path(args.json), report.results, report.environment)
    _say(f"wrote {args.output} ({report.environment['run time']})")
