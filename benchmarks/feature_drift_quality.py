"""Quality of the window monitor on injected covariate shift: delay, false alarms, precision.

Each run streams :class:`streamer.synth.CovariateShift` (``n`` Gaussian features ``f0…`` and a
categorical ``cat``) through a :class:`~streamer.drift.window.WindowMonitor`. A long stable
segment after the reference is followed by a shift at ``position``: a mean or variance change
on ``k`` randomly chosen numeric features, or a new category ``z`` in ``cat``.

Per configuration and scenario it reports

- **delay**: events after the shift until the first evaluation where a shifted feature alarms
  (median over seeds, and the worst);
- **FA/10k**: alarms (feature x evaluation at level 2) per 10 000 events in stable segments,
  i.e. evaluations whose current window ends before the shift, for the whole monitor of
  ``n + 1`` features; normalised by the span where evaluations can happen
  (``position - reference_size - window_size`` events per run);
- **missed**: runs with no alarm on a shifted feature within ``3 * window_size`` events;
- **precision / recall** of the set of features that alarmed within that horizon.

Thresholds are applied afterwards to the recorded statistic values, so one stream serves every
threshold set. Run ``python benchmarks/feature_drift_quality.py [--quick] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import random
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import numpy as np

from streamer.drift.window import DEFAULT_THRESHOLDS, WindowMonitor
from streamer.synth import CovariateShift

STATS = ("psi", "js", "ks", "missing_rate", "out_of_range_rate", "new_category_rate")
BATCH = 500


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str = "mean"
    magnitude: float = 0.0
    new_category_rate: float = 0.0

    @property
    def new_category(self) -> bool:
        return self.new_category_rate > 0


SCENARIOS = (
    Scenario("mean +0.25 sd", "mean", 0.25),
    Scenario("mean +0.5 sd", "mean", 0.5),
    Scenario("mean +1 sd", "mean", 1.0),
    Scenario("sd x1.5", "variance", 1.5),
    Scenario("sd x2", "variance", 2.0),
    Scenario("new category 2%", new_category_rate=0.02),
    Scenario("new category 10%", new_category_rate=0.10),
)

# (reference_size, window_size, every)
CONFIGS = (
    (1000, 500, 250),
    (1000, 1000, 250),
    (2000, 1000, 250),
    (2000, 2000, 500),
    (5000, 2000, 500),
)


@dataclass
class Run:
    scenario: str
    config: tuple[int, int, int]
    seed: int
    position: int
    drifted: frozenset[int]
    events: np.ndarray  # (evaluations,)
    values: np.ndarray  # (evaluations, features, statistics), NaN where not reported


def _simulate(
    args: tuple[Scenario, int, int, int, int, Sequence[tuple[int, int, int]]],
) -> list[Run]:
    scenario, seed, n_features, k, stable, configs = args
    rng = random.Random(seed)
    names = [f"f{i}" for i in range(n_features)]
    shifted = [] if scenario.new_category else sorted(rng.sample(names, k))
    max_ref = max(c[0] for c in configs)
    max_win = max(c[1] for c in configs)
    position = max_ref + max_win + stable
    total = position + 3 * max_win
    stream = CovariateShift(
        n_features=n_features,
        shifted=shifted,
        position=position,
        kind=scenario.kind,
        magnitude=scenario.magnitude,
        new_category=scenario.new_category,
        new_category_rate=scenario.new_category_rate or 0.2,
        seed=seed,
    )
    rows = [x for x, _ in itertools.islice(stream, total)]
    features = [*names, "cat"]
    drifted = frozenset(
        [n_features] if scenario.new_category else [names.index(s) for s in shifted]
    )
    out = []
    for ref, win, every in configs:
        mon = WindowMonitor(names, ["cat"], reference_size=ref, window_size=win, every=every)
        ev: list[int] = []
        vals: list[np.ndarray] = []
        for start in range(0, total, BATCH):
            found = mon.observe(
                rows[start : start + BATCH], range(start, min(total, start + BATCH))
            )
            for f in found:
                if not ev or ev[-1] != f.events:
                    ev.append(f.events)
                    vals.append(np.full((len(features), len(STATS)), np.nan))
                vals[-1][features.index(f.feature), STATS.index(f.statistic)] = f.value
        out.append(
            Run(
                scenario.name,
                (ref, win, every),
                seed,
                position,
                drifted,
                np.array(ev),
                np.array(vals),
            )
        )
    return out


def _score(
    runs: Sequence[Run], alarm: Mapping[str, float], warning: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Delay, false alarms, misses and precision/recall over runs, for alarm thresholds."""
    thr = np.array([alarm.get(s, np.inf) for s in STATS])
    wthr = np.array([(warning or alarm).get(s, np.inf) for s in STATS])
    warns = 0
    delays: list[int] = []
    missed = fa = 0
    stable_events = 0
    tp = fp = fn = 0
    for r in runs:
        ref, win, _ = r.config
        horizon = 3 * win
        # (evaluations, features); NaN compares False
        alarms: np.ndarray = np.asarray((r.values >= thr).any(axis=2))
        stable = r.events < r.position
        fa += int(alarms[stable].sum())
        warns += int((r.values[stable] >= wthr).any(axis=2).sum())
        stable_events += r.position - 1 - ref - win
        post = (r.events >= r.position) & (r.events < r.position + horizon)
        flagged = set(np.flatnonzero(alarms[post].any(axis=0)).tolist())
        hit_rows = np.flatnonzero(post & alarms[:, sorted(r.drifted)].any(axis=1))
        if hit_rows.size:
            delays.append(int(r.events[hit_rows[0]]) - r.position + 1)
        else:
            missed += 1
        tp += len(flagged & r.drifted)
        fp += len(flagged - r.drifted)
        fn += len(r.drifted - flagged)
    return {
        "delay": statistics.median(delays) if delays else float("nan"),
        "worst": max(delays) if delays else float("nan"),
        "fa": 1e4 * fa / max(stable_events, 1),
        "stable_events": stable_events,
        "warn": 1e4 * warns / max(stable_events, 1),
        "missed": f"{missed}/{len(runs)}",
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
    }


