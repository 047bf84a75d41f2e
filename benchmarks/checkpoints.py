"""What partition state costs: checkpoint size and time, restore time, throughput with
checkpoints, and one worker process against two.

Three tables, printed as Markdown:

1. **Checkpoint and restore** of a partition's whole state (model, metrics, drift monitors)
   after 10k and 100k events, for the logistic-regression and Hoeffding-tree presets: the
   compressed size, the time to pickle + compress + sign it into changelog records, and the
   time to verify + unpickle it (what a restore does besides reading the topic).
2. **Throughput** of a worker on a pre-loaded single-partition topic of the embedded broker,
   with checkpoints every 1,000 and every 10,000 events against none, as a ratio to none
   (rounds in alternation, medians; ratios within one run: this machine's speed varies 2x).
3. **Scale-out**: ``streamer run`` against ``streamer run --workers 2`` on a 2-partition topic.

    python benchmarks/checkpoints.py            # about 5 minutes
    python benchmarks/checkpoints.py --quick
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import river

from streamer import kafka
from streamer.broker import FAST_GROUP_SETTINGS, EmbeddedBroker
from streamer.decode import JsonEncoder
from streamer.pipeline import Pipeline
from streamer.produce import produce_rows
from streamer.settings import Settings, load_settings
from streamer.signing import Signer, dumps
from streamer.state import Restorer, checkpoint_records
from streamer.synth import concept_drift
from streamer.testing import committed_count, json_records, settings_env
from streamer.worker import Worker

ROOT = Path(__file__).parents[1]
KEY = "benchmark-signing-key-0123456789"


def _rows(n: int, seed: int = 1, prefix: str = "e") -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{i}", **x, "label": y}
        for i, (x, y) in enumerate(concept_drift("agrawal", seed=seed, position=n // 2, n=n))
    ]


def _table(rows: list[dict[str, Any]]) -> str:
    cols = list(rows[0])
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [
        "| " + " | ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)) + " |"
        for r in rows
    ]
    return "\n".join(lines)


def checkpoint_costs(sizes: list[int], repeat: int) -> list[dict[str, Any]]:
    signer = Signer(KEY.encode())
    out = []
    for preset in ("logistic_regression", "hoeffding_tree"):
        settings = load_settings(env={}, overrides={"model": {"preset": preset}})
        pipeline = Pipeline(settings)
        state = pipeline.new_state("events", 0)
        done = 0
        rows = _rows(max(sizes))
        for n in sizes:
            pipeline.process(state, list(json_records(rows[done:n], start=done)))
            done = n
            write, read = [], []
            for _ in range(repeat):
                t = time.perf_counter()
                payload = dumps(state)
                records = checkpoint_records(
                    state, signer=signer, chunk_bytes=512 * 1024, writer="b", payload=payload
                )
                write.append(time.perf_counter() - t)
                t = time.perf_counter()
                r = Restorer("events", 0, signer=signer)
                for k, v, h in records:
                    r.add(k.encode(), v, h)
                restored = r.best()
                read.append(time.perf_counter() - t)
                assert restored is not None
            out.append(
                {
                    "preset": preset,
                    "events": f"{n:,}",
                    "checkpoint KiB": f"{len(payload) / 1024:,.0f}",
                    "records": len(records),
                    "write ms": f"{statistics.median(write) * 1000:.1f}",
                    "restore ms": f"{statistics.median(read) * 1000:.1f}",
                }
            )
    return out


def _settings(bootstrap: str, tag: str, partitions: int = 1, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": f"g-{tag}",
            "consumer": dict(FAST_GROUP_SETTINGS),
        },
        "topics": {
            "events": f"ev-{tag}",
            "predictions": f"pred-{tag}",
            "dead_letters": f"dlq-{tag}",
            "drift_events": f"drift-{tag}",
            "lifecycle_events": f"life-{tag}",
            "model_updates": f"models-{tag}",
            "partitions": partitions,
        },
        "prometheus": {"port": 0},
        "security": {"signing_key": KEY},
        "worker": {"batch_size": 500},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return load_settings(env={}, overrides=data)


def _load(settings: Settings, rows: list[dict[str, Any]]) -> None:
    Worker(settings).provision_topics()
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    produce_rows(rows, sink, settings.topics.events, JsonEncoder())
    sink.close()


def _timed_run(settings: Settings, n: int, *, workers: int = 1) -> float:
    """Seconds from the first commit to the last, for a ``streamer run`` process."""
    args = ["run"] + (["--workers", str(workers)] if workers > 1 else [])
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", *args],
        env=settings_env(settings),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    parts = settings.topics.partitions
    try:
        while committed_count(settings, parts) == 0:
            time.sleep(0.05)
        first, started = committed_count(settings, parts), time.monotonic()
        while committed_count(settings, parts) < n:
            time.sleep(0.05)
        seconds = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(60)
    return seconds * n / max(n - first, 1)


def throughput(broker: EmbeddedBroker, n: int, rounds: int) -> list[dict[str, Any]]:
    variants = {
        "none": {"enabled": False},
        "every 10,000": {"every_events": 10_000},
        "every 1,000": {"every_events": 1000},
    }
    rows = _rows(n)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for r in range(rounds):
        for name, checkpoint in variants.items():
            tag = f"tp-{r}-{name.replace(' ', '').replace(',', '')}-{time.monotonic_ns()}"
            settings = _settings(broker.bootstrap_servers, tag, checkpoint=checkpoint)
            _load(settings, rows)
            times[name].append(_timed_run(settings, n))
    base = statistics.median(times["none"])
    return [
        {
            "checkpoints": name,
            "events/s": f"{n / statistics.median(t):,.0f}",
            "x none": f"{base / statistics.median(t):.2f}",
        }
        for name, t in times.items()
    ]


def scale_out(broker: EmbeddedBroker, n: int, rounds: int) -> list[dict[str, Any]]:
    rows = _rows(n)
    times: dict[int, list[float]] = {1: [], 2: []}
    for r in range(rounds):
        for workers in (1, 2):
            tag = f"so-{r}-{workers}-{time.monotonic_ns()}"
            settings = _settings(broker.bootstrap_servers, tag, partitions=2)
            _load(settings, rows)
            times[workers].append(_timed_run(settings, n, workers=workers))
    one = statistics.median(times[1])
    return [
        {
            "processes": w,
            "events/s": f"{n / statistics.median(t):,.0f}",
            "x one": f"{one / statistics.median(t):.2f}",
        }
        for w, t in times.items()
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    sizes = [2000, 10_000] if args.quick else [10_000, 100_000]
    n = 20_000 if args.quick else 100_000
    rounds = 1 if args.quick else 3
    started = time.time()
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.node()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, River {river.__version__}"
    )
    print("\n## Checkpoint and restore of one partition's state\n")
    print(_table(checkpoint_costs(sizes, 1 if args.quick else 5)))
    with EmbeddedBroker() as broker:
        print(f"\n## Throughput with checkpoints ({n:,} events, {rounds} rounds)\n")
        print(_table(throughput(broker, n, rounds)))
        print(f"\n## One process against two, 2 partitions ({n:,} events)\n")
        print(_table(scale_out(broker, n, rounds)))
    print(f"\n({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
