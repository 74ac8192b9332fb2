"""``benchmarks/RESULTS.md`` (and a JSON twin) from the measured cases."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness import CaseResult, Ratio

__all__ = ["markdown", "write_json"]

TITLES = {
    "R": "R raw asyncpg",
    "N": "N seed-style SQLAlchemy",
    "A": "A advanced-alchemy",
    "P": "P Plinth",
    "Q": "Q Plinth on psycopg",
    "N1": "N1 seed-style, commit per row",
    "Rb": "Rb raw asyncpg BEGIN/ROLLBACK",
    "B": "B session in a bare BEGIN/ROLLBACK",
    "C": "C create_all/drop_all",
    "T": "T template clone",
}


def _time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.001:
        return f"{seconds * 1000:.2f} ms"
    return f"{seconds * 1e6:.0f} µs"


def _ratio(ratio: Ratio) -> str:
    return f"{ratio.median:.2f} ({ratio.low:.2f}-{ratio.high:.2f})"


def _trips(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value - round(value)) < 0.05 or value > 100 else f"{value:.1f}"


def _targets(results: Sequence[CaseResult]) -> list[str]:
    lines = ["| benchmark | target | measured: median (min-max over rounds) | met |"]
    lines.append("| --- | --- | --- | --- |")
    for result in results:
        for target in result.case.targets:
            ratio = result.ratio(target.numerator, target.denominator)
            if ratio is None:
                lines.append(f"| {result.case.title} | {target} | not measured | - |")
                continue
            met = "yes" if target.met(ratio.median) else "**no**"
            if target.met(ratio.median) and not target.met(
                ratio.high if target.op == "<=" else ratio.low
            ):
                met = "yes (median; not every round)"
            lines.append(f"| {result.case.title} | {target} | {_ratio(ratio)} | {met} |")
    return lines


def _case(result: CaseResult) -> list[str]:
    case = result.case
    rounds = len(next(iter(result.seconds.values()), []))
    lines = [
        f"### {case.title}",
        "",
        f"Per timed run: {case.ops:,} x {case.unit}; {rounds} rounds.",
        "",
    ]
    lines.append(f"| variant | median per {case.unit} | min-max | round trips per {case.unit} |")
    lines.append("| --- | --- | --- | --- |")
    for key, values in result.seconds.items():
        lines.append(
            f"| {TITLES.get(key, key)} | {_time(result.median(key))} | "
            f"{_time(min(values))}-{_time(max(values))} | {_trips(case.round_trips.get(key))} |"
        )
    ratios = [r for r in (result.ratio(a, b) for a, b in case.ratios) if r is not None]
    if ratios:
        lines.append("")
        lines.append(
            "Ratios, median (min-max) over rounds: "
            + " · ".join(f"{r.numerator}/{r.denominator} {_ratio(r)}" for r in ratios)
        )
    for note in case.notes:
        lines.append(f"- {note}")
    lines.append("")
    return lines


def markdown(
    results: Sequence[CaseResult],
    *,
    environment: Mapping[str, str],
    preamble: Sequence[str] = (),
) -> str:
    lines = ["# Benchmark results", "", *preamble, ""]
    lines += ["## Environment", ""]
    lines += [f"- {name}: {value}" for name, value in environment.items()]
    lines += ["", "## Targets", "", *_targets(results), "", "## Results", ""]
    for result in results:
        lines += _case(result)
    return "\n".join(lines).rstrip() + "\n"


def write_json(path: Path, results: Sequence[CaseResult], environment: Mapping[str, str]) -> None:
    data: dict[str, Any] = {"environment": dict(environment), "cases": {}}
    for result in results:
        data["cases"][result.case.key] = {
            "title": result.case.title,
            "seconds_per_op": result.seconds,
            "round_trips": result.case.round_trips,
            "ratios": {
                f"{r.numerator}/{r.denominator}": [r.median, r.low, r.high]
                for r in (result.ratio(a, b) for a, b in result.case.ratios)
                if r is not None
            },
        }
    path.write_text(json.dumps(data, indent=2) + "\n")
