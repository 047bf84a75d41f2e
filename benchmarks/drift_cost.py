"""Per-event cost and memory of the window monitor, next to a bare River predict + learn loop.

For 10, 50 and 200 numeric features (and a mix with categorical features) it prints, as
markdown tables:

- the steady-state cost of :meth:`WindowMonitor.observe` in microseconds per event, for Kafka
  style batches of 500 and 100 events and for single events, evaluations every ``every`` events
  included (best of ``--repeat`` runs, since the machine is shared);
- the cost of one evaluation (all statistics of all features);
- the memory the monitor holds per feature once the reference is complete and the window full,
  and its peak while collecting the reference (tracemalloc);
- a bare River ``StandardScaler | LogisticRegression`` predict_proba_one + learn_one loop on the
  same rows (categorical features one-hot encoded), and a per-event pure-Python binning path
  (``bisect`` per feature) for comparison with the vectorised numpy path the monitor uses.

Run ``python benchmarks/drift_cost.py [--quick]``.
"""

from __future__ import annotations

import argparse
import bisect
import platform
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import Any

import numpy as np
from river import compose, linear_model, preprocessing

from streamer.drift.window import WindowMonitor

Row = dict[str, Any]


def make_rows(n: int, n_num: int, n_cat: int, seed: int = 0) -> list[Row]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_num)).tolist()
    num = [f"f{i}" for i in range(n_num)]
    cats = np.array([f"v{i}" for i in range(20)])
    c = cats[rng.integers(0, 20, size=(n, n_cat))].tolist() if n_cat else [[]] * n
    names = num + [f"c{i}" for i in range(n_cat)]
    return [dict(zip(names, a + b, strict=True)) for a, b in zip(x, c, strict=True)]


def best_of(repeat: int, fn: Callable[..., float], *args: Any) -> float:
    return min(fn(*args) for _ in range(repeat))


def monitor_cost(
    rows: Sequence[Row], num: Sequence[str], cat: Sequence[str], batch: int, events: int
) -> float:
    """Microseconds per event in steady state (reference complete, window full)."""
    mon = WindowMonitor(num, cat)
    warm = mon.reference_size + mon.window_size
    for i in range(0, warm, 500):
        mon.observe(rows[i : i + 500], range(i, i + 500))
    todo = rows[warm : warm + events]
    t = time.perf_counter()
    for i in range(0, len(todo), batch):
        chunk = todo[i : i + batch]
        mon.observe(chunk, range(warm + i, warm + i + len(chunk)))
    return (time.perf_counter() - t) / len(todo) * 1e6


def evaluation_cost(rows: Sequence[Row], num: Sequence[str], cat: Sequence[str]) -> float:
    """Microseconds per evaluation (all statistics, all features)."""
    mon = WindowMonitor(num, cat)
    warm = mon.reference_size + mon.window_size
    mon.observe(rows[:warm], range(warm))
    n = 50
    t = time.perf_counter()
    for _ in range(n):
        mon._evaluate()  # private: the benchmark isolates the window-level work
    return (time.perf_counter() - t) / n * 1e6


def memory(rows: Sequence[Row], num: Sequence[str], cat: Sequence[str]) -> tuple[float, float]:
    """Bytes held per feature in steady state, and peak bytes per feature during the reference."""
    tracemalloc.start()
    try:
        mon = WindowMonitor(num, cat)
        for i in range(0, mon.reference_size, 500):
            mon.observe(rows[i : i + 500], range(i, i + 500))
        peak = tracemalloc.get_traced_memory()[1]
        warm = mon.reference_size + mon.window_size
        for i in range(mon.reference_size, warm, 500):
            mon.observe(rows[i : i + 500], range(i, i + 500))
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    f = len(num) + len(cat)
    return held / f, peak / f


def river_cost(rows: Sequence[Row], num: Sequence[str], cat: Sequence[str], events: int) -> float:
    """Microseconds per event of predict_proba_one + learn_one."""
    prep: Any = compose.Select(*num) | preprocessing.StandardScaler()
    if cat:
        prep = prep + (compose.Select(*cat) | preprocessing.OneHotEncoder())
    model = prep | linear_model.LogisticRegression()
    todo = rows[:events]
    ys = [sum(v for v in r.values() if isinstance(v, float)) > 0 for r in todo]
    t = time.perf_counter()
    for x, y in zip(todo, ys, strict=True):
        model.predict_proba_one(x)
        model.learn_one(x, y)
    return (time.perf_counter() - t) / len(todo) * 1e6


def python_binning_cost(rows: Sequence[Row], num: Sequence[str], events: int) -> float:
    """Microseconds per event of a per-event pure-Python path: bisect + ring + counts."""
    ref = np.array([[r[k] for k in num] for r in rows[:2000]])
    edges = [np.quantile(ref[:, j], np.linspace(0, 1, 11)).tolist() for j in range(len(num))]
    size = 1000
    ring = [[0] * len(num) for _ in range(size)]
    counts = [[0] * 13 for _ in num]
    todo = rows[2000 : 2000 + events]
    t = time.perf_counter()
    pos = 0
    for r in todo:
        old = ring[pos]
        new = [bisect.bisect_right(e, r.get(k)) for e, k in zip(edges, num, strict=True)]
        for c, o, v in zip(counts, old, new, strict=True):
            c[o] -= 1
            c[v] += 1
        ring[pos] = new
        pos = (pos + 1) % size
    return (time.perf_counter() - t) / len(todo) * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer events, one repeat")
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args(argv)
    repeat = 1 if a.quick else a.repeat
    events = 2000 if a.quick else 6000
    setups = [(10, 0), (50, 0), (200, 0), (40, 10)]

    defaults = WindowMonitor(["x"])
    print("# Window monitor cost\n")
    print(
        f"Python {platform.python_version()}, river {version('river')}, numpy {np.__version__}, "
        f"{platform.machine()}; defaults reference_size={defaults.reference_size}, "
        f"window_size={defaults.window_size}, every={defaults.every}, bins={defaults.bins}, "
        f"top_k={defaults.top_k}; steady state over {events} events, best of {repeat}.\n"
    )
    print(
        "| features | monitor, batch 500 (us/event) | batch 100 | batch 1 | one evaluation (us) "
        "| River predict+learn (us/event) | monitor / River | per-event Python binning "
        "| memory / feature (KiB) | peak during reference (KiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n_num, n_cat in setups:
        warm = 3000
        rows = make_rows(warm + events, n_num, n_cat)
        num = [f"f{i}" for i in range(n_num)]
        cat = [f"c{i}" for i in range(n_cat)]
        b500 = best_of(repeat, monitor_cost, rows, num, cat, 500, events)
        b100 = best_of(repeat, monitor_cost, rows, num, cat, 100, events)
        b1 = best_of(repeat, monitor_cost, rows, num, cat, 1, min(events, 1000))
        ev = best_of(repeat, evaluation_cost, rows, num, cat)
        rv = best_of(repeat, river_cost, rows, num, cat, min(events, 2000))
        py = (
            best_of(repeat, python_binning_cost, rows, num, min(events, 2000))
            if not n_cat
            else float("nan")
        )
        held, peak = memory(rows, num, cat)
        label = f"{n_num} numeric" + (f" + {n_cat} categorical" if n_cat else "")
        py_cell = "-" if py != py else f"{py:.1f}"
        print(
            f"| {label} | {b500:.1f} | {b100:.1f} | {b1:.1f} | {ev:.0f} | {rv:.1f} "
            f"| {b500 / rv:.2f} | {py_cell} | {held / 1024:.1f} | {peak / 1024:.1f} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
