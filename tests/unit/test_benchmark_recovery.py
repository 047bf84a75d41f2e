"""The recovery benchmark still runs and its summary agrees with its own runs (never timings)."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def _table(lines: list[str]) -> list[dict[str, str]]:
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
    ]


def test_a_quick_gradual_run_prints_a_summary_that_matches_its_runs() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "recovery.py"),
            "--quick",
            "--events=6000",
            "--methods=none,lifecycle",
            "--width=500",
            "--runs",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, *rest = proc.stdout.strip().split("\n\n")
    title, *summary_lines = first.splitlines()
    assert "a gradual (500 events) drift from event 5,000, centred on 5,250; 6,000" in title
    summary = {r["method"]: r for r in _table(summary_lines)}
    (runs_text,) = rest
    runs = _table(runs_text.splitlines())
    assert set(summary) == {"none", "lifecycle"}
    # SEA and Agrawal, one seed, two models: four runs per method.
    assert sorted((r["stream"], r["model"]) for r in runs if r["method"] == "none") == sorted(
        (s, m) for s in ("sea", "agrawal") for m in ("hoeffding_tree", "logistic_regression")
    )
    for method, row in summary.items():
        mine = [r for r in runs if r["method"] == method]
        assert int(row["runs"]) == len(mine) == 4
        nevers = sum(r["recovery"] == "never" for r in mine)
        assert int(row["never"]) == nevers
        figures = [
            10**9 if r["recovery"] == "never" else int(r["recovery"].replace(",", "")) for r in mine
        ]
        median = statistics.median_high(figures)
        assert row["median"] == ("never" if median == 10**9 else f"{median:,}")
        final = statistics.fmean(float(r["final"]) for r in mine)
        assert abs(float(row["final"]) - final) < 1e-3 + 1e-9
        assert int(row["promotions"]) == sum(int(r["promotions"]) for r in mine)
    # Plain learning never promotes anything.
    assert summary["none"]["promotions"] == "0"
