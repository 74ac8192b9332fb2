"""The benchmark suite runs end to end with tiny sizes, so it cannot rot.

No timing is asserted; round trips are counted on the wire, so they are
deterministic and are asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import URL

ROOT = Path(__file__).parents[1]


def test_every_benchmark_runs_once_and_counts_round_trips(
    plinth_server: URL, tmp_path: Path
) -> None:
    output, data = tmp_path / "RESULTS.md", tmp_path / "results.json"
    command = [
        sys.executable, "-m", "benchmarks", "--quick", "--rounds", "1",
        "--url", plinth_server.render_as_string(hide_password=False),
        "--output", str(output), "--json", str(data),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    cases = json.loads(data.read_text())["cases"]
    network = {
        f"net{delay}us_{key}"
        for delay in (250, 1000)
        for key in ("get_c1", "get_c16", "page", "deep_keyset", "post")
    }
    assert set(cases) == {
        "get_c1", "get_c16", "post", "page", "deep_offset", "deep_keyset",
        "bulk", "bulk_ids", "isolation", *network,
    }  # fmt: skip
    trips = {key: case["round_trips"] for key, case in cases.items()}
    # Through the delaying proxy, every variant makes the round trips it makes on loopback.
    for key in network:
        assert trips[key] == trips[key.split("_", 1)[1]], key
    assert set(cases["net1000us_get_c1"]["ratios"]) == {"P/R", "N/P", "A/P"}
    # A plain read is one round trip for raw asyncpg and for Plinth (no
    # BEGIN/ROLLBACK); the seed-style code pays three.
    assert trips["get_c1"] == {"R": 1, "N": 3, "A": 3, "P": 1}
    assert trips["page"]["P"] == 1
    assert trips["page"]["N"] == 4  # BEGIN, page, count, ROLLBACK
    assert trips["deep_keyset"]["P"] == 1
    # A write: BEGIN, INSERT ... RETURNING, COMMIT; the seed adds a refresh.
    assert trips["post"]["P"] == 3
    assert trips["post"]["N"] == 6
    # The plugin's isolation: BEGIN, SAVEPOINT, the test's 2 statements,
    # ROLLBACK TO SAVEPOINT... at most a few round trips over a bare transaction.
    assert trips["isolation"]["B"] == 4
    assert trips["isolation"]["P"] <= trips["isolation"]["B"] + 2
    assert all(value > 0 for case in trips.values() for value in case.values())

    report = output.read_text()
    assert "| P Plinth |" in report
    assert "PostgreSQL" in report
    assert "## Targets" in report
    assert "1 ms each way" in report
    assert "network round trip of SELECT 1" in report


def test_the_replica_benchmark_runs_once(tmp_path: Path) -> None:
    """`python -m benchmarks.replicas` with a tiny duration: its own primary and standby."""
    output = tmp_path / "RESULTS-replicas.md"
    command = [
        sys.executable, "-m", "benchmarks.replicas", "--seconds", "0.2", "--rounds", "1",
        "--drivers", "asyncpg", "--output", str(output),
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = output.read_text()
    assert "| asyncpg |" in text
    assert "the standby |" in text  # the replicated reads were served by the standby
    assert "Load before:" in text
