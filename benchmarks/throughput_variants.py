"""The variants that ``benchmarks/throughput.py`` measures, each run in a child process of its own.

Every variant does the same per-event work (:class:`Work`): decode the record (orjson, or
fastavro for Avro), take the features, ``predict_proba_one``, score the arg-max with River's
``Accuracy``, feed the 0/1 error to a drift detector (streamer's default ``DualADWIN``, or River's
``ADWIN``), then ``learn_one``. The variants differ in what is around it:

``bare``       the loop over values in memory, no Kafka: the limit every other row is held to;
``hand``       a minimal hand-written confluent-kafka batch loop: consume 500, do the work,
               produce a JSON prediction per event, flush, commit synchronously;
``worker``     streamer's :class:`~streamer.worker.Worker`, in-process, with the settings given;
``bytewax``    a Bytewax dataflow (Kafka source, keyed ``stateful_map``, Kafka sink);
``quix``       a Quix Streams application (``apply``, ``to_topic``).

A child is started as ``python throughput_variants.py SPEC.json``; it writes its result to the
path in ``spec["result"]`` and prints ``READY`` on stdout once it can take events (after the
group join, for the latency runs), and ``DONE`` once a lingering worker has processed its share
(it then stays in the group until SIGTERM). The parent measures Kafka rows from outside (prediction
record timestamps and ``/proc`` samples), so a child reports only what cannot be seen from there:
batch sizes and durations, and for ``bare`` its own timings.

The Bytewax and Quix children run under another interpreter (a venv that has them); they import
only this file, River, orjson, fastavro, confluent-kafka and ``streamer.drift.concept``.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

# Batch size and poll timeout of the hand-written loop: streamer's defaults, so that the two
# differ by what the worker does, not by how they batch.
BATCH = 500
POLL_TIMEOUT = 0.2


def build_model(name: str) -> Any:
    """The two models of the benchmark, as streamer's presets build them (seed 42)."""
    from river import linear_model, preprocessing, tree

    if name == "softmax":
        return preprocessing.StandardScaler() | linear_model.SoftmaxRegression()
    if name == "tree":
        return tree.HoeffdingAdaptiveTreeClassifier(seed=42)
    raise ValueError(f"unknown model {name!r}")


def build_detector(name: str) -> Any:
    if name == "DualADWIN":
        from streamer.drift.concept import DualADWIN

        return DualADWIN()
    if name == "ADWIN":
        from river import drift

        return drift.ADWIN()
    raise ValueError(f"unknown detector {name!r}")


def make_decode(fmt: str, schema: Any) -> Callable[[bytes], dict[str, Any]]:
    if fmt == "json":
        return orjson.loads  # type: ignore[no-any-return]
    import io

    import fastavro

    parsed = fastavro.parse_schema(schema)
    reader = fastavro.schemaless_reader

    def decode(value: bytes) -> dict[str, Any]:
        return reader(io.BytesIO(value), parsed, None)  # type: ignore[return-value]

    return decode


class Work:
    """The per-event work of every variant: decode, predict, score, detect, learn.

    Returns ``(event id, predicted class, probabilities, label)`` for the loops that emit a
    prediction. The features are every field but ``id`` and ``label``.
    """

    def __init__(self, model: str, detector: str, fmt: str, schema: Any = None) -> None:
        from river import metrics

        self.model = build_model(model)
        self.accuracy = metrics.Accuracy()
        self.detector = build_detector(detector)
        self.decode = make_decode(fmt, schema)
        self.drifts = 0

    def __call__(self, value: bytes) -> tuple[str, Any, dict[Any, float], Any]:
        obj = self.decode(value)
        y = obj["label"]
        x = {k: v for k, v in obj.items() if k != "id" and k != "label"}
        model = self.model
        proba = model.predict_proba_one(x)
        y_pred = max(proba, key=proba.get) if proba else None
        if y_pred is not None:
            self.accuracy.update(y, y_pred)
            self.detector.update(float(y_pred != y))
            if self.detector.drift_detected:
                self.drifts += 1
        model.learn_one(x, y)
        return obj["id"], y_pred, proba, y


def prediction(
    eid: str, topic: str, partition: int, offset: int, y_pred: Any, proba: Any, y: Any
) -> bytes:
    """The prediction record of the hand-written loop and the peers (streamer's minus model)."""
    return orjson.dumps(
        {
            "event_id": eid,
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "prediction": y_pred,
            "proba": proba or None,
            "label": y,
        },
        option=orjson.OPT_NON_STR_KEYS,
    )


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _ready() -> None:
    print("READY", flush=True)


