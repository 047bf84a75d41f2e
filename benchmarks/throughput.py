"""What streamer costs per event, against the bare River loop and the tools users would pick instead.

One command measures, on the embedded broker (started here) and River's Shuttle dataset played
twice (98,194 events, one partition), JSON and Avro, a scaled softmax regression and a
Hoeffding tree:

* **throughput** of every variant (see ``throughput_variants.py``): the bare River loop (with
  streamer's ``DualADWIN``, and River's ``ADWIN`` for reference), a minimal hand-written
  confluent-kafka loop, streamer's worker in workloads (a) minimal, (b0) the defaults without
  the lifecycle, checkpoints and model updates, (b) defaults and (c) defaults + a permanent
  shadow challenger, Bytewax and Quix Streams; each as a ratio to
  the bare loop, with CPU-seconds per million events;
* **latency** at a fixed rate: per-event processing latency and end-to-end latency (produced
  to prediction read by a downstream consumer), p50 / p99 / p99.9;
* **memory**: the worker's RSS after 100k and after 1M events;
* **scale-out**: 1 against 2 worker processes on a 2-partition topic;

and prints markdown tables, with the targets of issue 11 beside the figures.

How the Kafka rows are timed: from outside, the same way for every variant. Each run writes its
predictions to a fresh topic; throughput is ``(count - 1) / (last - first)`` over their record
timestamps (CreateTime, stamped by librdkafka when the variant produces the prediction). That
spans the first event's prediction to the last one's: group join and start-up are excluded,
and so are decoding the first batch and delivering the last one (one batch of 500 out of
98,194). CPU-seconds are the child process's (``/proc/PID/stat``, all threads, librdkafka's
included), sampled every 20 ms and interpolated to the same two instants. The bare loop times
itself. Every row's prequential accuracy, recomputed from its predictions topic, must equal
the bare loop's: the variants did the same work. The rows with the lifecycle (b, c) replace
their champion on drift, so theirs differs, and must be the same in every round.

Rounds run in alternation (every variant once per round, then again), and the table shows
medians over rounds; the ratios are taken within a round, since this machine's absolute speed
varies twofold from day to day. Read ratios, not digits.

    .venv/bin/python benchmarks/throughput.py            # the full run (about half an hour)
    .venv/bin/python benchmarks/throughput.py --quick    # 10k events, one round, for development
    .venv/bin/python benchmarks/throughput.py --workloads bare,hand,a --models softmax --formats json

Bytewax and Quix Streams rows run under ``--peer-python`` (default ``/work/bench-venv/bin/python``
when it exists, or ``$STREAMER_BENCH_PEER_PYTHON``): a separate venv with ``bytewax`` and
``quixstreams``, never this project's lock. When they cannot be imported there, their rows say
n/a.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import os
import pickle
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VARIANTS_SCRIPT = HERE / "throughput_variants.py"

#: Workloads of the worker, as settings over the defaults.
WORKLOADS: dict[str, dict[str, Any]] = {
    # (a) minimal: concept drift only, Accuracy only, predictions out (no lifecycle, no
    # checkpoints, no model updates).
    "a": {
        "drift": {"features": False, "predictions": False, "labels": False, "schema": False},
        "evaluation": {"metrics": ["Accuracy"]},
        "lifecycle": {"enabled": False},
        "checkpoint": {"enabled": False},
        "models": {"publish": False},
    },
    # (b) the defaults: all five drift signals, three metrics running and rolling, the
    # lifecycle (challengers on drift), checkpoints every 10,000 events, model updates.
    "b": {},
    # (b0) the defaults without the lifecycle, checkpoints and model updates: what (b) was
    # when issue 11 set its targets (five drift signals, three metrics running and rolling).
    # The lifecycle trains a challenger beside the champion after each drift warning, and
    # the previous champion for a while after each promotion: more models, not more overhead.
    "b0": {
        "lifecycle": {"enabled": False},
        "checkpoint": {"enabled": False},
        "models": {"publish": False},
    },
}


def workload_c(preset: str) -> dict[str, Any]:
    """(c) the defaults (checkpoints included) plus one permanent shadow challenger of the
    champion's preset: a challenger doubles the model's cost."""
    return {
        "lifecycle": {"challengers": [{"name": "challenger", "preset": preset}]},
        "checkpoint": {"every_events": 10_000},
    }


PRESETS = {"softmax": "softmax_regression", "tree": "hoeffding_tree"}
MODEL_NAMES = {
    "softmax": "StandardScaler | SoftmaxRegression",
    "tree": "HoeffdingAdaptiveTreeClassifier(seed=42)",
}
# Row order, labels, and the target ratio to the bare loop where issue 11 sets one.
VARIANTS: dict[str, tuple[str, float | None]] = {
    "bare": ("bare River loop, DualADWIN (no Kafka)", None),
    "adwin": ("bare River loop, River ADWIN (reference)", None),
    "hand": ("hand-written confluent-kafka batch loop", None),
    "a": ("streamer (a) minimal: concept drift, Accuracy", 0.90),
    "b0": ("streamer (b0) defaults without lifecycle, checkpoints, updates", 0.75),
    "b": ("streamer (b) defaults", 0.75),
    "c": ("streamer (c) defaults + challenger + checkpoints", 0.45),
    "bytewax": ("Bytewax dataflow", None),
    "quix": ("Quix Streams app", None),
}
KAFKA_VARIANTS = ("hand", "a", "b0", "b", "c", "bytewax", "quix")
WORKER_VARIANTS = ("a", "b0", "b", "c")
LIFECYCLE_VARIANTS = ("b", "c")  # the defaults' lifecycle replaces champions on drift
PEERS = {"bytewax": "bytewax", "quix": "quixstreams"}
SECTIONS = ("throughput", "latency", "memory", "scaleout")
CPU_TARGET = 1.35  # CPU per event of (b), x the bare loop's
RSS_TARGET = 0.05  # growth from 100k to 1M events
SCALE_TARGET = 1.8  # 2 processes against one
SHUTTLE_EVENTS = 2 * 49_097


# -- data ---------------------------------------------------------------------------------------


def shuttle_rows(n: int) -> Iterator[dict[str, Any]]:
    """River's Shuttle, looped as often as needed, with ids 0..n-1."""
    from river import datasets

    i = 0
    while True:
        for x, y in datasets.Shuttle():
            if i >= n:
                return
            yield {"id": str(i), **x, "label": y}
            i += 1


def avro_schema(row: dict[str, Any]) -> dict[str, Any]:
    def kind(v: Any) -> str:
        return "string" if isinstance(v, str) else "long" if isinstance(v, int) else "double"

    return {
        "type": "record",
        "name": "Shuttle",
        "namespace": "bench",
        "fields": [{"name": k, "type": kind(v)} for k, v in row.items()],
    }


