"""Benchmarks 1-4: HTTP reads and writes through each variant's app, and bulk inserts.

HTTP requests go through an in-process ``httpx.AsyncClient`` on
``ASGITransport``, so each operation costs what a request costs inside the
service (routing, validation, serialisation, the database), without a
network stack in between.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from benchmarks.harness import Case, Runner, Target
from benchmarks.schema import row_values
from benchmarks.variants import WRITE_ONLY, Naive, Row, Variant

__all__ = ["Sizes", "bulk_cases", "http_cases", "network_cases", "network_key"]


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does per timed run."""

    rows: int = 100_000
    """Rows seeded into ``bench_items``, and rows per bulk insert."""
    requests: int = 400
    """HTTP requests per timed run (concurrency 1)."""
    concurrent_requests: int = 800
    """HTTP requests per timed run at concurrency 16."""
    deep_requests: int = 40
    """Requests per timed run for the deep-offset page (each reads 90k rows)."""
    per_row_sample: int = 300
    """Rows inserted one commit at a time, extrapolated to `rows`."""
    tests: int = 200
    """Trivial tests per timed run of the isolation benchmark."""
    slow_tests: int = 20
    """Tests per timed run for create_all/drop_all and template clones."""
    network_requests: int = 200
    """HTTP requests per timed run through the delaying proxy (concurrency 1)."""
    network_delays: tuple[float, ...] = (0.25, 1.0)
    """One-way delays (ms) of the network scenario; each direction is delayed."""


QUICK = Sizes(
    rows=2_000,
    requests=20,
    concurrent_requests=32,
    deep_requests=5,
    per_row_sample=20,
    tests=20,
    slow_tests=3,
    network_requests=10,
)


def _check(response: httpx.Response, status: int = 200) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:200]}")


def _requests(
    send: Callable[[httpx.AsyncClient, int], Awaitable[None]],
    client: httpx.AsyncClient,
    concurrency: int,
) -> Runner:
    async def run(n: int) -> None:
        async def worker(first: int) -> None:
            for i in range(first, n, concurrency):
                await send(client, i)

        await asyncio.gather(*(worker(w) for w in range(concurrency)))

    return run