# -- bare ---------------------------------------------------------------------------------------


def run_bare(spec: dict[str, Any]) -> dict[str, Any]:
    """The loop over values in memory: no Kafka, nothing around the work."""
    with open(spec["values"], "rb") as f:
        values: list[bytes] = pickle.load(f)
    n = spec["n"]
    work = Work(spec["model"], spec["detector"], spec["format"], spec.get("schema"))
    stream: Iterable[bytes] = (
        values[:n] if n <= len(values) else itertools.islice(itertools.cycle(values), n)
    )
    # RSS is read between segments, never inside the timed loop.
    marks = sorted(m for m in spec.get("rss_at", []) if m <= n)
    bounds = [*marks, n] if not marks or marks[-1] != n else marks
    it = iter(stream)
    rss: dict[str, int] = {}
    latencies: list[float] = []
    gc.collect()
    started, cpu, thread_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    done = 0
    for bound in bounds:
        if spec.get("per_event_timing"):
            clock = time.perf_counter
            for value in itertools.islice(it, bound - done):
                t = clock()
                work(value)
                latencies.append(clock() - t)
        else:
            for value in itertools.islice(it, bound - done):
                work(value)
        done = bound
        if bound in marks:
            rss[str(bound)] = rss_kib()
    seconds = time.perf_counter() - started
    return {
        "n": done,
        "seconds": seconds,
        "cpu": time.process_time() - cpu,
        "thread_cpu": time.thread_time() - thread_cpu,
        "accuracy": work.accuracy.get(),
        "drifts": work.drifts,
        "rss_kib": rss,
        "latencies": latencies,
    }


# -- the hand-written confluent-kafka loop ------------------------------------------------------


def run_hand(spec: dict[str, Any]) -> dict[str, Any]:
    """Consume a batch, do the work, produce predictions, flush, commit; as a user would write."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    topic, out = spec["topic"], spec["predictions"]
    consumer = Consumer(
        {
            "bootstrap.servers": spec["bootstrap"],
            "group.id": spec["group"],
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    # Assigned rather than subscribed: no group join to wait for; offsets still go to the group.
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in spec["partitions"]])
    producer = Producer(
        {"bootstrap.servers": spec["bootstrap"], "linger.ms": 5, "enable.idempotence": True}
    )
    # Connect both clients before saying READY, as the worker has by the end of its group
    # join: the producer to get its idempotent producer id, the consumer its coordinator.
    producer.list_topics(out, timeout=30)
    consumer.committed([TopicPartition(topic, p) for p in spec["partitions"]], timeout=30)
    args = (spec["model"], spec["detector"], spec["format"], spec.get("schema"))
    works = {p: Work(*args) for p in spec["partitions"]}  # a model per partition
    n, done = spec["n"], 0
    batches: list[tuple[int, float]] = []
    _ready()
    while done < n:
        msgs = consumer.consume(min(BATCH, n - done), POLL_TIMEOUT)
        if not msgs:
            continue
        t = time.perf_counter()
        last: dict[tuple[str, int], int] = {}
        for m in msgs:
            if m.error() is not None:
                continue
            part = m.partition()
            eid, y_pred, proba, y = works[part](m.value())
            value = prediction(eid, m.topic(), part, m.offset(), y_pred, proba, y)
            while True:
                try:
                    producer.produce(out, value, eid.encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            last[(m.topic(), part)] = m.offset()
        if producer.flush(30) != 0:
            raise RuntimeError("predictions not delivered within 30 s")
        consumer.commit(
            offsets=[TopicPartition(t_, p, o + 1) for (t_, p), o in last.items()],
            asynchronous=False,
        )
        batches.append((len(msgs), time.perf_counter() - t))
        done += len(msgs)
    consumer.close()
    return {"n": done, "batches": batches}


# -- streamer's worker --------------------------------------------------------------------------


class _Recorder:
    """Wraps a Prometheus histogram: keeps every observation, then forwards it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.values: list[float] = []

    def observe(self, value: float, *args: Any, **kwargs: Any) -> None:
        self.values.append(value)
        self.inner.observe(value, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """streamer's Worker, in-process, with the settings of the workload.

    Batch sizes and durations come from the worker's own ``streamer_batch_records`` and
    ``streamer_batch_duration_seconds`` observations (from decode to committed offsets); if a
    later worker stops making them, the processing latency row says n/a.
    """
    from streamer.metrics import Metrics
    from streamer.settings import load_settings
    from streamer.worker import Worker

    settings = load_settings(env={}, overrides=spec["settings"])
    metrics = Metrics()
    sizes, seconds = _Recorder(metrics.batch_records), _Recorder(metrics.batch_seconds)
    metrics.batch_records = sizes  # type: ignore[assignment]
    metrics.batch_seconds = seconds  # type: ignore[assignment]
    n, linger = spec.get("n"), spec.get("linger", False)

    def done(w: Worker) -> None:
        # Lingering: stay in the group once done, so that no rebalance stalls the others.
        if linger and n is not None and w.processed >= n and not w.stopping:
            print("DONE", flush=True)
            w.on_batch = None

    worker = Worker(settings, metrics=metrics, on_batch=done)
    worker.provision_topics()
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())

    def announce() -> None:
        # The exported gauge, not the worker's internals: it survives refactoring of the loop.
        while worker.metrics.registry.get_sample_value("streamer_assigned_partitions") in (
            None,
            0.0,
        ):
            if worker.stopping:
                return
            time.sleep(0.01)
        _ready()

    threading.Thread(target=announce, daemon=True).start()
    worker.run(max_events=None if linger else n)
    batches = list(zip(sizes.values, seconds.values, strict=False))
    by_partition = {
        s.labels["partition"]: int(s.value)
        for metric in metrics.registry.collect()
        if metric.name == "streamer_events"
        for s in metric.samples
        if s.name == "streamer_events_total"
    }
    return {"n": int(sum(b[0] for b in batches)), "batches": batches, "partitions": by_partition}


