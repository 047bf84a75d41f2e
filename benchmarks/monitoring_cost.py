"""Per-event cost of the whole drift stage a worker runs, by signal, against the model's own.

For 10, 50 and 200 numeric features (plus one categorical), a seeded stationary stream goes
through a scaled logistic regression (prequential), then through :class:`DriftMonitor` in
batches of 500, as in the worker: concept drift on the error stream, feature, prediction and
label windows, and schema drift. Reports microseconds per event for each signal and for the
bare River predict+learn loop measured in the same run, and the memory the monitor holds per
feature. Timings are wall-clock on a shared machine: read the ratios, not the digits.

    .venv/bin/python benchmarks/monitoring_cost.py [--events 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import itertools
import platform
import time
import tracemalloc
from typing import Any

import river

from streamer.drift.monitor import DriftMonitor
from streamer.models import build_model
from streamer.prequential import ModelSlot, prequential
from streamer.settings import DriftSettings, FieldSettings
from streamer.synth import CovariateShift
from streamer.testing import events_from, parsed

BATCH = 500


def _settings(**only: bool) -> DriftSettings:
    flags = {"features": False, "predictions": False, "labels": False, "schema": False}
    concept = {"enabled": only.pop("concept", False)}
    flags.update(only)
    return DriftSettings.model_validate({**flags, "concept": concept})


def _best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(n_features: int, n_events: int, repeat: int) -> dict[str, float]:
    stream = CovariateShift(n_features=n_features, position=10**12, seed=1)
    events = list(events_from(itertools.islice(stream, n_events)))
    fields = FieldSettings(features=[*stream.features, "cat"], categorical=["cat"])
    batches = [events[i : i + BATCH] for i in range(0, n_events, BATCH)]

    def model_only() -> list[Any]:
        slot = ModelSlot(build_model("logistic_regression", categorical=True))
        return [prequential([slot], b) for b in batches]

    out: dict[str, float] = {"model": _best(model_only, repeat) / n_events * 1e6}
    outcomes = model_only()

    def monitor(settings: DriftSettings) -> DriftMonitor:
        mon = DriftMonitor(settings, fields=fields, task="classification", topic="t", partition=0)
        model = mon.model_drift()
        for b, o in zip(batches, outcomes, strict=True):
            mon.observe(parsed(b), o, model, version=1)
        return mon

    signals = {
        "concept": _settings(concept=True),
        "features": _settings(features=True),
        "predictions": _settings(predictions=True),
        "labels": _settings(labels=True),
        "schema": _settings(schema=True),
        "all": DriftSettings(),
    }
    for name, settings in signals.items():
        out[name] = _best(lambda s=settings: monitor(s), repeat) / n_events * 1e6
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    mon = monitor(DriftSettings())
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del mon
    out["bytes_per_feature"] = held / (n_features + 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import numpy

    print(
        f"# drift stage cost: {args.events} events, batches of {BATCH}, best of {args.repeat}; "
        f"Python {platform.python_version()}, river {river.__version__}, numpy {numpy.__version__}"
    )
    print()
    print(
        "| features | model µs/ev | concept | features | predictions | labels | schema "
        "| all signals | all / model | memory per feature |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in (10, 50, 200):
        r = measure(n, args.events, args.repeat)
        print(
            f"| {n} | {r['model']:.1f} | {r['concept']:.1f} | {r['features']:.1f} "
            f"| {r['predictions']:.1f} | {r['labels']:.1f} | {r['schema']:.1f} | {r['all']:.1f} "
            f"| {r['all'] / r['model']:.2f} | {r['bytes_per_feature'] / 1024:.1f} KiB |"
        )


if __name__ == "__main__":
    main()