def encoder(fmt: str, schema: dict[str, Any]) -> Callable[[dict[str, Any]], bytes]:
    if fmt == "json":
        return orjson.dumps  # type: ignore[no-any-return]
    import io

    import fastavro

    parsed = fastavro.parse_schema(schema)

    def encode(row: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, row)
        return buf.getvalue()

    return encode


@dataclass
class Data:
    """The events of a run, encoded once per format."""

    n: int
    schema: dict[str, Any]
    features: list[str]
    values: dict[str, list[bytes]] = field(default_factory=dict)
    keys: list[bytes] = field(default_factory=list)

    @classmethod
    def build(cls, n: int, formats: Sequence[str]) -> Data:
        rows = shuttle_rows(n)
        first = next(rows)
        schema = avro_schema(first)
        features = [k for k in first if k not in ("id", "label")]
        data = cls(n, schema, features)
        encoders = {fmt: encoder(fmt, schema) for fmt in formats}
        data.values = {fmt: [] for fmt in formats}
        # Row by row, keeping only the encoded values: a million dicts would not fit nicely.
        for row in itertools.chain([first], rows):
            data.keys.append(row["id"].encode())
            for fmt, encode in encoders.items():
                data.values[fmt].append(encode(row))
        return data


# -- the broker and its topics ------------------------------------------------------------------