# -- peers --------------------------------------------------------------------------------------


def run_bytewax(spec: dict[str, Any]) -> dict[str, Any]:
    """A Bytewax dataflow: Kafka input (to the end of the topic), a model per partition kept
    by ``stateful_map``, Kafka output. Bytewax keeps its offsets in its own recovery store
    (off here), not in the group: it commits nothing to Kafka."""
    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaSinkMessage
    from bytewax.connectors.kafka import operators as kop
    from bytewax.dataflow import Dataflow
    from bytewax.testing import run_main

    out = spec["predictions"]
    flow = Dataflow("bench")
    source = kop.input("in", flow, brokers=[spec["bootstrap"]], topics=[spec["topic"]], tail=False)
    keyed = op.key_on("partition", source.oks, lambda m: str(m.partition))
    args = (spec["model"], spec["detector"], spec["format"], spec.get("schema"))

    def score(work: Work | None, m: Any) -> tuple[Work, Any]:
        if work is None:
            work = Work(*args)
        eid, y_pred, proba, y = work(m.value)
        value = prediction(eid, m.topic, m.partition, m.offset, y_pred, proba, y)
        return work, KafkaSinkMessage(key=eid.encode(), value=value)

    scored = op.stateful_map("score", keyed, score)
    kop.output(
        "out", op.map("unkey", scored, lambda kv: kv[1]), brokers=[spec["bootstrap"]], topic=out
    )
    _ready()
    run_main(flow)
    return {"n": spec["n"]}


def run_quix(spec: dict[str, Any]) -> dict[str, Any]:
    """A Quix Streams application: ``apply`` with a model per partition, ``to_topic``."""
    import logging

    from quixstreams import Application, message_context

    app = Application(
        broker_address=spec["bootstrap"],
        consumer_group=spec["group"],
        auto_offset_reset="earliest",
        consumer_extra_config=dict(spec.get("consumer", {})),
        loglevel=logging.WARNING,
    )
    source = app.topic(spec["topic"], key_deserializer="bytes", value_deserializer="bytes")
    sink = app.topic(spec["predictions"], key_serializer="bytes", value_serializer="bytes")
    works: dict[int, Work] = {}
    args = (spec["model"], spec["detector"], spec["format"], spec.get("schema"))

    def score(value: bytes) -> bytes:
        ctx = message_context()
        work = works.get(ctx.partition)
        if work is None:
            work = works[ctx.partition] = Work(*args)
        eid, y_pred, proba, y = work(value)
        return prediction(eid, ctx.topic, ctx.partition, ctx.offset, y_pred, proba, y)

    sdf = app.dataframe(source).apply(score)
    # Quix gives an output the input's timestamp; the harness times the run by when each
    # prediction was made, as for the other variants.
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: int(time.time() * 1000))
    sdf.to_topic(sink)  # keyed by the input key, the event id
    _ready()
    app.run(count=spec["n"], collect=False)
    return {"n": spec["n"]}


RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "bare": run_bare,
    "hand": run_hand,
    "worker": run_worker,
    "bytewax": run_bytewax,
    "quix": run_quix,
}


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    result = RUNNERS[spec["kind"]](spec)
    result["pid"] = os.getpid()
    with open(spec["result"], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