def http_cases(
    clients: dict[str, httpx.AsyncClient],
    variants: dict[str, Variant],
    sizes: Sizes,
    rng: random.Random,
) -> list[Case]:
    """Benchmarks 1-3 for every variant in `clients`."""
    ids = [rng.randint(1, sizes.rows) for _ in range(max(sizes.requests, 1000))]
    owners = [rng.randrange(100) for _ in range(1000)]
    deep = max(0, sizes.rows - sizes.rows // 10)

    async def get(client: httpx.AsyncClient, i: int) -> None:
        _check(await client.get(f"/items/{ids[i % len(ids)]}"))

    async def post(client: httpx.AsyncClient, i: int) -> None:
        body = {"owner_id": i % 100, "name": f"new {i}", "price": i % 1000}
        _check(await client.post("/items", json=body), 201)

    async def page(client: httpx.AsyncClient, i: int) -> None:
        _check(await client.get(f"/items?owner_id={owners[i % len(owners)]}"))

    async def deep_offset(client: httpx.AsyncClient, i: int) -> None:
        _check(await client.get(f"/deep?offset={deep + i % 50}"))

    def runners(
        send: Callable[[httpx.AsyncClient, int], Awaitable[None]], c: int, writes: bool = False
    ) -> dict[str, Runner]:
        return {
            key: _requests(send, client, c)
            for key, client in clients.items()
            if writes or key not in WRITE_ONLY
        }

    keyset: dict[str, Runner] = {}
    for key, variant in variants.items():
        paths = [variant.keyset_path(deep + j) for j in range(50)]
        if paths[0] is not None:

            async def after(client: httpx.AsyncClient, i: int, paths: list[Any] = paths) -> None:
                _check(await client.get(paths[i % len(paths)]))

            keyset[key] = _requests(after, clients[key], 1)

    read = "one round trip per read (no BEGIN/ROLLBACK)"
    return [
        Case(
            "get_c1",
            "GET /items/{id}, concurrency 1",
            "request",
            sizes.requests,
            runners(get, 1),
            interleave=8,
            warmup=max(20, sizes.requests // 10),
            targets=(
                Target("P", "R", "<=", 1.15),
                Target("N", "P", ">=", 1.7),
                Target("A", "P", ">=", 1.7),
            ),
            notes=(read,),
        ),
        Case(
            "get_c16",
            "GET /items/{id}, concurrency 16",
            "request",
            sizes.concurrent_requests,
            runners(get, 16),
            # Every pooled connection prepares its statements once.
            interleave=8,
            warmup=max(64, sizes.concurrent_requests // 4),
            targets=(
                Target("P", "R", "<=", 1.25),
                Target("N", "P", ">=", 1.7),
                Target("A", "P", ">=", 1.7),
            ),
        ),
        Case(
            "post",
            "POST /items (create, row returned)",
            "request",
            sizes.requests,
            runners(post, 1, writes=True),
            interleave=8,
            warmup=max(20, sizes.requests // 10),
            ratios=(("P", "R"), ("Q", "R"), ("N", "P"), ("A", "P"), ("Q", "P")),
            targets=(Target("P", "R", "<=", 2.0), Target("Q", "R", "<=", 2.0)),
            notes=(
                "P (asyncpg): BEGIN, INSERT ... RETURNING, COMMIT; Q (psycopg): BEGIN goes "
                "with the INSERT (`plinth.db.pipelined_begin`), then COMMIT",
            ),
        ),
        Case(
            "page",
            "GET /items?owner_id= (page of 50 + total)",
            "request",
            sizes.requests,
            runners(page, 1),
            interleave=8,
            warmup=max(20, sizes.requests // 10),
            targets=(
                Target("P", "R", "<=", 1.2),
                Target("N", "P", ">=", 1.7),
                Target("A", "P", ">=", 1.7),
            ),
        ),
        Case(
            "deep_offset",
            f"deep page of 50 by OFFSET {deep:,}",
            "request",
            sizes.deep_requests,
            runners(deep_offset, 1),
            warmup=3,
        ),
        Case(
            "deep_keyset",
            f"deep page of 50 by keyset (after row {deep:,})",
            "request",
            sizes.requests,
            keyset,
            interleave=8,
            warmup=max(20, sizes.requests // 10),
            ratios=(("P", "R"),),
            targets=(Target("P", "R", "<=", 1.2),),
        ),
    ]


NETWORK_CASES = ("get_c1", "get_c16", "page", "deep_keyset", "post")


def network_key(key: str, delay_ms: float) -> str:
    """The key of loopback case `key` run through a proxy delaying `delay_ms` each way."""
    return f"net{delay_ms * 1000:g}us_{key}"


def network_cases(
    clients: dict[str, httpx.AsyncClient],
    variants: dict[str, Variant],
    sizes: Sizes,
    rng: random.Random,
    delay_ms: float,
    rtt_ms: float,
) -> list[Case]:
    """The read cases (and the create) through the delaying proxy: same routes, same
    method, fewer requests; at 1 ms the targets of issue 14."""
    few = dataclasses.replace(
        sizes, requests=sizes.network_requests, concurrent_requests=sizes.network_requests * 2
    )
    strict = delay_ms >= 1.0
    cases = []
    for case in http_cases(clients, variants, few, rng):
        if case.key not in NETWORK_CASES:
            continue
        targets: tuple[Target, ...] = ()
        if strict and case.key in ("get_c1", "page"):
            targets = (
                Target("P", "R", "<=", 1.1),
                Target("N", "P", ">=", 2.0),
                Target("A", "P", ">=", 2.0),
            )
        if strict and case.key == "post":
            targets = case.targets
        cases.append(
            dataclasses.replace(
                case,
                key=network_key(case.key, delay_ms),
                title=f"{case.title}, {delay_ms:g} ms each way",
                targets=targets,
                warmup=min(case.warmup, 20 if case.key != "get_c16" else 64),
                notes=(
                    f"through the delaying proxy: {delay_ms:g} ms each way; "
                    f"measured round trip of `SELECT 1` {rtt_ms:.2f} ms",
                ),
            )
        )
    return cases


def bulk_rows(count: int) -> list[Row]:
    return [
        {"owner_id": owner, "name": name, "price": price}
        for owner, name, price in (row_values(i) for i in range(count))
    ]


def bulk_cases(variants: dict[str, Variant], admin: asyncpg.Connection, sizes: Sizes) -> list[Case]:
    """Benchmark 4: `sizes.rows` rows into ``bench_bulk``, truncated before every run."""
    rows = bulk_rows(sizes.rows)

    async def truncate() -> None:
        await admin.execute("TRUNCATE bench_bulk RESTART IDENTITY")

    def runner(insert: Callable[[Sequence[Row]], Awaitable[Any]]) -> Runner:
        async def run(n: int) -> None:
            if n == 0:  # warm-up
                await insert(rows[:1000])
            for _ in range(n):
                await insert(rows)

        return run

    variants = {key: v for key, v in variants.items() if key not in WRITE_ONLY}
    without_ids = {key: runner(v.bulk_insert) for key, v in variants.items()}
    naive = variants.get("N")
    if isinstance(naive, Naive):
        sample = rows[: sizes.per_row_sample]

        async def per_row(n: int) -> float:
            await naive.insert_per_row(sample if n else sample[:10])
            return len(sample) / len(rows)

        without_ids["N1"] = per_row
    with_ids = {key: runner(v.bulk_insert_returning) for key, v in variants.items()}
    label = f"{sizes.rows:,} rows"
    return [
        Case(
            "bulk",
            f"bulk insert of {label}, ids not returned",
            label,
            1,
            without_ids,
            warmup=0,
            max_rounds=3,
            setup=truncate,
            ratios=(("P", "R"), ("N", "P"), ("A", "P"), ("N1", "P")),
            targets=(
                Target("P", "R", "<=", 1.5),
                Target("A", "P", ">=", 10),
                Target("N1", "P", ">=", 100),
            ),
            notes=(
                "R is COPY; N (`add_all`) and A (`add_many`) fetch the ids anyway",
                f"N1 is the seed's per-row `add` + `commit` + `refresh`, timed on "
                f"{sizes.per_row_sample} rows and extrapolated",
            ),
        ),
        Case(
            "bulk_ids",
            f"bulk insert of {label}, ids returned",
            label,
            1,
            with_ids,
            warmup=0,
            max_rounds=3,
            setup=truncate,
            notes=(
                "R is one `INSERT ... SELECT FROM unnest(...) RETURNING id`; "
                "P is SQLAlchemy's batched `INSERT ... RETURNING` in a unit of work",
            ),
        ),
    ]