class Bench:
    """The broker, the scratch folder, and the helpers every section uses."""

    def __init__(self, bootstrap: str | None, peer_python: str | None, session_ms: int) -> None:
        from confluent_kafka.admin import AdminClient

        from streamer.broker import EmbeddedBroker

        self.tmp = Path(tempfile.mkdtemp(prefix="streamer-bench-"))
        self.broker: Any = None
        if bootstrap:
            self.bootstrap = bootstrap
        else:
            self.broker = EmbeddedBroker(log_path=self.tmp / "broker.log").start()
            self.bootstrap = self.broker.bootstrap_servers
        self.admin = AdminClient(self.client())
        self.peer_python = peer_python
        # Settings merged into every worker run (--worker-settings).
        self.worker_settings: dict[str, Any] = {}
        self.session_ms = session_ms
        self.peers = self._peer_versions()
        self.run_id = uuid.uuid4().hex[:6]
        self._names = itertools.count()

    def client(self, **conf: Any) -> dict[str, Any]:
        """Properties of the harness's own clients; the embedded broker drops idle
        connections, which librdkafka would log every time."""
        return {"bootstrap.servers": self.bootstrap, "log.connection.close": False, **conf}

    @property
    def broker_pid(self) -> int | None:
        return self.broker.pid if self.broker is not None else None

    def close(self, *, keep: bool = False) -> None:
        """Stop the broker; drop the scratch folder unless ``keep`` (its child logs explain a
        failed run)."""
        self.admin: Any = None  # let librdkafka go before the broker does
        if self.broker is not None:
            self.broker.stop()
        if keep:
            log(f"kept {self.tmp} (child logs, the broker's log)")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def name(self, what: str) -> str:
        return f"bench-{self.run_id}-{next(self._names)}-{what}"

    def _peer_versions(self) -> dict[str, str]:
        """Importable peer packages in the peer interpreter, with their versions."""
        if not self.peer_python or not Path(self.peer_python).exists():
            return {}
        code = (
            "import importlib, importlib.metadata as m, json\n"
            "out = {}\n"
            f"for mod, dist in {PEERS!r}.items():\n"
            "    try:\n"
            "        importlib.import_module(dist)\n"
            "        out[mod] = m.version(dist)\n"
            "    except Exception:\n"
            "        pass\n"
            "out['confluent-kafka'] = m.version('confluent-kafka')\n"
            "print(json.dumps(out))\n"
        )
        try:
            out = subprocess.run(
                [self.peer_python, "-W", "ignore", "-c", code],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
        except (subprocess.SubprocessError, OSError):
            return {}
        found: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
        return found

    def create(self, topics: Sequence[str], partitions: int = 1) -> None:
        from streamer.kafka import ensure_topics

        ensure_topics(self.admin, topics, partitions=partitions, replication_factor=1)

    def delete(self, topics: Sequence[str]) -> None:
        """Drop a run's topics: the embedded broker keeps everything in memory."""
        if not topics:
            return
        for fut in self.admin.delete_topics(list(topics), operation_timeout=30).values():
            with contextlib.suppress(Exception):
                fut.result(30)

    def preload(
        self,
        topic: str,
        values: Sequence[bytes],
        keys: Sequence[bytes],
        *,
        partitions: int = 1,
        rate: float | None = None,
        sent: dict[bytes, float] | None = None,
    ) -> None:
        """Produce ``values`` (partition i % partitions); at ``rate`` events/s when given,
        noting each key's send time in ``sent``."""
        from confluent_kafka import Producer

        producer = Producer(self.client(**{"linger.ms": 1 if rate else 20}))
        started = time.perf_counter()
        for i, (value, key) in enumerate(zip(values, keys, strict=True)):
            if rate:
                ahead = started + i / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
                if sent is not None:
                    sent[key] = time.time()
            while True:
                try:
                    producer.produce(topic, value, key, partition=i % partitions)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        if producer.flush(60) != 0:
            raise RuntimeError(f"could not preload {topic}")

    def read(self, topic: str, expected: int, *, timeout: float = 120.0) -> Predictions:
        """Read a predictions topic from the start until ``expected`` records (or timeout)."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer(
            self.client(**{"group.id": "bench-reader", "enable.auto.commit": False})
        )
        md = consumer.list_topics(topic, timeout=30).topics[topic]
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        out = Predictions()
        deadline = time.monotonic() + timeout
        idle_until = None
        while out.count < expected and time.monotonic() < deadline:
            msgs = consumer.consume(5000, 0.2)
            if not msgs:
                # Counted records never arrive late on a quiet topic: stop after 3 s of nothing.
                idle_until = idle_until or time.monotonic() + 3
                if time.monotonic() > idle_until:
                    break
                continue
            idle_until = None
            for m in msgs:
                if m.error() is None:
                    out.add(m)
        consumer.close()
        return out


class Predictions:
    """What a variant wrote to its predictions topic, reduced to what the tables need."""

    def __init__(self) -> None:
        self.timestamps: list[int] = []
        self.keys: set[bytes] = set()
        self.per_partition: dict[int, int] = {}
        self.first: dict[int, int] = {}
        self.scored = 0
        self.correct = 0

    @property
    def count(self) -> int:
        return len(self.timestamps)

    def add(self, m: Any) -> None:
        self.timestamps.append(m.timestamp()[1])
        self.keys.add(m.key())
        doc = orjson.loads(m.value())
        part = doc["partition"]
        self.per_partition[part] = self.per_partition.get(part, 0) + 1
        self.first[part] = min(self.first.get(part, m.timestamp()[1]), m.timestamp()[1])
        if doc["prediction"] is not None:
            self.scored += 1
            self.correct += doc["prediction"] == doc["label"]

    @property
    def accuracy(self) -> float:
        return self.correct / self.scored if self.scored else 0.0

    def window(self) -> tuple[float, float]:
        """First and last prediction, epoch seconds."""
        ts = sorted(self.timestamps)
        return ts[0] / 1000, ts[-1] / 1000

    def nth(self, n: int) -> float:
        """When the ``n``-th prediction (1-based, in time order) was produced, epoch seconds."""
        return sorted(self.timestamps)[n - 1] / 1000


# -- child processes and what is seen of them from outside --------------------------------------


class Sampler(threading.Thread):
    """Samples the CPU-seconds and RSS of some processes every ``interval`` seconds.

    CPU is kept twice: the whole process (librdkafka's threads included) and its main thread,
    the one that holds the GIL and does the per-event work. With cores to spare, librdkafka's
    threads run beside the main thread, so the main thread's CPU per event is what bounds the
    throughput.
    """

    TICK = os.sysconf("SC_CLK_TCK")
    PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

    def __init__(self, pids: Sequence[int], interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pids = list(pids)
        self.interval = interval
        # (time, process CPU, main thread CPU, RSS KiB)
        self.samples: dict[int, list[tuple[float, float, float, int]]] = {p: [] for p in self.pids}
        self._halt = threading.Event()

    @classmethod
    def _cpu(cls, path: str) -> float:
        with open(path) as f:
            stat = f.read()
        fields = stat[stat.rfind(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / cls.TICK

    @classmethod
    def read(cls, pid: int) -> tuple[float, float, int] | None:
        try:
            cpu = cls._cpu(f"/proc/{pid}/stat")
            main = cls._cpu(f"/proc/{pid}/task/{pid}/stat")
            with open(f"/proc/{pid}/statm") as f:
                resident = int(f.read().split()[1])
        except (OSError, ValueError, IndexError):
            return None
        return cpu, main, resident * cls.PAGE_KIB

    def run(self) -> None:
        while not self._halt.is_set():
            now = time.time()
            for pid in self.pids:
                got = self.read(pid)
                if got is not None:
                    self.samples[pid].append((now, *got))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def cpu_at(self, pid: int, t: float, *, main: bool = False) -> float:
        """CPU-seconds of the process (or its main thread) at ``t``, interpolated."""
        i = 2 if main else 1
        s = self.samples[pid]
        if not s:
            return float("nan")
        if t <= s[0][0]:
            return s[0][i]
        for a, b in itertools.pairwise(s):
            if a[0] <= t <= b[0]:
                return a[i] + (b[i] - a[i]) * (t - a[0]) / (b[0] - a[0]) if b[0] > a[0] else b[i]
        return s[-1][i]

    def rss_at(self, pid: int, t: float) -> int | None:
        """RSS in KiB at the first sample at or after ``t``."""
        for sample in self.samples[pid]:
            if sample[0] >= t:
                return sample[3]
        return self.samples[pid][-1][3] if self.samples[pid] else None


class Child:
    """One variant in a child process: spec in a file, result in a file, READY on stdout."""

    def __init__(self, bench: Bench, spec: dict[str, Any], *, python: str | None = None) -> None:
        tag = f"child-{next(bench._names)}"
        self.spec_path = bench.tmp / f"{tag}.json"
        self.result_path = bench.tmp / f"{tag}.result.json"
        self.log_path = bench.tmp / f"{tag}.log"
        spec = {**spec, "result": str(self.result_path)}
        self.spec_path.write_text(json.dumps(spec))
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("PYTHONHASHSEED", None)
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - the child's, closed in wait()
        self.proc = subprocess.Popen(
            [python or sys.executable, "-W", "ignore", str(VARIANTS_SCRIPT), str(self.spec_path)],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        self.ready = threading.Event()
        self.done = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == b"READY":
                self.ready.set()
            elif line.strip() == b"DONE":
                self.done.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"child not ready: {self.tail()}")

    def wait(self, timeout: float) -> dict[str, Any]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
            if self.proc.poll() is None:
                self.proc.kill()
            raise RuntimeError(f"child timed out after {timeout:.0f} s: {self.tail()}") from None
        finally:
            self.log.close()
        if code != 0:
            raise RuntimeError(f"child exited with {code}: {self.tail()}")
        result: dict[str, Any] = json.loads(self.result_path.read_text())
        return result

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""


# -- settings of the worker ---------------------------------------------------------------------


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def worker_settings(
    workload: dict[str, Any],
    *,
    bench: Bench,
    model: str,
    fmt: str,
    topic: str,
    names: dict[str, str],
    features: list[str],
    schema_file: Path,
    session_ms: int,
    extra: dict[str, Any],
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "kafka": {
            "bootstrap_servers": bench.bootstrap,
            "group_id": names["group"],
            "consumer": {"session.timeout.ms": session_ms, "heartbeat.interval.ms": 300},
        },
        "topics": {
            "events": topic,
            "predictions": names["predictions"],
            "dead_letters": names["dead_letters"],
            "drift_events": names["drift_events"],
            "partitions": 1,
        },
        "fields": {"id": "id", "label": "label", "features": features},
        "model": {"preset": PRESETS[model], "seed": 42},
        "prometheus": {"port": 0},
        # Checkpoints and model updates are signed.
        "security": {"signing_key": "benchmark-signing-key-0123456789"},
    }
    if fmt == "avro":
        base["input"] = {"format": "avro", "avro": {"schema": str(schema_file), "framing": "plain"}}
    return merge(merge(base, workload), extra)


def workload_for(variant: str, model: str, c_override: dict[str, Any] | None) -> dict[str, Any]:
    if variant == "c":
        return c_override if c_override is not None else workload_c(PRESETS[model])
    return WORKLOADS[variant]


def unavailable(variant: str, bench: Bench, model: str, args: argparse.Namespace) -> str | None:
    """Why a row cannot run here (printed as n/a), or None."""
    if variant in PEERS and variant not in bench.peers:
        return f"{PEERS[variant]} is not importable in {bench.peer_python or '(no peer python)'}"
    if variant == "c":
        from streamer.errors import ConfigError
        from streamer.settings import load_settings

        try:
            load_settings(env={}, overrides=workload_for("c", model, args.c_settings))
        except ConfigError as exc:
            return f"settings not available yet ({exc})"
    return None


# -- one run of one variant ---------------------------------------------------------------------


@dataclass
class Run:
    """One measured run: rate, CPU, and the checks that it did the whole job."""

    variant: str
    n: int
    rate: float
    cpu_per_event: float
    accuracy: float
    broker_cpu_per_event: float = float("nan")
    # CPU-seconds per event of the main thread alone (the bare loop has no other thread).
    main_cpu_per_event: float = float("nan")
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    # The machine's 1-minute load average when the run ended.
    load: float = field(default_factory=lambda: os.getloadavg()[0])

    @property
    def util(self) -> float:
        """Cores the variant kept busy while it ran (CPU-seconds per wall second).

        A CPU-bound loop that had a core to itself shows about 1 (a little more with
        librdkafka's threads, a little less while it waits for the broker); much less means
        the machine was busy with something else and the run's speed says little.
        """
        return self.rate * self.cpu_per_event


def child_timeout(n: int) -> float:
    return 120 + n / 500  # far beyond the slowest variant (~2,000 events/s)


def run_bare(
    bench: Bench, data: Data, model: str, fmt: str, detector: str, n: int, **opts: Any
) -> Run:
    path = bench.tmp / f"values-{fmt}-{len(data.values[fmt])}.pkl"
    if not path.exists():
        with open(path, "wb") as f:
            pickle.dump(data.values[fmt], f)
    spec = {
        "kind": "bare",
        "model": model,
        "detector": detector,
        "format": fmt,
        "schema": data.schema,
        "values": str(path),
        "n": n,
        **opts,
    }
    res = Child(bench, spec).wait(child_timeout(n))
    run = Run(
        "bare" if detector == "DualADWIN" else "adwin",
        res["n"],
        res["n"] / res["seconds"],
        res["cpu"] / res["n"],
        res["accuracy"],
        main_cpu_per_event=res["thread_cpu"] / res["n"],
    )
    run.extra = {"rss_kib": res["rss_kib"], "latencies": res["latencies"]}
    return run


def kafka_spec(
    variant: str,
    bench: Bench,
    data: Data,
    *,
    model: str,
    fmt: str,
    topic: str,
    partitions: int,
    n: int | None,
    names: dict[str, str],
    session_ms: int,
    c_override: dict[str, Any] | None,
) -> tuple[dict[str, Any], str | None]:
    """The child's spec and interpreter for one Kafka variant."""
    common = {
        "model": model,
        "detector": "DualADWIN",
        "format": fmt,
        "schema": data.schema,
        "bootstrap": bench.bootstrap,
        "topic": topic,
        "partitions": list(range(partitions)),
        "predictions": names["predictions"],
        "group": names["group"],
        "n": n,
        "consumer": {"session.timeout.ms": session_ms, "heartbeat.interval.ms": 300},
    }
    if variant == "hand":
        return {"kind": "hand", **common}, None
    if variant in WORKER_VARIANTS:
        settings = worker_settings(
            workload_for(variant, model, c_override),
            bench=bench,
            model=model,
            fmt=fmt,
            topic=topic,
            names=names,
            features=data.features,
            schema_file=schema_file(bench, data),
            session_ms=session_ms,
            extra=bench.worker_settings,
        )
        return {"kind": "worker", "settings": settings, "n": n}, None
    return {"kind": variant, **common}, bench.peer_python


def schema_file(bench: Bench, data: Data) -> Path:
    path = bench.tmp / "shuttle.avsc"
    if not path.exists():
        path.write_text(json.dumps(data.schema))
    return path


def run_names(bench: Bench) -> dict[str, str]:
    return {
        "group": bench.name("group"),
        "predictions": bench.name("predictions"),
        "dead_letters": bench.name("dlq"),
        "drift_events": bench.name("drift"),
    }


def run_kafka(
    bench: Bench,
    data: Data,
    variant: str,
    *,
    model: str,
    fmt: str,
    topic: str,
    n: int,
    processes: int = 1,
    partitions: int = 1,
    session_ms: int | None = None,
    c_override: dict[str, Any] | None = None,
    rss_marks: Sequence[int] = (),
) -> Run:
    """Run a Kafka variant on a pre-loaded topic, and measure it from its predictions."""
    names = run_names(bench)
    bench.create([names["predictions"]])
    per_process = n // processes
    spec, python = kafka_spec(
        variant,
        bench,
        data,
        model=model,
        fmt=fmt,
        topic=topic,
        partitions=partitions,
        n=per_process,
        names=names,
        session_ms=session_ms or bench.session_ms,
        c_override=c_override,
    )
    # Several workers linger in the group until all are done: one leaving early would make the
    # broker rebalance, and stall the others for half a session timeout.
    linger = processes > 1
    if linger:
        spec["linger"] = True
    children = [Child(bench, spec, python=python) for _ in range(processes)]
    watched = [c.pid for c in children] + ([bench.broker_pid] if bench.broker_pid else [])
    sampler = Sampler(watched)
    sampler.start()
    try:
        if linger:
            deadline = time.monotonic() + child_timeout(n)
            while not all(c.done.is_set() or c.proc.poll() is not None for c in children):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            for c in children:
                c.proc.terminate()
        results = [c.wait(child_timeout(n)) for c in children]
    finally:
        sampler.stop()
    preds = bench.read(names["predictions"], n)
    run = measure(variant, n, preds, sampler, children, bench, rss_marks)
    run.extra["batches"] = [b for r in results for b in r.get("batches", [])]
    run.extra["partitions_by_process"] = [r.get("partitions", {}) for r in results]
    bench.delete(list(names.values())[1:])
    return run


def measure(
    variant: str,
    n: int,
    preds: Predictions,
    sampler: Sampler,
    children: Sequence[Child],
    bench: Bench,
    rss_marks: Sequence[int] = (),
) -> Run:
    problems = []
    if preds.count != n:
        problems.append(f"{preds.count} predictions for {n} events")
    if len(preds.keys) != preds.count:
        problems.append(f"{preds.count - len(preds.keys)} duplicate predictions")
    if preds.count < 2:
        return Run(variant, preds.count, float("nan"), float("nan"), 0.0, problems=problems)
    t0, t1 = preds.window()
    events = preds.count - 1
    cpu = sum(sampler.cpu_at(c.pid, t1) - sampler.cpu_at(c.pid, t0) for c in children)
    main = sum(
        sampler.cpu_at(c.pid, t1, main=True) - sampler.cpu_at(c.pid, t0, main=True)
        for c in children
    )
    run = Run(
        variant,
        preds.count,
        events / (t1 - t0),
        cpu / events,
        preds.accuracy,
        main_cpu_per_event=main / events,
    )
    run.problems = problems
    if bench.broker_pid:
        pid = bench.broker_pid
        run.broker_cpu_per_event = (sampler.cpu_at(pid, t1) - sampler.cpu_at(pid, t0)) / events
    if rss_marks and len(children) == 1:
        pid = children[0].pid
        run.extra["rss_kib"] = {
            str(m): sampler.rss_at(pid, preds.nth(m)) for m in rss_marks if m <= preds.count
        }
    run.extra["per_partition"] = preds.per_partition
    run.extra["start_skew"] = (max(preds.first.values()) - min(preds.first.values())) / 1000
    return run


# -- sections -----------------------------------------------------------------------------------


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def section_throughput(bench: Bench, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    """Every variant x model x format, in rounds: rate, CPU, and ratios within each round."""
    topics = {}
    for fmt in args.formats:
        topics[fmt] = bench.name(f"events-{fmt}")
        bench.create([topics[fmt]])
        bench.preload(topics[fmt], data.values[fmt], data.keys)
    out: dict[str, Any] = {"runs": {}, "na": {}}
    variants = [v for v in VARIANTS if v in args.workloads]
    for model in args.models:
        for v in variants:
            why = unavailable(v, bench, model, args)
            if why:
                out["na"][f"{v}/{model}"] = why
    for r in range(args.rounds):
        for fmt in args.formats:
            for model in args.models:
                for v in variants:
                    if f"{v}/{model}" in out["na"]:
                        continue
                    log(f"round {r + 1}: {fmt} {model} {v}")
                    if v in ("bare", "adwin"):
                        detector = "DualADWIN" if v == "bare" else "ADWIN"
                        run = run_bare(bench, data, model, fmt, detector, data.n)
                    else:
                        run = run_kafka(
                            bench,
                            data,
                            v,
                            model=model,
                            fmt=fmt,
                            topic=topics[fmt],
                            n=data.n,
                            c_override=args.c_settings,
                        )
                    run.extra.pop("batches", None)
                    run.extra.pop("latencies", None)
                    out["runs"].setdefault(f"{fmt}/{model}/{v}", []).append(
                        {**run.__dict__, "util": run.util}
                    )
    bench.delete(list(topics.values()))
    return out


def percentiles(values: Sequence[float], weights: Sequence[int] | None = None) -> list[float]:
    """p50, p99, p99.9 (weighted: a batch's duration counts once per event in it)."""
    import numpy as np

    if not len(values):
        return [float("nan")] * 3
    v = np.asarray(values, dtype=float)
    if weights is not None:
        v = np.repeat(v, np.asarray(weights, dtype=int))
    return [float(x) for x in np.percentile(v, [50, 99, 99.9])]


class Downstream(threading.Thread):
    """A consumer reading a predictions topic as it fills, noting when each key arrives."""

    def __init__(self, bench: Bench, topic: str, expected: int, timeout: float) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.received: dict[bytes, float] = {}
        self.expected = expected
        self.deadline = time.monotonic() + timeout
        # A short fetch wait, as a latency-minded downstream service would set.
        self.consumer = Consumer(
            bench.client(
                **{"group.id": "bench-tail", "enable.auto.commit": False, "fetch.wait.max.ms": 5}
            )
        )
        self.consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

    def run(self) -> None:
        received = self.received
        while len(received) < self.expected and time.monotonic() < self.deadline:
            for m in self.consumer.consume(1000, 0.05):
                if m.error() is None:
                    received.setdefault(m.key(), time.time())
        self.consumer.close()


def latency_run(
    bench: Bench, data: Data, variant: str, model: str, args: argparse.Namespace
) -> dict[str, Any]:
    """One Kafka variant at a fixed rate: it joins first, then the events are produced."""
    n = min(args.latency_events, data.n)
    fmt = args.formats[0]
    values, keys = data.values[fmt][:n], data.keys[:n]
    topic = bench.name("events-latency")
    names = run_names(bench)
    bench.create([topic, names["predictions"]])
    spec, python = kafka_spec(
        variant,
        bench,
        data,
        model=model,
        fmt=fmt,
        topic=topic,
        partitions=1,
        n=n,
        names=names,
        session_ms=bench.session_ms,
        c_override=args.c_settings,
    )
    child = Child(bench, spec, python=python)
    child.wait_ready(120)
    downstream = Downstream(bench, names["predictions"], n, 60 + 3 * n / args.rate)
    downstream.start()
    sent: dict[bytes, float] = {}
    bench.preload(topic, values, keys, rate=args.rate, sent=sent)
    res = child.wait(child_timeout(n))
    downstream.join()
    bench.delete([topic, *list(names.values())[1:]])
    # The first tenth warms up (connections, first batches) and is not counted.
    warm = n // 10
    received = downstream.received
    e2e = [received[k] - sent[k] for k in keys[warm:] if k in received]
    batches, seen = [], 0
    for size, seconds in res.get("batches", []):
        seen += size
        if seen > warm:
            batches.append((size, seconds))
    processing = (
        percentiles([b[1] for b in batches], [b[0] for b in batches])
        if batches
        else [float("nan")] * 3
    )
    return {
        "e2e_ms": [x * 1000 for x in percentiles(e2e)],
        "processing_ms": [x * 1000 for x in processing],
        "received": len(e2e),
        "lost": sum(1 for k in keys if k not in received),
        "mean_batch": statistics.fmean(b[0] for b in batches) if batches else 0,
    }


def section_latency(bench: Bench, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    """At a fixed rate: per-event processing latency, and produced-to-prediction-read."""
    n = min(args.latency_events, data.n)
    fmt = args.formats[0]
    out: dict[str, Any] = {"runs": {}, "rate": args.rate, "events": n, "format": fmt, "na": {}}
    variants = [v for v in ("bare", "hand", "a", "b0", "b", "c") if v in args.workloads]
    for r in range(args.rounds):
        for model in args.models:
            for v in variants:
                why = unavailable(v, bench, model, args)
                if why:
                    out["na"][f"{v}/{model}"] = why
                    continue
                log(f"latency round {r + 1}: {model} {v}")
                if v == "bare":
                    run = run_bare(bench, data, model, fmt, "DualADWIN", n, per_event_timing=True)
                    entry = {
                        "processing_ms": [x * 1000 for x in percentiles(run.extra["latencies"])]
                    }
                else:
                    entry = latency_run(bench, data, v, model, args)
                out["runs"].setdefault(f"{model}/{v}", []).append(entry)
    return out


def section_memory(bench: Bench, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    """RSS after 100k and 1M events (the dataset looped), worker (b) and the bare loop.

    The bare loop cycles the throughput run's values, so that its RSS holds no more data than
    the worker's (whose events wait in the broker)."""
    m = args.memory_events
    marks = [m // 10, m]
    fmt = args.formats[0]
    log(f"memory: encoding {m:,} events")
    big = Data.build(m, [fmt])
    topic = bench.name("events-memory")
    bench.create([topic])
    bench.preload(topic, big.values[fmt], big.keys)
    del big
    out: dict[str, Any] = {"events": m, "marks": marks, "format": fmt, "runs": {}, "problems": []}
    for model in args.memory_models:
        log(f"memory: {model} bare")
        bare = run_bare(bench, data, model, fmt, "DualADWIN", m, rss_at=marks)
        out["runs"][f"{model}/bare"] = bare.extra["rss_kib"]
        if "b" in args.workloads:
            log(f"memory: {model} worker (b)")
            run = run_kafka(
                bench, data, "b", model=model, fmt=fmt, topic=topic, n=m, rss_marks=marks
            )
            out["runs"][f"{model}/b"] = run.extra.get("rss_kib", {})
            out["problems"].extend(run.problems)
    bench.delete([topic])
    return out


def section_scaleout(bench: Bench, data: Data, args: argparse.Namespace) -> dict[str, Any]:
    """Worker (b), softmax: one process on a 2-partition topic, then two."""
    from streamer.broker import FAST_GROUP_SETTINGS

    n = data.n - data.n % 2
    fmt = args.formats[0]
    topic = bench.name("events-2p")
    bench.create([topic], partitions=2)
    bench.preload(topic, data.values[fmt][:n], data.keys[:n], partitions=2)
    model = args.models[0]
    out: dict[str, Any] = {"model": model, "format": fmt, "events": n, "runs": {}}
    # Both members must make the first generation: a longer session gives the broker's initial
    # join delay room for two interpreters starting at once.
    session = int(FAST_GROUP_SETTINGS["session.timeout.ms"])
    for r in range(args.rounds):
        for processes in (1, 2):
            log(f"scale-out round {r + 1}: {processes} process(es)")
            run = run_kafka(
                bench,
                data,
                "b",
                model=model,
                fmt=fmt,
                topic=topic,
                n=n,
                processes=processes,
                partitions=2,
                session_ms=session,
            )
            if processes == 2 and any(c != n // 2 for c in run.extra["per_partition"].values()):
                run.problems.append(f"per partition {run.extra['per_partition']}")
            if processes == 2 and any(len(p) != 1 for p in run.extra["partitions_by_process"]):
                run.problems.append(f"partitions by process {run.extra['partitions_by_process']}")
            out["runs"].setdefault(str(processes), []).append(
                {
                    "rate": run.rate,
                    "problems": run.problems,
                    "skew": run.extra["start_skew"],
                    "util": run.util,
                    "load": run.load,
                }
            )
    bench.delete([topic])
    return out


# -- report -------------------------------------------------------------------------------------


def med(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x == x]  # drop NaN
    return statistics.median(xs) if xs else float("nan")


def fmt_num(x: float, digits: int = 2) -> str:
    return "n/a" if x != x else f"{x:,.{digits}f}"


def mark(value: float, target: float, at_least: bool = True) -> str:
    if value != value:
        return ""
    ok = value >= target if at_least else value <= target
    return "met" if ok else "**not met**"


def environment(bench: Bench) -> dict[str, Any]:
    import confluent_kafka
    import fastavro
    import numpy
    import river

    model = "unknown"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    return {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "river": river.__version__,
        "confluent_kafka": f"{metadata.version('confluent-kafka')} "
        f"(librdkafka {confluent_kafka.libversion()[0]})",
        "numpy": numpy.__version__,
        "orjson": orjson.__version__,
        "fastavro": fastavro.__version__,
        "commit": commit,
        "broker": "embedded Tansu 0.6.0 (memory)" if bench.broker else bench.bootstrap,
        "peers": bench.peers,
        "load": os.getloadavg(),
    }


def busy(run: dict[str, Any]) -> float:
    """Cores a run kept busy (see :attr:`Run.util`)."""
    return float(run["rate"] * run["cpu_per_event"])


def load_range(results: dict[str, Any]) -> str:
    runs = results.get("throughput", {}).get("runs", {}).values()
    loads = [r["load"] for rs in runs for r in rs if "load" in r]
    return f"{min(loads):.1f} to {max(loads):.1f}" if loads else "n/a"


def report(env: dict[str, Any], results: dict[str, Any], args: argparse.Namespace) -> str:
    lines: list[str] = []
    w = lines.append
    peers = ", ".join(f"{k} {v}" for k, v in env["peers"].items()) or "none"
    w(
        f"streamer throughput benchmark, {env['date']}: {env['nproc']} CPUs ({env['cpu']}), "
        f"Python {env['python']}, River {env['river']}, confluent-kafka {env['confluent_kafka']}, "
        f"numpy {env['numpy']}, orjson {env['orjson']}, fastavro {env['fastavro']}; "
        f"broker {env['broker']}; commit {env['commit']}; peers: {peers}; "
        f"1-minute load average at the start {env['load'][0]:.2f}, at the end "
        f"{env.get('load_end', float('nan')):.2f}, over the throughput runs "
        f"{load_range(results)}."
    )
    if getattr(args, "worker_settings", None):
        w("")
        w(f"Worker settings over every workload: `{json.dumps(args.worker_settings)}`.")
    w("")
    targets: list[tuple[str, str, str, str]] = []
    tp = results.get("throughput")
    if tp:
        w(
            f"### Throughput: {args.events:,} events (Shuttle looped), one partition, "
            f"{args.rounds} round(s) in alternation, medians"
        )
        w("")
        w(
            "events/s; x bare = median over rounds of the ratio to the bare loop (DualADWIN) in "
            f"the same round, over the rounds where both runs kept ≥ {args.min_util} core busy "
            "(~: no such round, all rounds); CPU x bare = the same for CPU-seconds per event, "
            "which other load on the machine disturbs far less (its inverse is the throughput "
            "ratio on cores of their own, less the time spent waiting for the broker); main x "
            "bare: the same for the main thread's CPU alone (what bounds throughput when "
            "librdkafka's threads and the broker have cores to spare); cores = "
            "CPU-seconds per wall second of the variant's process while it ran (median)."
        )
        for fmt in args.formats:
            w("")
            w(f"**{fmt.upper()}**")
            w("")
            head = "| variant |"
            rule = "|---|"
            for model in args.models:
                head += f" {model} ev/s | x bare | CPU x bare | main x bare | cores |"
                rule += "---:|---:|---:|---:|---:|"
            w(head + " target x bare |")
            w(rule + "---|")
            for v, (label, target) in VARIANTS.items():
                if v not in args.workloads:
                    continue
                row = f"| {label} |"
                for model in args.models:
                    runs = tp["runs"].get(f"{fmt}/{model}/{v}", [])
                    bares = tp["runs"].get(f"{fmt}/{model}/bare", [])
                    if not runs:
                        row += " n/a | | | | |"
                        if target is not None and fmt == args.formats[0]:
                            targets.append(
                                (
                                    f"({v}) ≥ {target:.2f} x bare, {model}, {fmt}",
                                    "n/a",
                                    f"≥ {target:.2f}",
                                    "",
                                )
                            )
                        continue
                    rate = med([r["rate"] for r in runs])
                    pairs = list(zip(runs, bares, strict=False))
                    # Rounds in which neither run was starved of CPU by other work on the
                    # machine; all rounds (marked ~) when there is none.
                    clean = [
                        (a, b)
                        for a, b in pairs
                        if busy(a) >= args.min_util and busy(b) >= args.min_util
                    ]
                    rough = "" if clean else "~"
                    ratio = med([a["rate"] / b["rate"] for a, b in clean or pairs])
                    util = med([busy(r) for r in runs])
                    main = med(
                        [
                            a.get("main_cpu_per_event", float("nan"))
                            / b.get("main_cpu_per_event", float("nan"))
                            for a, b in pairs
                        ]
                    )
                    cpu = med(
                        [
                            a["cpu_per_event"] / b["cpu_per_event"]
                            for a, b in zip(runs, bares, strict=False)
                        ]
                    )
                    flag = " ⚠" if any(r["problems"] for r in runs) else ""
                    row += (
                        f" {rate:,.0f}{flag} | {rough}{fmt_num(ratio)} | {fmt_num(cpu)} "
                        f"| {fmt_num(main)} | {fmt_num(util)} |"
                    )
                    if v in ("b0", "b") and fmt == args.formats[0]:
                        targets.append(
                            (
                                f"CPU per event ({v}) ≤ {CPU_TARGET} x bare, {model}, {fmt}",
                                fmt_num(cpu),
                                f"≤ {CPU_TARGET}",
                                mark(cpu, CPU_TARGET, False),
                            )
                        )
                    if target is not None and fmt == args.formats[0]:
                        targets.append(
                            (
                                f"({v}) ≥ {target:.2f} x bare, {model}, {fmt}",
                                rough + fmt_num(ratio),
                                f"≥ {target:.2f}",
                                "starved: no clean round" if rough else mark(ratio, target),
                            )
                        )
                w(row + (f" ≥ {target:.2f} |" if target else " |"))
        w("")
        w("**CPU-seconds per million events** (the process, all threads; the broker's beside it)")
        w("")
        head = "| variant |"
        rule = "|---|"
        for fmt in args.formats:
            for model in args.models:
                head += f" {fmt} {model} |"
                rule += "---:|"
        w(head + f" broker, {args.formats[0]} {args.models[0]} |")
        w(rule + "---:|")
        for v, (label, _) in VARIANTS.items():
            row = f"| {label} |"
            any_run = False
            for fmt in args.formats:
                for model in args.models:
                    runs = tp["runs"].get(f"{fmt}/{model}/{v}", [])
                    any_run |= bool(runs)
                    row += f" {fmt_num(med([r['cpu_per_event'] * 1e6 for r in runs]), 0)} |"
            runs = tp["runs"].get(f"{args.formats[0]}/{args.models[0]}/{v}", [])
            broker = med([r["broker_cpu_per_event"] * 1e6 for r in runs])
            if any_run:
                w(row + f" {fmt_num(broker, 0) if v in KAFKA_VARIANTS else ''} |")
        w("")
        checks = []
        own: list[str] = []
        for key, runs in sorted(tp["runs"].items()):
            fmt, model, v = key.split("/")
            ref = tp["runs"].get(f"{fmt}/{model}/bare")
            acc = {round(r["accuracy"], 10) for r in runs}
            if v in LIFECYCLE_VARIANTS:
                # Champions replaced on drift: not the bare loop's predictions, but the same
                # in every round (the worker is deterministic).
                if len(acc) > 1:
                    checks.append(f"{key}: accuracy differs between rounds {sorted(acc)}")
                else:
                    own.append(f"{key} {runs[0]['accuracy']:.4%}")
            elif ref and v != "adwin" and acc != {round(ref[0]["accuracy"], 10)}:
                checks.append(f"{key}: accuracy {sorted(acc)} ≠ bare {ref[0]['accuracy']}")
            for r in runs:
                checks.extend(f"{key}: {p}" for p in r["problems"])
        if checks:
            w("Checks that failed (⚠ rows): " + "; ".join(sorted(set(checks))))
        else:
            accs = ", ".join(
                f"{model} {tp['runs'][f'{args.formats[0]}/{model}/bare'][0]['accuracy']:.4%}"
                for model in args.models
                if f"{args.formats[0]}/{model}/bare" in tp["runs"]
            )
            w(
                "Every Kafka row delivered one prediction per event, no duplicates, and its "
                f"prequential accuracy equals the bare loop's ({accs})"
                + (
                    ", except the rows with the lifecycle, whose champions are replaced on drift; "
                    f"theirs is the same in every round ({'; '.join(own)})."
                    if own
                    else "."
                )
            )
        for key, why in sorted(tp["na"].items()):
            w(f"- n/a {key}: {why}")
        w("")
    lat = results.get("latency")
    if lat:
        w(
            f"### Latency at {lat['rate']:,.0f} events/s: {lat['events']:,} events, "
            f"{lat['format']}, medians over {args.rounds} round(s), milliseconds"
        )
        w("")
        w(
            "processing: from the batch's consume returning to its outputs delivered and offsets "
            "committed, per event (bare: one event's work); end-to-end: from the producer's send "
            "to a downstream consumer (fetch.wait.max.ms=5) reading the prediction."
        )
        w("")
        w(
            "| variant | model | processing p50 | p99 | p99.9 | end-to-end p50 | p99 | p99.9 | mean batch |"
        )
        w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for v, (label, _) in VARIANTS.items():
            for model in args.models:
                runs = lat["runs"].get(f"{model}/{v}")
                if not runs:
                    if f"{v}/{model}" in lat["na"]:
                        w(f"| {label} | {model} | n/a | | | | | | |")
                    continue
                proc = [med([r["processing_ms"][i] for r in runs]) for i in range(3)]
                e2e = [
                    med([r.get("e2e_ms", [float("nan")] * 3)[i] for r in runs]) for i in range(3)
                ]
                batch = med([r.get("mean_batch", float("nan")) for r in runs])
                w(
                    f"| {label} | {model} | "
                    + " | ".join(fmt_num(x, 3 if v == "bare" else 1) for x in proc)
                    + " | "
                    + " | ".join(fmt_num(x, 1) if v != "bare" else "" for x in e2e)
                    + f" | {fmt_num(batch, 0) if v != 'bare' else ''} |"
                )
        w("")
    mem = results.get("memory")
    if mem:
        lo, hi = mem["marks"]
        w(
            f"### Memory: RSS after {lo:,} and {hi:,} events (Shuttle looped, {mem['format']}), "
            "MiB, one round"
        )
        w("")
        w(f"| variant | model | after {lo:,} | after {hi:,} | growth | target |")
        w("|---|---|---:|---:|---:|---|")
        for model in args.memory_models:
            for v in ("bare", "b"):
                rss = mem["runs"].get(f"{model}/{v}")
                if not rss:
                    continue
                a, b = rss.get(str(lo)), rss.get(str(hi))
                growth = (b - a) / a if a and b else float("nan")
                wanted = f"≤ {RSS_TARGET:.0%}" if v == "b" else ""
                w(
                    f"| {VARIANTS[v][0]} | {model} | {fmt_num(a / 1024 if a else float('nan'), 1)} "
                    f"| {fmt_num(b / 1024 if b else float('nan'), 1)} | {growth:+.1%} | {wanted} |"
                )
                if v == "b":
                    targets.append(
                        (
                            f"RSS growth {lo:,} → {hi:,} events, (b) {model}",
                            f"{growth:+.1%}",
                            f"≤ {RSS_TARGET:.0%}",
                            mark(growth, RSS_TARGET, False),
                        )
                    )
        w("")
    so = results.get("scaleout")
    if so:
        one = [r["rate"] for r in so["runs"].get("1", [])]
        two = [r["rate"] for r in so["runs"].get("2", [])]
        ratio = med([b / a for a, b in zip(one, two, strict=False)])
        problems = [p for rs in so["runs"].values() for r in rs for p in r["problems"]]
        w(
            f"### Scale-out: worker (b), {so['model']}, {so['format']}, 2-partition topic, "
            f"{so['events']:,} events"
        )
        w("")
        skew = med([r["skew"] for r in so["runs"].get("2", [])])
        cores = {k: med([r.get("util", float("nan")) for r in v]) for k, v in so["runs"].items()}
        w(
            "Both processes start in the same group generation; the rate spans the first "
            "prediction to the last over both partitions. Start skew: how far apart the two "
            "partitions' first predictions were."
        )
        w("")
        w("| processes | events/s | x one | cores busy | start skew | target |")
        w("|---:|---:|---:|---:|---:|---|")
        w(f"| 1 | {fmt_num(med(one), 0)} | 1.00 | {fmt_num(cores.get('1', float('nan')))} | | |")
        w(
            f"| 2 | {fmt_num(med(two), 0)} | {fmt_num(ratio)} "
            f"| {fmt_num(cores.get('2', float('nan')))} | {fmt_num(skew)} s | ≥ {SCALE_TARGET} |"
        )
        if problems:
            w("")
            w("Checks that failed: " + "; ".join(problems))
        w("")
        starved = cores.get("2", 0.0) < 2 * args.min_util
        targets.append(
            (
                "2 processes ≥ 1.8 x one",
                fmt_num(ratio),
                f"≥ {SCALE_TARGET}",
                "starved: the two had < 2 cores" if starved else mark(ratio, SCALE_TARGET),
            )
        )
    if targets:
        w("### Targets (issue 11; benchmark figures, never test assertions)")
        w("")
        w("| target | measured | wanted | |")
        w("|---|---:|---:|---|")
        for t in targets:
            w("| " + " | ".join(t) + " |")
        w("")
    return "\n".join(lines)


# -- command line -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10k events, one round, short sections")
    ap.add_argument("--events", type=int, help=f"events per run (default {SHUTTLE_EVENTS:,})")
    ap.add_argument("--rounds", type=int, help="rounds in alternation (default 3; quick 1)")
    ap.add_argument("--models", default="softmax,tree", help="softmax,tree")
    ap.add_argument(
        "--formats", default="json,avro", help="json,avro (the first: latency, scale-out)"
    )
    ap.add_argument(
        "--workloads",
        default=",".join(VARIANTS),
        help=f"rows to run, from {','.join(VARIANTS)} (a, b, c: streamer's workloads)",
    )
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"from {','.join(SECTIONS)}")
    ap.add_argument("--rate", type=float, default=2000.0, help="events/s of the latency runs")
    ap.add_argument("--latency-events", type=int, help="events per latency run (default 20,000)")
    ap.add_argument("--memory-events", type=int, help="events of the memory run (default 1M)")
    ap.add_argument("--memory-models", default="softmax", help="models of the memory run")
    ap.add_argument(
        "--c-settings", type=json.loads, help="settings of workload (c) as JSON (see workload_c)"
    )
    ap.add_argument(
        "--worker-settings",
        type=json.loads,
        default={},
        help='settings merged into every worker workload, as JSON, e.g. \'{"worker": '
        '{"poll_timeout": 0.02}}\' to try a setting against the same baselines',
    )
    ap.add_argument("--bootstrap-servers", help="use this broker instead of an embedded one")
    ap.add_argument(
        "--peer-python",
        default=os.environ.get("STREAMER_BENCH_PEER_PYTHON")
        or ("/work/bench-venv/bin/python" if Path("/work/bench-venv/bin/python").exists() else ""),
        help="interpreter with bytewax and quixstreams installed",
    )
    ap.add_argument(
        "--session-timeout-ms",
        type=int,
        default=3000,
        help="consumer session timeout of single-process runs (the embedded broker's first "
        "assignment takes about half of it; excluded from the timings)",
    )
    ap.add_argument(
        "--min-util",
        type=float,
        default=0.8,
        help="rounds where a run kept fewer cores busy are left out of the throughput ratios",
    )
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument(
        "--report-from",
        help="print the tables of an earlier --json file (same flags as its run) and exit",
    )
    args = ap.parse_args(argv)
    args.events = args.events or (10_000 if args.quick else SHUTTLE_EVENTS)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.latency_events = args.latency_events or (2_000 if args.quick else 20_000)
    args.memory_events = args.memory_events or (100_000 if args.quick else 1_000_000)
    for name, allowed in (
        ("models", PRESETS),
        ("formats", ("json", "avro")),
        ("workloads", VARIANTS),
        ("sections", SECTIONS),
        ("memory_models", PRESETS),
    ):
        chosen = [x for x in getattr(args, name).split(",") if x]
        bad = [x for x in chosen if x not in allowed]
        if bad or not chosen:
            ap.error(f"--{name.replace('_', '-')}: {bad or 'none'} not in {', '.join(allowed)}")
        setattr(args, name, chosen)
    if "bare" not in args.workloads:
        ap.error("--workloads must include bare: every ratio is to it")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text())
        print(report(saved["environment"], saved["results"], args))
        return 0
    bench = Bench(args.bootstrap_servers, args.peer_python, args.session_timeout_ms)
    bench.worker_settings = args.worker_settings
    results: dict[str, Any] = {}
    failed = True
    try:
        env = environment(bench)
        log(f"encoding {args.events:,} events; scratch {bench.tmp}")
        data = Data.build(args.events, args.formats)
        if "throughput" in args.sections:
            results["throughput"] = section_throughput(bench, data, args)
        if "latency" in args.sections:
            results["latency"] = section_latency(bench, data, args)
        if "memory" in args.sections:
            results["memory"] = section_memory(bench, data, args)
        if "scaleout" in args.sections and "b" in args.workloads:
            results["scaleout"] = section_scaleout(bench, data, args)
        env["load_end"] = os.getloadavg()[0]
        text = report(env, results, args)
        print(text)
        if args.json:
            Path(args.json).write_text(
                json.dumps({"environment": env, "results": results}, indent=1)
            )
        failed = False
    finally:
        bench.close(keep=failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
