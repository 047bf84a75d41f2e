"""The pipeline-cost benchmark still runs and counts the models it trains (never timings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_a_small_run_counts_one_model_for_a_and_two_with_a_permanent_challenger() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "pipeline_cost.py"),
            "--events=2000",
            "--rounds=1",
            "--models=softmax",
            "--workloads=a,c",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {
        cells[0]: cells
        for line in proc.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| workload")
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert rows["bare River loop"][2] == "1.00"
    minimal = rows["(a) minimal: concept drift, Accuracy"]
    assert minimal[3] == "1.00"  # one model, every event
    challenger = rows["(c) defaults + challenger + checkpoints"]
    assert float(challenger[3]) >= 2.0  # the champion and the permanent challenger
    for cells in rows.values():
        assert float(cells[1]) > 0
