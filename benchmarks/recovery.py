"""Mean time to repair after drift: how fast each way of learning gets back to its accuracy.

On streams whose concept changes abruptly at event 5,000 (SEA, Agrawal, STAGGER, Hyperplane,
three seeds each) and two models (a Hoeffding tree and a scaled logistic regression), 24 runs,
it compares:

* ``none``: plain online learning (the model keeps learning, nothing else);
* ``drc-ddm``: River's ``DriftRetrainingClassifier`` with its default DDM (the anchor);
* ``drc-dual``: the same driven by streamer's default detector, DualADWIN;
* ``lifecycle``: streamer's pipeline with its defaults (drift monitoring, challengers started on
  the champion's warnings, promotion by McNemar's test, rollback), the champion's predictions.

For each run: the **recovery** is the number of events from the drift point until the accuracy
over the last ``--window`` events (all after the drift point) is back within 2 points of the
accuracy over the 1,000 events before the drift began ("never" if it does not happen by the
end). The drift point of an abrupt drift is event 5,000; a gradual one (``--width``) begins
there and its drift point is its centre, where the new concept takes over. The seconds
are the processing time of those events; the **final accuracy** is the prequential accuracy of
the whole run. The table gives per method the median recovery (the upper median, a "never"
counting as longer than any recovery), the runs that never recovered,
the median seconds and the mean final accuracy, and each run's figures with ``--runs``.

    python benchmarks/recovery.py                # the 24 runs, about 5 minutes
    python benchmarks/recovery.py --quick        # 4 runs
    python benchmarks/recovery.py --width 1000   # a gradual drift over 1,000 events
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable
from typing import Any

import river
from river import drift

from streamer.drift.concept import DualADWIN
from streamer.models import build_model
from streamer.pipeline import Pipeline
from streamer.settings import load_settings
from streamer.synth import concept_drift
from streamer.testing import json_records

DRIFT_AT = 5000  # 0-based index of the first event of the new concept
STREAMS = ("sea", "agrawal", "stagger", "hyperplane")
MODELS = ("hoeffding_tree", "logistic_regression")
METHODS = ("none", "drc-ddm", "drc-dual", "lifecycle")


def _rows(stream: str, seed: int, n: int, width: int = 1) -> list[dict[str, Any]]:
    # A gradual drift is centred on DRIFT_AT + width / 2: it starts at DRIFT_AT, as the abrupt
    # one does, and the recovery is counted from its centre (see recovery()).
    position = DRIFT_AT + 1 + (width // 2 if width > 1 else 0)
    data = concept_drift(stream, seed=seed, position=position, width=width, n=n)
    return [
        {"id": i, **{str(k): v for k, v in x.items()}, "label": y} for i, (x, y) in enumerate(data)
    ]


def _river_run(model: Any, rows: list[dict[str, Any]]) -> tuple[list[bool], list[float]]:
    """Prequential hits and the cumulative processing time after each event."""
    hits, clock = [], []
    spent = 0.0
    for row in rows:
        x = {k: v for k, v in row.items() if k not in ("id", "label")}
        t = time.perf_counter()
        proba = model.predict_proba_one(x)
        y_pred = max(proba, key=proba.get) if proba else None
        model.learn_one(x, row["label"])
        spent += time.perf_counter() - t
        hits.append(y_pred == row["label"])
        clock.append(spent)
    return hits, clock


def _lifecycle_run(
    preset: str, rows: list[dict[str, Any]], overrides: dict[str, Any]
) -> tuple[list[bool], list[float], int]:
    settings = load_settings(env={}, overrides={"model": {"preset": preset}, **overrides})
    pipeline = Pipeline(settings)
    state = pipeline.new_state("events", 0)
    hits: list[bool] = []
    clock: list[float] = []
    spent = 0.0
    promotions = 0
    records = list(json_records(rows))
    for lo in range(0, len(records), 100):
        t = time.perf_counter()
        out = pipeline.process(state, records[lo : lo + 100])
        dt = time.perf_counter() - t
        batch = [(ev.y, y) for seg in out.predictions for ev, y, _ in seg.scored]
        for i, (y, y_pred) in enumerate(batch):
            hits.append(y_pred == y)
            clock.append(spent + dt * (i + 1) / len(batch))
        spent += dt
        promotions += sum(d.decision in ("promoted", "rolled_back") for d in out.decisions)
    return hits, clock, promotions


def recovery(
    hits: list[bool], clock: list[float], window: int, width: int = 1
) -> tuple[int | None, float | None]:
    """Events and seconds from the drift point until the accuracy over the last ``window``
    events is within 2 points of the 1,000 events before the drift; (None, None) if never."""
    before = sum(hits[DRIFT_AT - 1000 : DRIFT_AT]) / 1000
    at = DRIFT_AT + (width // 2 if width > 1 else 0)
    run = sum(hits[at : at + window])
    for end in range(at + window, len(hits) + 1):
        if run / window >= before - 0.02:
            return end - at, clock[end - 1] - clock[at - 1]
        if end < len(hits):
            run += hits[end] - hits[end - window]
    return None, None


def run_one(
    method: str,
    stream: str,
    seed: int,
    preset: str,
    n: int,
    window: int,
    overrides: dict[str, Any],
    width: int = 1,
) -> dict[str, Any]:
    rows = _rows(stream, seed, n, width)
    promotions = 0
    if method == "lifecycle":
        hits, clock, promotions = _lifecycle_run(preset, rows, overrides)
    else:
        model = build_model(preset, seed=seed)
        if method == "drc-ddm":
            model = drift.DriftRetrainingClassifier(model, drift.binary.DDM())
        elif method == "drc-dual":
            model = drift.DriftRetrainingClassifier(model, DualADWIN())
        hits, clock = _river_run(model, rows)
    events, seconds = recovery(hits, clock, window, width)
    return {
        "method": method,
        "stream": stream,
        "seed": seed,
        "model": preset,
        "recovery": events,
        "seconds": seconds,
        "final": sum(hits) / len(hits),
        "promotions": promotions,
    }


def summarize(results: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        by.setdefault(r["method"], []).append(r)
    rows = []
    for method in METHODS:
        rs = by.get(method)
        if not rs:
            continue
        recovered = [r["recovery"] for r in rs if r["recovery"] is not None]
        # A run that never recovers counts as longer than any that did. The upper median is
        # one run's figure (never an average of a recovery and a "never").
        censored = [r["recovery"] if r["recovery"] is not None else 10**9 for r in rs]
        seconds = [r["seconds"] for r in rs if r["seconds"] is not None]
        median = statistics.median_high(censored)
        rows.append(
            {
                "method": method,
                "runs": len(rs),
                "median": "never" if median >= 10**9 else f"{median:,.0f}",
                "never": len(rs) - len(recovered),
                "seconds": f"{statistics.median(seconds):.3f}" if seconds else "-",
                "final": f"{statistics.fmean(r['final'] for r in rs):.3f}",
                "promotions": sum(r["promotions"] for r in rs),
            }
        )
    return rows


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        out.append(
            "| "
            + " | ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths, strict=True))
            + " |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":
        # River's DriftRetrainingClassifier (the anchor) depends on string hashing: fix it.
        os.execve(
            sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"}
        )
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=15_000, help="events per run")
    p.add_argument("--window", type=int, default=200, help="accuracy window of the recovery")
    p.add_argument(
        "--width", type=int, default=1, help="drift width: 1 abrupt, 1000 gradual (sigmoid)"
    )
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one seed, SEA and Agrawal")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--runs", action="store_true", help="print every run")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="lifecycle.KEY=VALUE",
        help="override a lifecycle setting (tuning)",
    )
    args = p.parse_args(argv)
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        overrides.setdefault(section, {})[name] = float(value) if "." in value else int(value)
    streams = STREAMS[:2] if args.quick else STREAMS
    seeds = range(1, 2 if args.quick else args.seeds + 1)
    methods = args.methods.split(",")
    started = time.time()
    results = [
        run_one(m, s, seed, preset, args.events, args.window, overrides, args.width)
        for s, seed, preset in itertools.product(streams, seeds, MODELS)
        for m in methods
    ]
    print(
        f"# recovery after {'an abrupt' if args.width == 1 else f'a gradual ({args.width:,} events)'}"
        f" drift from event {DRIFT_AT:,}"
        f"{f', centred on {DRIFT_AT + args.width // 2:,}' if args.width > 1 else ''}; "
        f"{args.events:,} events per run; "
        f"accuracy window {args.window}; {time.strftime('%Y-%m-%d')}, {platform.node()}, "
        f"Python {platform.python_version()}, River {river.__version__}; "
        f"{time.time() - started:.0f} s"
    )
    if overrides:
        print(f"# overrides: {overrides}")
    print(
        table(
            summarize(results),
            ["method", "runs", "median", "never", "seconds", "final", "promotions"],
        )
    )
    if args.runs:
        print()
        runs = [
            {
                **r,
                "recovery": f"{r['recovery']:,}" if r["recovery"] is not None else "never",
                "seconds": f"{r['seconds']:.3f}" if r["seconds"] is not None else "-",
                "final": f"{r['final']:.3f}",
            }
            for r in results
        ]
        columns = ["method", "stream", "seed", "model", "recovery", "seconds", "final"]
        print(table(runs, [*columns, "promotions"]))


if __name__ == "__main__":
    main()
