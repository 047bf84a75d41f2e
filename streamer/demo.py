"""``streamer demo``: the whole loop on a drifting stream, on an embedded broker.

With no brokers configured it starts the embedded Tansu broker, creates the topics, produces a
seeded synthetic stream whose concept switches every ``drift_every`` events (with a malformed
record now and then, to show the dead-letter path), and runs a worker on it, printing live
progress. It stops on Ctrl-C or after ``events`` records.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

from streamer import kafka, synth
from streamer.broker import FAST_GROUP_SETTINGS, EmbeddedBroker
from streamer.decode import JsonEncoder
from streamer.produce import produce_rows, sample_rows
from streamer.settings import Settings
from streamer.worker import Worker

__all__ = ["DEMO_SIGNING_KEY", "alternating", "demo_settings", "run_demo"]


def alternating(
    name: str, *, seed: int, every: int, bad_every: int = 0
) -> Iterator[dict[str, Any]]:
    """Rows of a named concept stream whose concept switches every ``every`` events.

    Every ``bad_every``-th row (if set) has a feature replaced by a string, which the worker
    must dead-letter.
    """
    before, after = synth.CONCEPT_STREAMS[name](seed)
    concepts = [iter(before), iter(after)]
    samples = (next(concepts[(t // every) % 2]) for t in itertools.count())
    for i, row in enumerate(sample_rows(samples)):
        if bad_every and i % bad_every == bad_every - 1:
            feature = next(k for k in row if k not in ("id", "label"))
            row[feature] = "not a number"
        yield row


#: Signs the demo's checkpoints and model updates when no key is configured. It is public, so
#: it protects nothing: a deployment sets its own (security.signing_key).
DEMO_SIGNING_KEY = "streamer-demo-key-not-a-secret"


def demo_settings(base: Settings, bootstrap_servers: str, partitions: int = 1) -> Settings:
    """The settings the demo runs with: the given ones, pointed at the demo broker, with the
    public demo signing key when none is configured."""
    kafka_settings = base.kafka.model_copy(
        update={
            "bootstrap_servers": bootstrap_servers,
            "consumer": {**FAST_GROUP_SETTINGS, **base.kafka.consumer},
        }
    )
    topics = base.topics.model_copy(update={"partitions": partitions})
    return _with_demo_key(base.model_copy(update={"kafka": kafka_settings, "topics": topics}))


def _with_demo_key(settings: Settings) -> Settings:
    if settings.signing_key() is not None:
        return settings
    security = settings.security.model_copy(update={"signing_key": DEMO_SIGNING_KEY})
    return settings.model_copy(update={"security": security})


class _Progress:
    """Prints one status line per second from the worker's thread."""

    def __init__(self, out: TextIO, every: float = 1.0, last: int | None = None) -> None:
        self.out = out
        self.every = every
        self.last = last
        self._last = 0.0
        self._last_count = 0
        self._drift_shown = 0

    def __call__(self, worker: Worker) -> None:
        now = time.monotonic()
        final = self.last is not None and worker.processed >= self.last
        if not final and now - self._last < self.every:
            return
        elapsed = now - self._last if self._last else now - worker.started
        rate = (worker.processed - self._last_count) / max(elapsed, 1e-9)
        self._last, self._last_count = now, worker.processed
        parts = [
            f"[{now - worker.started:7.1f}s] events {worker.processed:>9,}",
            f"{rate:>7,.0f}/s",
        ]
        for (_, partition), state in sorted(worker.states.items()):
            values = state.champion.evaluation.values()
            shown = " ".join(
                f"{metric} {value:.3f}"
                for (metric, window), value in values.items()
                if window == "rolling"
            )
            parts.append(f"p{partition} rolling {shown}")
        parts.append(f"dead letters {worker.dead_total}")
        parts.append(f"drift events {worker.drift_total}")
        model = worker.settings.model
        versions = sorted({s.champion.version for s in worker.states.values()}) or [1]
        parts.append(f"model {model.name} v{','.join(map(str, versions))} ({model.preset})")
        print(" | ".join(parts), file=self.out, flush=True)
        while len(worker.recent_drift) > self._drift_shown:
            ev = worker.recent_drift[self._drift_shown]
            self._drift_shown += 1
            if ev.level == "ok":
                continue
            what = ev.signal if not ev.feature else f"{ev.signal} {ev.feature!r}"
            print(
                f"    drift {ev.level}: {what} {ev.statistic} = {ev.value:.3g} "
                f"(threshold {ev.threshold:.3g}) at p{ev.partition} offset "
                f"{ev.current_offsets[1]:,}",
                file=self.out,
                flush=True,
            )


def run_demo(
    settings: Settings,
    *,
    events: int | None = None,
    rate: float | None = 2000.0,
    stream: str = "sea",
    drift_every: int = 10_000,
    bad_every: int = 5_000,
    seed: int = 7,
    partitions: int = 1,
    out: TextIO = sys.stdout,
    worker_hook: Any = None,
) -> Worker:
    """Run the demo; return the stopped worker (its metrics and states stay readable)."""
    from streamer.metrics import Metrics, MetricsServer

    broker: EmbeddedBroker | None = None
    settings = _with_demo_key(settings)
    if not settings.kafka.bootstrap_servers:
        broker = EmbeddedBroker().start()
        print(f"embedded broker (Tansu) on {broker.bootstrap_servers}, pid {broker.pid}", file=out)
        settings = demo_settings(settings, broker.bootstrap_servers, partitions)
    server = None
    stop_producer = threading.Event()
    try:
        metrics = Metrics()
        progress = _Progress(out, last=events)
        worker = Worker(settings, metrics=metrics, on_batch=progress)
        if worker_hook is not None:
            worker_hook(worker)
        created = worker.provision_topics()
        if created:
            print(f"created topics: {', '.join(created)}", file=out)
        if settings.prometheus.port:
            server = MetricsServer(
                metrics.registry, host=settings.prometheus.host, port=settings.prometheus.port
            )
            print(f"metrics: http://localhost:{server.port}/metrics", file=out)
        print(
            f"producing the {stream!r} stream, concept switching every {drift_every:,} events"
            + (f", at {rate:,.0f} events/s" if rate else ""),
            file=out,
        )
        sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
        producer_error: list[BaseException] = []

        def produce() -> None:
            try:
                rows = alternating(stream, seed=seed, every=drift_every, bad_every=bad_every)
                produce_rows(
                    rows,
                    sink,
                    settings.topics.events,
                    JsonEncoder(),
                    rate=rate,
                    limit=events,
                    should_stop=stop_producer.is_set,
                )
                sink.flush()
            except BaseException as exc:  # reported by the main thread
                producer_error.append(exc)
                worker.stop()

        thread = threading.Thread(target=produce, name="demo-producer", daemon=True)
        thread.start()
        worker.run(max_events=events)
        stop_producer.set()
        thread.join(timeout=10)
        sink.close()
        if producer_error:
            raise producer_error[0]
        return worker
    finally:
        stop_producer.set()
        if server is not None:
            server.close()
        if broker is not None:
            broker.stop()
