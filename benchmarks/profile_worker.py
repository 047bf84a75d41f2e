"""Where the worker's time goes: a sampling profile (py-spy) of its main thread, by stage.

For each workload (``a`` minimal, ``b`` defaults) and model (softmax, tree), the worker runs in a
child process on a pre-loaded topic (the events of ``throughput.py``) while py-spy samples it,
idle time included (waiting in ``consume`` or for deliveries is time the event pays for). The
samples of the main thread inside ``Worker.run`` are then attributed to a stage by walking each
stack from the root: the outermost stage function below ``Worker._handle`` names the stage, and
a few stages are split further (model: predict / learn; drift: concept / windows / schema).
Prints, per run, the share of each stage and the functions with the most samples of their own.

    .venv/bin/python benchmarks/profile_worker.py [--events 98194] [--workloads a,b]
        [--models softmax,tree] [--out DIR] [--py-spy PATH]

The speedscope files (open them at https://www.speedscope.app) stay in ``--out``. py-spy is
not a dependency of streamer: install it anywhere (``pip install py-spy``) and pass its path.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throughput as tp  # a sibling script, not a package

Frame = tuple[str, str, int]  # function, file, line

# (stage, predicate on a frame, the stages it refines). Walking a stack from the root, a frame
# that matches a rule whose parent is the current stage moves the sample into that stage.
Rule = tuple[str, Callable[[str, str], bool], tuple[str, ...]]


def _is(func: str, *files: str) -> Callable[[str, str], bool]:
    """A function (py-spy qualifies methods with their class) in one of ``files``."""

    def match(f: str, path: str) -> bool:
        return (f == func or f.endswith("." + func)) and any(path.endswith(x) for x in files)

    return match


def _in(*parts: str) -> Callable[[str, str], bool]:
    return lambda f, path: any(p in path for p in parts)


BATCH = "batch: own lines"
PREQ = "prequential: own lines"
DRIFT = "drift: own lines"
EMIT = "emit: own lines"
PARSE = "parse: own lines"
RULES: list[Rule] = [
    ("consume (wait and fetch)", _is("run", "streamer/worker.py"), ("",)),
    (BATCH, _is("_handle", "streamer/worker.py"), ("consume (wait and fetch)",)),
    (PARSE, _is("parse", "streamer/validate.py"), (BATCH,)),
    ("decode", _is("decode", "streamer/decode.py"), (PARSE,)),
    ("validate", _is("event", "streamer/validate.py"), (PARSE,)),
    (PREQ, _is("run", "streamer/prequential.py"), (BATCH,)),
    (
        "model: predict_proba_one",
        lambda f, p: f.endswith(("predict_proba_one", "predict_one")),
        (PREQ,),
    ),
    ("model: learn_one", lambda f, p: f.endswith("learn_one"), (PREQ,)),
    ("evaluation metrics", _in("river/metrics/", "river/utils/rolling", "prequential.py"), (PREQ,)),
    (DRIFT, _is("observe", "streamer/drift/monitor.py"), (BATCH,)),
    ("drift: concept", _is("_concept", "streamer/drift/monitor.py"), (DRIFT,)),
    ("drift: windows (features, predictions, labels)", _in("streamer/drift/window.py"), (DRIFT,)),
    ("drift: schema", _in("streamer/drift/schema.py"), (DRIFT,)),
    ("drift: findings and events", _is("_findings", "streamer/drift/monitor.py"), (DRIFT,)),
    (EMIT, _in("streamer/outputs.py"), (BATCH,)),
    ("emit: encode", _is("encode", "streamer/decode.py"), (EMIT,)),
    ("emit: produce", _is("produce", "streamer/kafka.py"), (EMIT,)),
    ("flush (wait for delivery)", _is("flush", "streamer/kafka.py"), (BATCH,)),
    ("commit", _is("commit", "streamer/kafka.py"), (BATCH,)),
    ("watermarks", _is("watermarks", "streamer/kafka.py"), (BATCH,)),
    ("export metrics", _is("_export", "streamer/worker.py"), (BATCH,)),
    ("export metrics", _in("prometheus_client/"), (BATCH,)),
]


def stage_of(stack: Sequence[Frame]) -> str | None:
    """The stage of one sample (root first), or None if it is not inside ``Worker.run``."""
    stage = ""
    for func, path, _ in stack:
        for name, match, parents in RULES:
            if stage in parents and match(func, path):
                stage = name
                break
    return stage or None


def analyse(path: Path) -> dict[str, Any]:
    """Stage shares and top self-time lines of the main thread's samples inside Worker.run."""
    doc = json.loads(path.read_text())
    frames: list[Frame] = [
        (f["name"], f.get("file", ""), f.get("line", 0)) for f in doc["shared"]["frames"]
    ]
    stages: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for profile in doc["profiles"]:
        stacks = [[frames[i] for i in sample] for sample in profile["samples"]]
        staged = [stage_of(stack) for stack in stacks]
        # From the first batch to the last: the group join and the shutdown are not processing.
        handled = [i for i, s in enumerate(staged) if s not in (None, "consume (wait and fetch)")]
        if not handled:
            continue
        first, last = handled[0], handled[-1]
        for stack, stage, weight in zip(
            stacks[first : last + 1],
            staged[first : last + 1],
            profile["weights"][first : last + 1],
            strict=True,
        ):
            if stage is None:
                continue
            total += weight
            stages[stage] += weight
            leaf = stack[-1]
            own[f"{leaf[0]} ({_short(leaf[1])}:{leaf[2]})"] += weight
            for func in {f"{f} ({_short(p)})" for f, p, _ in stack}:
                inclusive[func] += weight
    return {"total": total, "stages": stages, "own": own, "inclusive": inclusive}


