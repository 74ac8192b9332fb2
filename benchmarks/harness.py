"""Timing: warm-up, then several rounds with the variants in shuffled order.

A *case* is one benchmark row: the same operation implemented by several
variants. Each variant's runner performs ``n`` operations and may return how
many operations' worth of work it actually did (the per-row-commit
reference inserts a sample and extrapolates). Within a round the variants
take turns in shuffled order, slice by slice (`Case.interleave`). Ratios
between variants are taken within a round, where both ran under the same
machine load, and summarised over rounds by their median and their range.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Case", "CaseResult", "Ratio", "Target", "run_case"]

Runner = Callable[[int], Awaitable[float | None]]


@dataclass(frozen=True)
class Target:
    """``numerator / denominator`` must be ``<=`` (or ``>=``) `bound`."""

    numerator: str
    denominator: str
    op: str
    bound: float

    def met(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator} {self.op} {self.bound:g}"


@dataclass
class Case:
    """One benchmark row: `ops` operations per timed run of each variant."""

    key: str
    title: str
    unit: str
    ops: int
    runners: dict[str, Runner]
    warmup: int = 1
    """Operations run untimed first; 0 asks a runner for a small sample."""
    setup: Callable[[], Awaitable[None]] | None = None
    """Run, untimed, before every timed run (e.g. truncating a table)."""
    max_rounds: int | None = None
    """Fewer rounds for cases whose slow variants take seconds per run."""
    interleave: int = 1
    """Slices per round: the variants take turns slice by slice, so that a
    drift in machine load (common on shared cores) hits them alike."""
    ratios: tuple[tuple[str, str], ...] = (("P", "R"), ("N", "P"), ("A", "P"))
    targets: tuple[Target, ...] = ()
    notes: tuple[str, ...] = ()
    round_trips: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Ratio:
    numerator: str
    denominator: str
    median: float
    low: float
    high: float


@dataclass
class CaseResult:
    case: Case
    seconds: dict[str, list[float]]
    """Seconds per operation, one entry per round."""

    def median(self, key: str) -> float:
        return statistics.median(self.seconds[key])

    def ratio(self, numerator: str, denominator: str) -> Ratio | None:
        if numerator not in self.seconds or denominator not in self.seconds:
            return None
        values = [
            a / b for a, b in zip(self.seconds[numerator], self.seconds[denominator], strict=True)
        ]
        return Ratio(numerator, denominator, statistics.median(values), min(values), max(values))


async def _timed(case: Case, key: str, n: int) -> tuple[float, float]:
    """Seconds taken and operations done by `n` operations of variant `key`."""
    if case.setup is not None:
        await case.setup()
    gc.collect()
    started = time.perf_counter()
    done = await case.runners[key](n)
    return time.perf_counter() - started, float(done if done is not None else n)


async def run_case(case: Case, rounds: int, rng: random.Random) -> CaseResult:
    """Warm every variant up, then time `rounds` rounds in shuffled order."""
    for key in case.runners:
        if case.setup is not None:
            await case.setup()
        await case.runners[key](case.warmup)
    seconds: dict[str, list[float]] = {key: [] for key in case.runners}
    if case.max_rounds is not None:
        rounds = min(rounds, case.max_rounds)
    slices = max(1, min(case.interleave, case.ops))
    for _ in range(rounds):
        elapsed = dict.fromkeys(case.runners, 0.0)
        done = dict.fromkeys(case.runners, 0.0)
        for index in range(slices):
            order = list(case.runners)
            rng.shuffle(order)
            for key in order:
                # The slices add up to `ops` operations exactly.
                n = case.ops * (index + 1) // slices - case.ops * index // slices
                spent, ops = await _timed(case, key, n)
                elapsed[key] += spent
                done[key] += ops
        for key in case.runners:
            seconds[key].append(elapsed[key] / done[key])
    return CaseResult(case, seconds)
