"""The throughput benchmark still runs end to end and prints its tables (never its timings).

A tiny ``--quick`` run on the session's broker: the bare loop, the hand-written loop, the
minimal worker workload and workload (c) (defaults, a permanent challenger, checkpoints), the
throughput and latency sections. The peers print n/a here (their packages are absent), which is
checked too. The memory and scale-out
sections reuse the same runners and are left to the real benchmark runs: each adds a worker
process or two and about ten seconds.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def test_quick_run_prints_every_table(bootstrap_servers: str, tmp_path: Path) -> None:
    raw = tmp_path / "results.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "throughput.py"),
            "--quick",
            "--events=600",
            "--latency-events=300",
            "--models=softmax",
            "--formats=json",
            "--workloads=bare,hand,a,c,quix",
            "--sections=throughput,latency",
            "--session-timeout-ms=1000",
            f"--bootstrap-servers={bootstrap_servers}",
            "--peer-python=",
            f"--json={raw}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout

    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    for label in (
        "bare River loop, DualADWIN (no Kafka)",
        "hand-written confluent-kafka batch loop",
        "streamer (a) minimal: concept drift, Accuracy",
        "streamer (c) defaults + challenger + checkpoints",
    ):
        assert label in rows, out
        assert "| n/a |" not in rows[label], rows[label]
    assert "| Quix Streams app | n/a |" in out
    assert "n/a quix/softmax: quixstreams is not importable" in out
    # The variants did the same work: one prediction per event and the bare loop's accuracy.
    assert "Every Kafka row delivered one prediction per event, no duplicates" in out, out
    assert "### Latency at 2,000 events/s: 300 events" in out
    assert "| (a) ≥ 0.90 x bare, softmax, json |" in out
    assert "| (c) ≥ 0.45 x bare, softmax, json |" in out

    results = json.loads(raw.read_text())["results"]
    runs = results["throughput"]["runs"]
    assert set(runs) == {
        "json/softmax/bare",
        "json/softmax/hand",
        "json/softmax/a",
        "json/softmax/c",
    }
    for key, (run,) in runs.items():
        assert run["n"] == 600, key
        assert math.isfinite(run["rate"]) and run["rate"] > 0, key
        assert math.isfinite(run["cpu_per_event"]) and run["cpu_per_event"] > 0, key
        assert run["problems"] == [], key
    latency = results["latency"]["runs"]
    assert set(latency) == {"softmax/bare", "softmax/hand", "softmax/a", "softmax/c"}
    for key in ("softmax/hand", "softmax/a", "softmax/c"):
        (entry,) = latency[key]
        assert entry["lost"] == 0, key
        assert len(entry["e2e_ms"]) == 3 and all(math.isfinite(x) for x in entry["e2e_ms"]), key
        assert all(math.isfinite(x) for x in entry["processing_ms"]), key
