"""The worker loop: consume a batch, run the stages in order, deliver outputs, commit.

One worker is one member of the consumer group. It holds the state of the partitions assigned
to it (:class:`PartitionState`) and, per consumed batch, per partition, runs::

    parse (decode + validate) -> prequential (score, then learn) -> emit -> commit

Offsets are committed only after every output of the batch has been acknowledged by the
brokers, so a worker killed at any point loses no event (outputs are at-least-once: a replay
may emit a prediction twice; each carries the event id and the model version).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, cast

from streamer import kafka
from streamer.decode import make_decoder
from streamer.drift.monitor import DriftMonitor, DriftReport, load_reference
from streamer.metrics import Metrics
from streamer.outputs import Emitter
from streamer.prequential import Outcome, Prequential
from streamer.records import DriftEvent, Event, Record
from streamer.settings import Settings
from streamer.validate import Validator, parse

__all__ = ["PartitionState", "Worker"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


@dataclass(slots=True)
class PartitionState:
    """Everything one input partition owns: its model, metrics and position."""

    topic: str
    partition: int
    prequential: Prequential
    drift: DriftMonitor | None = None
    version: int = 1
    next_offset: int | None = None
    events: int = 0


class Worker:
    """Consume the events topic and run the pipeline until stopped.

    Parameters
    ----------
    settings
        The validated settings tree.
    metrics
        Where to export metrics (a fresh registry by default; tests pass their own).
    on_batch
        Called after each committed batch with the worker (the demo prints progress from it).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        on_batch: Callable[[Worker], None] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.on_batch = on_batch
        s = settings
        # Built once here so that a bad model, metric or schema stops the worker at start-up.
        self.task = Prequential.from_settings(self.settings).task
        self.decoder = make_decoder(
            s.input.format,
            schema_file=s.resolve_path(s.input.avro.schema_file)
            if s.input.avro.schema_file
            else None,
            schema_ids={k: s.resolve_path(v) for k, v in s.input.avro.schema_ids.items()},
            framing=s.input.avro.framing,
        )
        self.validator = Validator(s.fields, task=self.task)
        self.max_bytes = s.input.max_record_bytes
        w = s.drift.windows
        self._pinned = (
            load_reference(s.resolve_path(w.reference_file))
            if s.drift.enabled and w.reference == "pinned"
            else None
        )
        self._new_drift("", -1)  # a bad drift setting stops the worker here
        self.states: dict[TopicPartition, PartitionState] = {}
        self._parked: dict[TopicPartition, PartitionState] = {}
        self._stop = threading.Event()
        self._closing = False
        self.processed = 0
        self.dead_total = 0
        self.drift_total = 0
        # The latest drift events, for people watching (the demo prints them).
        self.recent_drift: deque[DriftEvent] = deque(maxlen=50)
        self.started = time.monotonic()
        self._consumer: Any = None
        self._sink: kafka.KafkaSink | None = None
        self.metrics.info.info(_versions())

    # -- construction -------------------------------------------------------------------------

    def _new_drift(self, topic: str, partition: int) -> DriftMonitor | None:
        s = self.settings
        if not s.drift.enabled:
            return None
        return DriftMonitor(
            s.drift,
            fields=s.fields,
            task=self.task,
            topic=topic,
            partition=partition,
            model=s.model.name,
            seed=s.model.seed,
            pinned=self._pinned,
        )

    def _new_state(self, topic: str, partition: int) -> PartitionState:
        return PartitionState(
            topic,
            partition,
            Prequential.from_settings(self.settings),
            self._new_drift(topic, partition),
        )

    def provision_topics(self) -> list[str]:
        """Create the topics the worker reads and writes, if ``topics.create`` is on."""
        t = self.settings.topics
        if not t.create:
            return []
        admin = kafka.make_admin(self.settings.kafka)
        return kafka.ensure_topics(
            admin,
            [t.events, t.predictions, t.dead_letters, t.drift_events],
            partitions=t.partitions,
            replication_factor=t.replication_factor,
        )

    # -- group membership ---------------------------------------------------------------------

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        committed = kafka.committed(consumer, [k for k in keys if k in self._parked])
        for tp in partitions:
            key = (tp.topic, tp.partition)
            state = self._parked.pop(key, None)
            # A partition that comes back with nothing processed elsewhere keeps its model;
            # otherwise another worker moved on and this state is stale.
            if state is None or committed.get(key) != state.next_offset:
                state = self._new_state(tp.topic, tp.partition)
            self.states[key] = state
        self._parked.clear()
        self.metrics.assigned.set(len(self.states))
        log.info("assigned %s", sorted(self.states))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # Every processed record is already committed (commits are synchronous, per batch,
        # and this callback only runs inside consume() or close()), so nothing is lost here.
        if self._closing:
            return  # the final revoke: keep the states readable after run() returns
        for tp in partitions:
            state = self.states.pop((tp.topic, tp.partition), None)
            if state is not None:
                self._parked[(tp.topic, tp.partition)] = state
        self.metrics.assigned.set(len(self.states))
        log.info("revoked %s", [(tp.topic, tp.partition) for tp in partitions])

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self.states.pop((tp.topic, tp.partition), None)
        self.metrics.assigned.set(len(self.states))
        log.warning("lost %s", [(tp.topic, tp.partition) for tp in partitions])

    # -- the loop -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop after the batch in progress (safe from signal handlers)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, max_events: int | None = None) -> None:
        """Process batches until :meth:`stop` or until ``max_events`` records were processed."""
        s = self.settings
        self._sink = kafka.KafkaSink(kafka.make_producer(s.kafka))
        self.emitter = Emitter(
            self._sink,
            predictions_topic=s.topics.predictions,
            dead_letters_topic=s.topics.dead_letters,
            drift_events_topic=s.topics.drift_events,
            fmt=s.output.format,
            model=s.model.name,
        )
        self._consumer = kafka.make_consumer(
            s.kafka,
            [s.topics.events],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        batch_size, timeout = s.worker.batch_size, s.worker.poll_timeout
        try:
            while not self._stop.is_set():
                if max_events is not None and self.processed >= max_events:
                    break
                n = (
                    batch_size
                    if max_events is None
                    else min(batch_size, max_events - self.processed)
                )
                msgs = self._consumer.consume(n, timeout)
                if msgs:
                    self._handle(cast(list[Record], kafka.records_only(msgs)))
                else:
                    self._sink.poll()
        finally:
            self._close()

    def _close(self) -> None:
        self._closing = True
        try:
            if self._sink is not None:
                self._sink.close(self.settings.worker.shutdown_timeout)
        finally:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            log.info("worker stopped after %d records", self.processed)

    def _handle(self, records: Sequence[Record]) -> None:
        """One batch: the stages in order for each partition, then deliver, then commit."""
        started = time.perf_counter()
        emitter, metrics = self.emitter, self.metrics
        next_offsets: dict[TopicPartition, int] = {}
        dead_tally: Tally[tuple[str, str]] = Tally()
        for (topic, partition), recs in _by_partition(records).items():
            state = self.states.get((topic, partition))
            if state is None:  # a record from a partition revoked mid-batch: replayed elsewhere
                continue
            parsed = parse(recs, self.decoder, self.validator, max_bytes=self.max_bytes)
            outcome = state.prequential.run(parsed.events)
            drift = (
                state.drift.observe(
                    parsed.decoded,
                    parsed.decoded_offsets,
                    parsed.events,
                    outcome,
                    version=state.version,
                )
                if state.drift is not None
                else None
            )
            dead = parsed.dead + outcome.dead
            emitter.predictions(topic, partition, outcome.scored, state.version)
            emitter.dead_letters(dead)
            if drift is not None and drift.events:
                emitter.drift_events(drift.events)
                self.drift_total += len(drift.events)
                self.recent_drift.extend(drift.events)

            next_offsets[(topic, partition)] = recs[-1].offset() + 1  # type: ignore[operator]
            state.events += len(recs)
            for d in dead:
                dead_tally[(d.stage, d.reason)] += 1
            self.dead_total += len(dead)
            self._export(state, len(recs), parsed.events, outcome, drift)
        self._sink.flush(self.settings.worker.shutdown_timeout)  # type: ignore[union-attr]
        kafka.commit(self._consumer, next_offsets)
        for key, offset in next_offsets.items():
            self.states[key].next_offset = offset
            metrics.committed_offset.labels(key[0], str(key[1])).set(offset)
            marks = kafka.watermarks(self._consumer, *key)
            if marks is not None:
                metrics.lag.labels(key[0], str(key[1])).set(max(marks[1] - offset, 0))
        for (stage, reason), n in dead_tally.items():
            metrics.dead_letters.labels(self.settings.topics.events, stage, reason).inc(n)
        metrics.batch_records.observe(len(records))
        metrics.batch_seconds.observe(time.perf_counter() - started)
        self.processed += len(records)
        if self.on_batch is not None:
            self.on_batch(self)

    def _export(
        self,
        state: PartitionState,
        n_records: int,
        events: list[Event],
        outcome: Outcome,
        drift: DriftReport | None,
    ) -> None:
        """Per-batch metric updates of one partition (never per event)."""
        m = self.metrics
        labels = (state.topic, str(state.partition))
        part = labels[1]
        m.events.labels(*labels).inc(n_records)
        m.predictions.labels(*labels).inc(len(outcome.scored))
        m.labelled.labels(*labels).inc(outcome.labelled)
        m.learned.labels(*labels).inc(outcome.learned)
        if events:
            m.event_time.labels(*labels).set(events[-1].time)
        name = self.settings.model.name
        for (metric, window), value in state.prequential.metric_values().items():
            m.model_metric.labels(part, name, "champion", metric, window).set(value)
        if drift is None or state.drift is None:
            return
        exported = state.drift.exported_features()
        new_fields: dict[str, float] = {}
        for signal, f in drift.statistics:
            if signal == "feature" and f.feature not in exported:
                continue
            if signal == "schema" and f.feature not in exported:
                # Field names from the data are unbounded: one series for all unknown ones.
                if f.statistic == "new_field_rate":
                    new_fields[f.statistic] = max(new_fields.get(f.statistic, 0.0), f.value)
                continue
            m.drift_statistic.labels(part, signal, f.feature, f.statistic).set(f.value)
        for statistic, value in new_fields.items():
            m.drift_statistic.labels(part, "schema", "(new)", statistic).set(value)
        for ev in drift.events:
            m.drift_events.labels(part, ev.signal, ev.level).inc()
        for signal, n in state.drift.alarming().items():
            m.drift_alarming.labels(part, signal).set(n)
        if drift.concept_states:
            m.concept_state.labels(part).set(drift.concept_states[-1])


def _by_partition(records: Sequence[Record]) -> dict[TopicPartition, list[Record]]:
    groups: dict[TopicPartition, list[Record]] = {}
    for r in records:
        key = (r.topic(), r.partition())
        group = groups.get(key)  # type: ignore[arg-type]
        if group is None:
            groups[key] = [r]  # type: ignore[index]
        else:
            group.append(r)
    return groups


def _versions() -> dict[str, str]:
    from streamer._version import __version__

    out = {"streamer": __version__}
    for dist in ("river", "confluent-kafka", "fastavro", "prometheus-client"):
        try:
            out[dist.replace("-", "_")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist.replace("-", "_")] = "unknown"
    return out
