"""Where the worker's CPU goes beyond the bare loop, without Kafka: the pipeline alone.

The throughput benchmark (``throughput.py``) measures whole workers through a broker; this one
runs streamer's :class:`~streamer.pipeline.Pipeline` in-process on the same Shuttle events, in
batches of 500, for each workload of that benchmark, beside the bare River loop (decode,
predict, Accuracy, DualADWIN, learn). It prints, per model, the CPU time per event, its ratio
to the bare loop (rounds in alternation, medians), and the work that explains it: models
trained per event (the lifecycle's challengers and previous champions learn too) and the
lifecycle's decisions over the run.

    .venv/bin/python benchmarks/pipeline_cost.py              # 3 rounds, 49,097 events
    .venv/bin/python benchmarks/pipeline_cost.py --events 20000 --rounds 1
"""

from __future__ import annotations

import argparse
import collections
import platform
import statistics
import sys
import time
from pathlib import Path

import orjson
import river

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput as tp  # a sibling script, not a package
from throughput_variants import Work

from streamer.pipeline import Pipeline
from streamer.settings import load_settings
from streamer.testing import FakeRecord

BATCH = 500


def _bare(model: str, values: list[bytes]) -> float:
    work = Work(model, "DualADWIN", "json")
    t = time.process_time()
    for v in values:
        work(v)
    return time.process_time() - t


def _pipeline(
    model: str, workload: str, values: list[bytes], features: list[str]
) -> tuple[float, float, dict[str, int]]:
    over = tp.workload_for(workload, model, None)
    settings = load_settings(
        env={},
        overrides=tp.merge(
            {
                "fields": {"id": "id", "label": "label", "features": features},
                "model": {"preset": tp.PRESETS[model], "seed": 42},
                "security": {"signing_key": "benchmark-signing-key-0123456789"},
            },
            over,
        ),
    )
    pipeline = Pipeline(settings)
    state = pipeline.new_state("events", 0)
    records = [
        FakeRecord(v, key=None, topic="events", partition=0, offset=i, timestamp_ms=i)
        for i, v in enumerate(values)
    ]
    decisions: collections.Counter[str] = collections.Counter()
    learned = 0
    t = time.process_time()
    for lo in range(0, len(records), BATCH):
        before = {id(s): s.n_learned for s in state.slots}
        out = pipeline.process(state, records[lo : lo + BATCH])
        # What the slots still there learned in the batch (a slot dropped within a batch
        # takes its count with it: a slight undercount).
        learned += sum(s.n_learned - before.get(id(s), 0) for s in state.slots)
        for d in out.decisions:
            decisions[d.decision] += 1
    seconds = time.process_time() - t
    return seconds, learned / len(values), dict(decisions)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=tp.SHUTTLE_EVENTS // 2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="softmax,tree")
    ap.add_argument("--workloads", default="a,b0,b,c")
    args = ap.parse_args(argv)
    rows = list(tp.shuttle_rows(args.events))
    values = [orjson.dumps(r) for r in rows]
    features = [k for k in rows[0] if k not in ("id", "label")]
    workloads = args.workloads.split(",")
    started = time.time()
    out: list[str] = []
    for model in args.models.split(","):
        ratios: dict[str, list[float]] = collections.defaultdict(list)
        per_event: dict[str, list[float]] = collections.defaultdict(list)
        extra: dict[str, tuple[float, dict[str, int]]] = {}
        for _ in range(args.rounds):
            bare = _bare(model, values)
            per_event["bare"].append(bare / len(values))
            for w in workloads:
                seconds, models, decisions = _pipeline(model, w, values, features)
                per_event[w].append(seconds / len(values))
                ratios[w].append(seconds / bare)
                extra[w] = (models, decisions)
        out.append(f"**{tp.MODEL_NAMES[model]}**\n")
        out.append("| workload | CPU µs/event | x bare | models trained per event | decisions |")
        out.append("|---|---:|---:|---:|---|")
        out.append(
            f"| bare River loop | {statistics.median(per_event['bare']) * 1e6:.1f} | 1.00 | 1 | |"
        )
        for w in workloads:
            models, decisions = extra[w]
            label = tp.VARIANTS[w][0].removeprefix("streamer ")
            said = ", ".join(f"{k} {v}" for k, v in sorted(decisions.items()))
            out.append(
                f"| {label} | {statistics.median(per_event[w]) * 1e6:.1f} "
                f"| {statistics.median(ratios[w]):.2f} | {models:.2f} | {said} |"
            )
        out.append("")
    print(
        f"# pipeline cost without Kafka: {args.events:,} Shuttle events (JSON), batches of "
        f"{BATCH}, {args.rounds} round(s) in alternation, medians; {time.strftime('%Y-%m-%d')}, "
        f"{platform.python_version()}, River {river.__version__}; {time.time() - started:.0f} s\n"
    )
    print("\n".join(out))


if __name__ == "__main__":
    main()