def _null_quantiles(runs: Sequence[Run]) -> dict[str, tuple[float, float, float]]:
    out = {}
    for j, s in enumerate(STATS):
        v = np.concatenate([r.values[r.events < r.position][:, :, j].ravel() for r in runs])
        v = v[~np.isnan(v)]
        out[s] = (float(np.quantile(v, 0.99)), float(np.quantile(v, 0.999)), float(v.max()))
    return out


def _cfg(cfg: tuple[int, int, int]) -> str:
    return " / ".join(str(c) for c in cfg)


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if x != x else f"{x:.{digits}f}"  # NaN -> "-"


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 seeds, short stable segment")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--features", type=int, default=20)
    p.add_argument("--shifted", type=int, default=3)
    p.add_argument("--jobs", type=int, default=2, help="worker processes (at most 2)")
    a = p.parse_args(argv)
    seeds = a.seeds or (2 if a.quick else 6)
    stable = 6000 if a.quick else 20000
    configs = CONFIGS[1:3] if a.quick else CONFIGS
    jobs = max(1, min(a.jobs, 2))

    t0 = time.perf_counter()
    tasks = [
        (s, seed, a.features, a.shifted, stable, configs)
        for s in SCENARIOS
        for seed in range(seeds)
    ]
    runs: list[Run] = []
    if jobs == 1:
        for t in tasks:
            runs.extend(_simulate(t))
    else:
        with ProcessPoolExecutor(jobs) as ex:
            for r in ex.map(_simulate, tasks):
                runs.extend(r)
    elapsed = time.perf_counter() - t0

    print(f"# Feature drift quality ({'quick' if a.quick else 'full'})\n")
    print(
        f"Python {platform.python_version()}, river {version('river')}, numpy {np.__version__}; "
        f"{a.features} numeric features + 1 categorical, {a.shifted} shifted; {seeds} seeds; "
        f"stable segment >= {stable} events; batches of {BATCH}; {elapsed:.0f} s.\n"
    )

    print("## Stationary values of each statistic (all features, stable segments)\n")
    print("| reference / window / every | statistic | p99 | p99.9 | max |")
    print("|---|---|---|---|---|")
    for cfg in configs:
        q = _null_quantiles([r for r in runs if r.config == cfg])
        for s in STATS:
            lo, mid, hi = q[s]
            print(f"| {_cfg(cfg)} | {s} | {lo:.4f} | {mid:.4f} | {hi:.4f} |")
    print()

    alarm_default = {s: DEFAULT_THRESHOLDS[s][1] for s in STATS}
    warn_default = {s: DEFAULT_THRESHOLDS[s][0] for s in STATS}
    print("## Default alarm thresholds, per configuration and scenario\n")
    print(
        "Thresholds (warning, alarm): "
        + ", ".join(
            f"{s} {w:g}/{v:g}"
            for (s, v), w in zip(alarm_default.items(), warn_default.values(), strict=True)
        )
        + ".\n"
    )
    print(
        "| reference / window / every | scenario | delay (median) | delay (worst) "
        "| FA/10k | warn/10k | missed | precision | recall |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for cfg in configs:
        for sc in SCENARIOS:
            sel = [r for r in runs if r.config == cfg and r.scenario == sc.name]
            m = _score(sel, alarm_default, warn_default)
            print(
                f"| {_cfg(cfg)} | {sc.name} | {_fmt(m['delay'], 0)} | {_fmt(m['worst'], 0)} "
                f"| {m['fa']:.2f} | {m['warn']:.2f} | {m['missed']} "
                f"| {_fmt(m['precision'])} | {_fmt(m['recall'])} |"
            )
    print()

    sets: dict[str, dict[str, float]] = {
        "default (all statistics)": alarm_default,
        "default warnings": warn_default,
        "psi >= 0.25 only": {"psi": 0.25},
        "psi >= 0.1 only": {"psi": 0.1},
        "js >= 0.2 only": {"js": 0.2},
        "js >= 0.15 only": {"js": 0.15},
        "js >= 0.1 only": {"js": 0.1},
        "ks >= 0.2 only": {"ks": 0.2},
        "ks >= 0.15 only": {"ks": 0.15},
        "ks >= 0.1 only": {"ks": 0.1},
        "rates only (default)": {
            s: alarm_default[s] for s in ("missing_rate", "out_of_range_rate", "new_category_rate")
        },
    }
    for cfg in configs:
        sel_cfg = [r for r in runs if r.config == cfg]
        span = _score(sel_cfg, alarm_default)["stable_events"]
        print(f"## Threshold sets, reference {cfg[0]} / window {cfg[1]} / every {cfg[2]}\n")
        print(
            "Cells: median delay (missed runs). FA/10k is over all scenarios' stable segments: "
            f"{span} events, {span // cfg[2]} evaluations of {a.features + 1} features.\n"
        )
        head = " | ".join(s.name for s in SCENARIOS)
        print(f"| thresholds | FA/10k | {head} |")
        print("|---" * (len(SCENARIOS) + 2) + "|")
        for label, alarm in sets.items():
            fa = _score(sel_cfg, alarm)["fa"]
            cells = []
            for sc in SCENARIOS:
                m = _score([r for r in sel_cfg if r.scenario == sc.name], alarm)
                cells.append(f"{_fmt(m['delay'], 0)} ({m['missed'].split('/')[0]})")
            print(f"| {label} | {fa:.2f} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