def _short(path: str) -> str:
    for marker in ("site-packages/", "wt-perf/", "/work/main/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def profile_run(
    bench: tp.Bench,
    data: tp.Data,
    topic: str,
    *,
    workload: str,
    model: str,
    py_spy: str,
    out: Path,
    rate: int,
    blocking: bool,
) -> Path:
    names = tp.run_names(bench)
    bench.create([names["predictions"]])
    spec, _ = tp.kafka_spec(
        workload,
        bench,
        data,
        model=model,
        fmt="json",
        topic=topic,
        partitions=1,
        n=data.n,
        names=names,
        session_ms=bench.session_ms,
        c_override=None,
    )
    child = tp.Child(bench, spec)
    target = out / f"worker-{workload}-{model}.speedscope.json"
    spy = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(child.pid),
            "--idle",
            *([] if blocking else ["--nonblocking"]),
            "--rate",
            str(rate),
            "--format",
            "speedscope",
            "--output",
            str(target),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child.wait(tp.child_timeout(data.n))
    spy.wait(60)
    bench.delete(list(names.values())[1:])
    return target


def report(label: str, result: dict[str, Any], top: int, events: int) -> str:
    """Shares of the sampled time; µs per event = share x sampled seconds / events (py-spy
    pauses the process to sample, so absolute figures run a little high)."""
    total = result["total"] or 1
    lines = [
        f"#### {label}: {result['total']:.1f} s of the main thread, first batch to last",
        "",
    ]
    lines += ["| stage | share | µs/event |", "|---|---:|---:|"]
    for stage, n in result["stages"].most_common():
        lines.append(f"| {stage} | {n / total:.1%} | {n / events * 1e6:.1f} |")
    lines += ["", "| own samples: function (file:line) | share |", "|---|---:|"]
    for name, n in result["own"].most_common(top):
        lines.append(f"| `{name}` | {n / total:.1%} |")
    lines += ["", "| inclusive: function (file) | share |", "|---|---:|"]
    for name, n in result["inclusive"].most_common(top * 2):
        lines.append(f"| `{name}` | {n / total:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=tp.SHUTTLE_EVENTS)
    ap.add_argument("--workloads", default="a,b")
    ap.add_argument("--models", default="softmax,tree")
    ap.add_argument("--out", default="profiles", help="folder for the speedscope files")
    ap.add_argument("--rate", type=int, default=200, help="samples per second")
    ap.add_argument(
        "--nonblocking",
        action="store_true",
        help="sample without pausing the worker (less overhead, occasionally torn stacks)",
    )
    ap.add_argument("--top", type=int, default=15, help="functions listed per run")
    ap.add_argument(
        "--py-spy",
        default=shutil.which("py-spy") or "/work/bench-venv/bin/py-spy",
        help="py-spy executable",
    )
    ap.add_argument("--analyse", nargs="*", help="only analyse these speedscope files")
    args = ap.parse_args(argv)
    if args.analyse:
        for path in args.analyse:
            print(report(Path(path).name, analyse(Path(path)), args.top, args.events))
        return 0
    if not os.access(args.py_spy, os.X_OK):
        ap.error(f"py-spy not found at {args.py_spy}: pip install py-spy, then pass --py-spy")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bench = tp.Bench(None, None, 3000)
    try:
        data = tp.Data.build(args.events, ["json"])
        topic = bench.name("events-profile")
        bench.create([topic])
        bench.preload(topic, data.values["json"], data.keys)
        for model in args.models.split(","):
            for workload in args.workloads.split(","):
                tp.log(f"profile: workload ({workload}), {model}")
                started = time.monotonic()
                path = profile_run(
                    bench,
                    data,
                    topic,
                    workload=workload,
                    model=model,
                    py_spy=args.py_spy,
                    out=out,
                    rate=args.rate,
                    blocking=not args.nonblocking,
                )
                tp.log(f"  {time.monotonic() - started:.0f} s, {path}")
                result = analyse(path)
                print(report(f"workload ({workload}), {model}", result, args.top, data.n))
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
