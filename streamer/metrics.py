"""Prometheus metrics, their per-batch export, and the HTTP endpoints that serve them.

Conventions: prefix ``streamer_``; counters end in ``_total``, durations in ``_seconds``; labels
come only from bounded sets (topic, partition, stage, reason, metric name, model role, signal,
statistic, configured feature names), never from event keys or ids. ``docs/metrics.md``
documents every metric and the panels and alerts that use it.

The worker does not touch metric objects. Once per batch it calls the export methods of
:class:`Metrics` with plain values:

* :meth:`Metrics.export_partition`, :meth:`Metrics.export_model` and
  :meth:`Metrics.export_drift` for each partition of the batch, after the stages ran;
* :meth:`Metrics.export_batch` once, after the batch's outputs were produced: it closes the
  batch (latencies are measured up to this call); :meth:`Metrics.export_commit` after each
  commit of offsets;

and, as partitions and models come and go, :meth:`Metrics.forget_partition` and
:meth:`Metrics.forget_model`, which remove their series so that a revoked partition or a
retired model does not linger in Prometheus with its last values.

Every metric is registered on the registry given to :class:`Metrics`, so a test builds its own
``CollectorRegistry()`` and reads values with ``registry.get_sample_value``.

Examples
--------
>>> from prometheus_client import CollectorRegistry
>>> reg = CollectorRegistry()
>>> m = Metrics(reg, process=False)
>>> m.export_partition("events", 0, records=3, predictions=3, labelled=2, learned=2,
...                    event_times=[1.0, 2.0, 3.0])
>>> m.export_batch(started=0.0, records=3)
>>> m.export_commit({("events", 0): (3, 3)})
>>> reg.get_sample_value("streamer_events_total", {"topic": "events", "partition": "0"})
3.0
>>> reg.get_sample_value(
...     "streamer_end_to_end_latency_seconds_count", {"topic": "events", "partition": "0"})
3.0
>>> m.forget_partition("events", 0)
>>> reg.get_sample_value("streamer_events_total", {"topic": "events", "partition": "0"})
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
from prometheus_client import (
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    make_wsgi_app,
)
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from streamer.drift.monitor import LEVELS, SIGNALS
from streamer.errors import ConfigError

if TYPE_CHECKING:
    from streamer.settings import Settings

__all__ = [
    "CHECKPOINT_RESTORE_SOURCES",
    "LIFECYCLE_DECISIONS",
    "MODEL_ROLES",
    "MODEL_UPDATE_REASONS",
    "Metrics",
    "MetricsServer",
    "serve_worker_metrics",
]

log = logging.getLogger(__name__)

#: Roles of a partition's model slots (label ``role``).
MODEL_ROLES = ("champion", "challenger", "previous")
#: Decisions of the model lifecycle (label ``decision``).
LIFECYCLE_DECISIONS = (
    "challenger_started",
    "promoted",
    "rolled_back",
    "challenger_dropped",
    "retired",
)
#: Why a model update was published (label ``reason``).
MODEL_UPDATE_REASONS = ("initial", "periodic", "promotion", "rollback", "manual")
#: Where a partition's state came from on assignment (label ``source``).
CHECKPOINT_RESTORE_SOURCES = ("changelog", "memory", "fresh")

_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From consume to delivery: a batch's time, plus the wait for the brokers' acks.
_PROCESSING_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
# From event time to delivery: includes the time an event waited in Kafka (lag), so the
# buckets reach an hour.
_END_TO_END_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
_CHECKPOINT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

TopicPartition = tuple[str, int]


class _Finding(Protocol):
    """One drift statistic of one evaluation (:class:`streamer.drift.window.Finding`)."""

    @property
    def feature(self) -> str: ...
    @property
    def statistic(self) -> str: ...
    @property
    def value(self) -> float: ...


class _LevelChange(Protocol):
    """A drift level change (:class:`streamer.records.DriftEvent`)."""

    @property
    def signal(self) -> str: ...
    @property
    def level(self) -> str: ...


class BatchHistogram(Collector):
    """A labelled histogram that takes a whole batch of observations in one call.

    prometheus_client's ``Histogram.observe`` is one Python call (and one lock) per value;
    per event that would cost more than the rest of the metrics together. Here a batch's values
    are bucketed by numpy in one ``searchsorted`` + ``bincount``, and a value shared by ``n``
    events (a batch's processing latency) by one ``bisect``.

    Negative values (an event time ahead of the worker's clock) count as 0, and non-finite
    ones are ignored, so that ``_sum`` stays a counter.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self._bounds = [float(b) for b in buckets]
        self._np_bounds = np.asarray(self._bounds)
        self._les = [floatToGoString(b) for b in self._bounds] + ["+Inf"]  # type: ignore[no-untyped-call]
        self._series: dict[tuple[str, ...], tuple[np.ndarray, list[float]]] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def _slot(self, labelvalues: tuple[str, ...]) -> tuple[np.ndarray, list[float]]:
        slot = self._series.get(labelvalues)
        if slot is None:
            slot = (np.zeros(len(self._bounds) + 1, dtype=np.int64), [0.0])
            self._series[labelvalues] = slot
        return slot

    def observe_many(
        self, labelvalues: tuple[str, ...], values: Sequence[float] | np.ndarray[Any, Any]
    ) -> None:
        """Observe every value of ``values`` (one batch) at once."""
        if not len(values):
            return
        a = np.asarray(values, dtype=np.float64)
        a = a[np.isfinite(a)]
        np.maximum(a, 0.0, out=a)
        # "le" buckets: a value equal to a bound belongs to that bound's bucket.
        counts = np.bincount(
            np.searchsorted(self._np_bounds, a, side="left"), minlength=len(self._bounds) + 1
        )
        total = float(a.sum())
        with self._lock:
            buckets, sums = self._slot(labelvalues)
            buckets += counts
            sums[0] += total

    def observe_repeated(self, labelvalues: tuple[str, ...], value: float, n: int) -> None:
        """Observe ``value`` ``n`` times (the same latency for every event of a batch)."""
        if n <= 0 or not np.isfinite(value):
            return
        value = max(value, 0.0)
        i = bisect.bisect_left(self._bounds, value)
        with self._lock:
            buckets, sums = self._slot(labelvalues)
            buckets[i] += n
            sums[0] += value * n

    def remove(self, labelvalues: tuple[str, ...]) -> None:
        with self._lock:
            self._series.pop(labelvalues, None)

    def describe(self) -> Iterable[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            snapshot = [(lv, b.cumsum(), s[0]) for lv, (b, s) in self._series.items()]
        for labelvalues, cumulative, total in snapshot:
            family.add_metric(
                list(labelvalues),
                [(le, float(c)) for le, c in zip(self._les, cumulative, strict=True)],
                total,
            )
        return [family]


class HeldState(Collector):
    """A per-partition state gauge that holds each non-zero state for ``hold`` seconds.

    A concept-drift detector is in its drift state for one event and then starts afresh, so a
    gauge set after each batch is back to 0 long before Prometheus scrapes it. This gauge reads
    the highest state seen in the last ``hold`` seconds (or the current state, if higher):
    a drift stays visible for ``hold`` seconds after the batch that saw it, and a warning for
    as long as the detector stays in it, plus ``hold``. Values are computed at scrape time, so
    the state also clears on a topic gone quiet.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
        *,
        hold: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = list(labelnames)
        self.hold = hold
        self.clock = clock
        # labels -> [current state, until[1], until[2], …]: until[s] is when state s stops
        # being held.
        self._series: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def update(self, labelvalues: tuple[str, ...], states: Sequence[int]) -> None:
        """Record one batch's states, in order (the last one is the current state)."""
        if not states:
            return
        until = self.clock() + self.hold
        top = max(states)
        with self._lock:
            slot = self._series.get(labelvalues)
            if slot is None:
                slot = self._series[labelvalues] = [0.0, 0.0, 0.0]
            slot[0] = float(states[-1])
            if top >= 2:
                slot[2] = until
            if top >= 1 and (top == 1 or 1 in states):
                slot[1] = until

    def value(self, labelvalues: tuple[str, ...]) -> float | None:
        """The state a scrape would read now; None if the series does not exist."""
        with self._lock:
            slot = self._series.get(labelvalues)
            return None if slot is None else self._value(slot, self.clock())

    @staticmethod
    def _value(slot: list[float], now: float) -> float:
        held = max((float(s) for s in (2, 1) if slot[s] > now), default=0.0)
        return max(slot[0], held)

    def remove(self, labelvalues: tuple[str, ...]) -> None:
        with self._lock:
            self._series.pop(labelvalues, None)

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        now = self.clock()
        with self._lock:
            values = [(lv, self._value(slot, now)) for lv, slot in self._series.items()]
        for labelvalues, value in values:
            family.add_metric(list(labelvalues), value)
        return [family]


class Metrics:
    """Every metric a worker exports, on one registry, and their per-batch export.

    Parameters
    ----------
    registry
        Where to register (a fresh ``CollectorRegistry`` by default).
    process
        Also export the standard ``process_*`` (CPU, memory, file descriptors) and
        ``python_*`` (GC, version) collectors; tests that count families turn them off.
    drift_hold
        Seconds the concept-drift state gauge holds a warning or a drift (see
        :class:`HeldState`): at least a few scrape intervals, so that every drift is scraped.
    clock
        Monotonic clock of the hold (tests pass a fake one).

    Notes
    -----
    The ``_created`` series of counters and histograms are off, as most exporters have them:
    they double the series count and nothing here reads them. Set
    ``PROMETHEUS_DISABLE_CREATED_SERIES=false`` in the environment to have them back
    (prometheus_client's own switch; it is process-wide).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        process: bool = True,
        drift_hold: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if "PROMETHEUS_DISABLE_CREATED_SERIES" not in os.environ:
            disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        tp = ["topic", "partition"]
        if process:
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            if GC_COLLECTOR is not None:
                GCCollector(registry=r)

        # -- the pipeline -----------------------------------------------------------------------
        self.events = Counter(
            "streamer_events", "Records consumed from the events topic.", tp, registry=r
        )
        self.predictions = Counter("streamer_predictions", "Predictions produced.", tp, registry=r)
        self.labelled = Counter(
            "streamer_labelled_events",
            "Events whose label was known when processed.",
            tp,
            registry=r,
        )
        self.learned = Counter(
            "streamer_learned_events", "Events the model learned from.", tp, registry=r
        )
        self.dead_letters = Counter(
            "streamer_dead_letters",
            "Records sent to the dead-letter topic, by stage and reason.",
            ["topic", "stage", "reason"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "streamer_batch_duration_seconds",
            "Time to process one consumed batch, from decode to committed offsets.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_records = Histogram(
            "streamer_batch_records",
            "Records per consumed batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.processing_latency = BatchHistogram(
            "streamer_processing_latency_seconds",
            "Per event: from the consume call that returned it to its outputs produced (sent "
            "within linger.ms, acknowledged by the next commit).",
            tp,
            _PROCESSING_BUCKETS,
            r,
        )
        self.end_to_end_latency = BatchHistogram(
            "streamer_end_to_end_latency_seconds",
            "Per prediction: from the event time to the prediction produced (includes the time "
            "the event waited in Kafka).",
            tp,
            _END_TO_END_BUCKETS,
            r,
        )
        self.committed_offset = Gauge(
            "streamer_committed_offset", "Next offset to read, as last committed.", tp, registry=r
        )
        self.lag = Gauge(
            "streamer_consumer_lag",
            "Records between the committed position and the partition's high watermark.",
            tp,
            registry=r,
        )
        self.event_time = Gauge(
            "streamer_last_event_timestamp_seconds",
            "Event time of the last record processed.",
            tp,
            registry=r,
        )
        self.assigned = Gauge(
            "streamer_assigned_partitions", "Partitions assigned to this worker.", registry=r
        )
        self.info = Info("streamer_build", "Versions of streamer and its libraries.", registry=r)

        # -- models -----------------------------------------------------------------------------
        self.model_metric = Gauge(
            "streamer_model_metric",
            "Prequential (test-then-train) metric of a partition's model; window is running "
            "(since start) or rolling (last evaluation.window labelled events).",
            ["topic", "partition", "model", "role", "metric", "window"],
            registry=r,
        )
        self.model_version = Gauge(
            "streamer_model_version",
            "Version of the model in each role (champion, challenger, previous).",
            ["topic", "partition", "model", "role"],
            registry=r,
        )
        self.lifecycle_decisions = Counter(
            "streamer_lifecycle_decisions",
            "Model lifecycle decisions: challenger_started, promoted, rolled_back, "
            "challenger_dropped, retired.",
            ["topic", "partition", "model", "decision"],
            registry=r,
        )
        self.model_updates = Counter(
            "streamer_model_updates_published",
            "Model updates published to the model-update topic, by reason.",
            ["model", "reason"],
            registry=r,
        )
        self.model_update_failures = Counter(
            "streamer_model_update_failures",
            "Model updates that could not be published, by reason (too_large, pickle).",
            ["model", "reason"],
            registry=r,
        )

        # -- checkpoints ------------------------------------------------------------------------
        self.checkpoints = Counter(
            "streamer_checkpoints", "Checkpoints written to the changelog topic.", tp, registry=r
        )
        self.checkpoint_bytes = Gauge(
            "streamer_checkpoint_bytes",
            "Size of the last checkpoint of a partition (compressed payload).",
            tp,
            registry=r,
        )
        self.checkpoint_time = Gauge(
            "streamer_last_checkpoint_timestamp_seconds",
            "When the partition's last checkpoint was written (age: time() - this).",
            tp,
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "streamer_checkpoint_duration_seconds",
            "Time to pickle, sign and write one partition's checkpoint.",
            buckets=_CHECKPOINT_BUCKETS,
            registry=r,
        )
        self.checkpoint_failures = Counter(
            "streamer_checkpoint_failures",
            "Checkpoints that could not be written, or were refused on restore, by reason.",
            ["reason"],
            registry=r,
        )
        self.restores = Counter(
            "streamer_restores",
            "Partition states restored on assignment, by source: changelog, memory (kept "
            "from an earlier assignment) or fresh (nothing to restore).",
            ["topic", "partition", "source"],
            registry=r,
        )

        # -- drift ------------------------------------------------------------------------------
        drift_labels = ["topic", "partition", "signal", "feature", "statistic"]
        self.drift_statistic = Gauge(
            "streamer_drift_statistic",
            "Latest value of a drift statistic (signal: feature, prediction, label, schema). "
            "Features beyond drift.max_exported_features are not exported here.",
            drift_labels,
            registry=r,
        )
        self.drift_level = Gauge(
            "streamer_drift_level",
            "Level of a drift statistic as published on the drift-events topic: 0 ok, "
            "1 warning, 2 alarm.",
            drift_labels,
            registry=r,
        )
        self.drift_events = Counter(
            "streamer_drift_events",
            "Drift level changes published (level: warning, alarm, or ok when one clears).",
            ["topic", "partition", "signal", "level"],
            registry=r,
        )
        self.drift_alarming = Gauge(
            "streamer_drift_alarming",
            "Statistics currently at alarm level, per signal.",
            ["topic", "partition", "signal"],
            registry=r,
        )
        self.concept_state = HeldState(
            "streamer_concept_drift_state",
            "Concept-drift detector state: 0 stable, 1 warning, 2 drift. A warning or drift "
            f"is held for {drift_hold:g} s after the batch that saw it, so that scrapes see it.",
            tp,
            r,
            hold=drift_hold,
            clock=clock,
        )

        # Children by labels, and the labels each partition owns (to remove them on revoke).
        self._children: dict[tuple[Any, tuple[str, ...]], Any] = {}
        self._owned: dict[TopicPartition, set[tuple[Any, tuple[str, ...]]]] = {}
        self._seen: set[TopicPartition] = set()
        self._pending: dict[TopicPartition, tuple[int, Sequence[float]]] = {}

    # -- children -----------------------------------------------------------------------------

    def _child(self, family: Any, topic: str, partition: int, *rest: str) -> Any:
        """The child of ``family`` for a partition's labels, remembered for removal."""
        labels = (topic, str(partition), *rest)
        key = (family, labels)
        child = self._children.get(key)
        if child is None:
            child = family.labels(*labels)
            self._children[key] = child
            self._owned.setdefault((topic, partition), set()).add(key)
        return child

    def _remove(self, key: tuple[Any, tuple[str, ...]]) -> None:
        family, labels = key
        self._children.pop(key, None)
        family.remove(*labels)

    # -- per batch ----------------------------------------------------------------------------

    def export_partition(
        self,
        topic: str,
        partition: int,
        *,
        records: int,
        predictions: int,
        labelled: int,
        learned: int,
        event_times: Sequence[float],
    ) -> None:
        """One partition's share of a batch: counts, and the event times of its predictions.

        Parameters
        ----------
        records
            Records consumed (dead letters included).
        predictions, labelled, learned
            Predictions made, events that carried a label, events learned from.
        event_times
            Event time (epoch seconds) of each prediction; their end-to-end latency is
            observed by the next :meth:`export_batch`.
        """
        self._child(self.events, topic, partition).inc(records)
        if predictions:
            self._child(self.predictions, topic, partition).inc(predictions)
        if labelled:
            self._child(self.labelled, topic, partition).inc(labelled)
        if learned:
            self._child(self.learned, topic, partition).inc(learned)
        if len(event_times):
            self._child(self.event_time, topic, partition).set(event_times[-1])
        self._pending[(topic, partition)] = (records, event_times)

    def export_model(
        self,
        topic: str,
        partition: int,
        *,
        model: str,
        role: str,
        version: int,
        values: Mapping[tuple[str, str], float],
    ) -> None:
        """One model slot of a partition: its version and prequential metrics.

        ``values`` maps ``(metric, window)`` to the value, ``window`` being ``running`` or
        ``rolling`` (:meth:`streamer.prequential.Prequential.metric_values`).
        """
        if role not in MODEL_ROLES:
            raise ValueError(f"unknown model role {role!r}; expected one of {MODEL_ROLES}")
        key = (self.model_version, (topic, str(partition), model, role))
        if key not in self._children and role == "champion":
            # A new partition model: its decision series start at 0, so that increase() sees
            # the first decision.
            for decision in LIFECYCLE_DECISIONS:
                self._child(self.lifecycle_decisions, topic, partition, model, decision)
        self._child(self.model_version, topic, partition, model, role).set(version)
        child = self._child
        family = self.model_metric
        for (metric, window), value in values.items():
            child(family, topic, partition, model, role, metric, window).set(value)

    def export_models(
        self,
        topic: str,
        partition: int,
        slots: Iterable[tuple[str, str, int, Mapping[tuple[str, str], float]]],
    ) -> None:
        """Every model slot of a partition, ``(model, role, version, values)`` each (see
        :meth:`export_model`); the series of a slot no longer there (a dropped challenger, a
        retired previous champion) are removed."""
        present = set()
        for model, role, version, values in slots:
            self.export_model(
                topic, partition, model=model, role=role, version=version, values=values
            )
            present.add((model, role))
        owned = self._owned.get((topic, partition), set())
        gone = {
            (key[1][2], key[1][3])
            for key in owned
            if key[0] in (self.model_metric, self.model_version)
            and (key[1][2], key[1][3]) not in present
        }
        for model, role in gone:
            self.forget_model(topic, partition, model=model, role=role)

    def export_drift(
        self,
        topic: str,
        partition: int,
        *,
        statistics: Iterable[tuple[str, _Finding]],
        events: Iterable[_LevelChange],
        concept_states: Sequence[int],
        alarming: Mapping[str, int],
        levels: Mapping[tuple[str, str, str], int],
        exported: Container[str],
    ) -> None:
        """One partition's drift report of a batch.

        Parameters
        ----------
        statistics
            ``(signal, finding)`` for every statistic evaluated in the batch.
        events
            The drift events of the batch (level changes), in order.
        concept_states
            The concept-drift detector's state after each scored labelled event.
        alarming
            Signal -> number of statistics at alarm level now.
        levels
            ``(signal, feature, statistic) -> level`` now (0 ok, 1 warning, 2 alarm), as the
            monitor holds them (:meth:`streamer.drift.monitor.DriftMonitor.levels`): read from
            the monitor, not rebuilt from events, so they survive a revoke and a restore.
        exported
            Feature and field names that get series of their own: the others are left out,
            except new schema fields, which share one series (``feature="(new)"``), so that
            names read from the data cannot grow the label set.
        """
        if (topic, partition) not in self._seen:
            self._seen.add((topic, partition))
            # Every level change series starts at 0, so that increase() sees the first one.
            for signal in SIGNALS:
                for name in LEVELS[1:] if signal == "concept" else LEVELS:
                    self._child(self.drift_events, topic, partition, signal, name)
        for ev in events:
            self._child(self.drift_events, topic, partition, ev.signal, ev.level).inc()
        new_fields: tuple[float, int] | None = None
        child, value_family, level_family = self._child, self.drift_statistic, self.drift_level
        for signal, f in statistics:
            name, statistic = f.feature, f.statistic
            if name not in exported:
                if signal == "schema" and statistic == "new_field_rate":
                    level = levels.get((signal, name, statistic), 0)
                    if new_fields is None:
                        new_fields = (f.value, level)
                    else:
                        new_fields = (max(new_fields[0], f.value), max(new_fields[1], level))
                continue
            child(value_family, topic, partition, signal, name, statistic).set(f.value)
            level = levels.get((signal, name, statistic), 0)
            child(level_family, topic, partition, signal, name, statistic).set(level)
        if new_fields is not None:
            labels = ("schema", "(new)", "new_field_rate")
            child(value_family, topic, partition, *labels).set(new_fields[0])
            child(level_family, topic, partition, *labels).set(new_fields[1])
        for signal, n in alarming.items():
            child(self.drift_alarming, topic, partition, signal).set(n)
        if concept_states:
            self.concept_state.update((topic, str(partition)), concept_states)

    def export_batch(
        self,
        *,
        started: float,
        records: int,
        dead_letters: Mapping[tuple[str, str, str], int] | None = None,
    ) -> None:
        """Close a batch whose outputs are produced: its latencies end here.

        Outputs are delivered in the background and acknowledged by the next commit (see
        :meth:`export_commit`); librdkafka sends them within ``linger.ms``, so the latency to
        the hand-over is the latency to delivery within a few milliseconds.

        Parameters
        ----------
        started
            ``time.perf_counter()`` when the consume call returned the batch.
        records
            Records in the batch (all partitions).
        dead_letters
            ``(topic, stage, reason) -> records`` dead-lettered in the batch.
        """
        now = time.perf_counter()
        wall = time.time()
        elapsed = now - started
        for (topic, partition), (n, times) in self._pending.items():
            labels = (topic, str(partition))
            self.processing_latency.observe_repeated(labels, elapsed, n)
            if len(times):
                self.end_to_end_latency.observe_many(labels, wall - np.asarray(times, np.float64))
        self._pending.clear()
        if dead_letters:
            self.count_dead_letters(dead_letters)
        self.batch_records.observe(records)
        self.batch_seconds.observe(elapsed)

    def export_commit(self, positions: Mapping[TopicPartition, tuple[int, int | None]]) -> None:
        """Offsets committed: ``(topic, partition) -> (next offset, high watermark or None)``."""
        for (topic, partition), (offset, high) in positions.items():
            self._child(self.committed_offset, topic, partition).set(offset)
            if high is not None:
                self._child(self.lag, topic, partition).set(max(high - offset, 0))

    def count_dead_letters(self, dead_letters: Mapping[tuple[str, str, str], int]) -> None:
        """``(topic, stage, reason) -> records`` sent to the dead-letter topic."""
        for (topic, stage, reason), n in dead_letters.items():
            self.dead_letters.labels(topic, stage, reason).inc(n)

    # -- membership and lifecycle ---------------------------------------------------------------

    def set_assigned(self, n: int) -> None:
        """Partitions held by this worker now."""
        self.assigned.set(n)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Remove every series of a revoked or lost partition."""
        for key in self._owned.pop((topic, partition), ()):
            self._remove(key)
        labels = (topic, str(partition))
        self.processing_latency.remove(labels)
        self.end_to_end_latency.remove(labels)
        self.concept_state.remove(labels)
        self._seen.discard((topic, partition))
        self._pending.pop((topic, partition), None)

    def forget_model(self, topic: str, partition: int, *, model: str, role: str) -> None:
        """Remove the series of a model slot that no longer exists (a dropped challenger)."""
        owned = self._owned.get((topic, partition), set())
        prefix = (topic, str(partition), model, role)
        gone = {
            key
            for key in owned
            if key[0] in (self.model_metric, self.model_version) and key[1][:4] == prefix
        }
        for key in gone:
            self._remove(key)
        owned -= gone

    def lifecycle_decision(self, topic: str, partition: int, *, model: str, decision: str) -> None:
        """Count a lifecycle decision (one of :data:`LIFECYCLE_DECISIONS`)."""
        if decision not in LIFECYCLE_DECISIONS:
            raise ValueError(
                f"unknown lifecycle decision {decision!r}; expected one of {LIFECYCLE_DECISIONS}"
            )
        self._child(self.lifecycle_decisions, topic, partition, model, decision).inc()

    def model_update_published(self, *, model: str, reason: str) -> None:
        """Count a model update on the model-update topic (reason: :data:`MODEL_UPDATE_REASONS`)."""
        if reason not in MODEL_UPDATE_REASONS:
            raise ValueError(
                f"unknown model update reason {reason!r}; expected one of {MODEL_UPDATE_REASONS}"
            )
        self.model_updates.labels(model, reason).inc()

    def model_update_failed(self, *, model: str, reason: str) -> None:
        """A model update could not be published (``reason``: a short fixed word)."""
        self.model_update_failures.labels(model, reason).inc()

    def checkpoint_written(
        self, topic: str, partition: int, *, size: int, seconds: float, at: float | None = None
    ) -> None:
        """A checkpoint of ``size`` bytes was acknowledged after ``seconds`` (``at``: epoch s)."""
        self._child(self.checkpoints, topic, partition).inc()
        self._child(self.checkpoint_bytes, topic, partition).set(size)
        self._child(self.checkpoint_time, topic, partition).set(time.time() if at is None else at)
        self.checkpoint_seconds.observe(seconds)

    def checkpoint_restored(self, topic: str, partition: int, *, size: int, at: float) -> None:
        """A partition's state came from a checkpoint of ``size`` bytes written at ``at``."""
        self._child(self.checkpoint_bytes, topic, partition).set(size)
        self._child(self.checkpoint_time, topic, partition).set(at)

    def declare_failures(
        self,
        *,
        checkpoint: Iterable[str] = (),
        model: str | None = None,
        model_update: Iterable[str] = (),
    ) -> None:
        """Start the failure counters at 0 for every reason known in advance: a dashboard
        shows 0 rather than no data, and ``increase()`` sees the first failure."""
        for reason in checkpoint:
            self.checkpoint_failures.labels(reason)
        if model is not None:
            for reason in model_update:
                self.model_update_failures.labels(model, reason)

    def checkpoint_failed(self, reason: str) -> None:
        """A checkpoint could not be written (``reason``: a short fixed word, not a message)."""
        self.checkpoint_failures.labels(reason).inc()

    def restored(self, topic: str, partition: int, *, source: str) -> None:
        """A partition's state was restored on assignment (:data:`CHECKPOINT_RESTORE_SOURCES`)."""
        if source not in CHECKPOINT_RESTORE_SOURCES:
            raise ValueError(
                f"unknown restore source {source!r}; expected one of {CHECKPOINT_RESTORE_SOURCES}"
            )
        self._child(self.restores, topic, partition, source).inc()


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


#: A health check: returns None when healthy, else a short reason (the 503's body).
Check = Callable[[], str | None]


class _Ready(Collector):
    """``streamer_ready``: 1 while the ``ready`` check passes, as ``/readyz`` answers."""

    def __init__(self, ready: Check) -> None:
        self.ready = ready

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("streamer_ready", "1 while /readyz answers 200, else 0.")]

    def collect(self) -> Iterator[Metric]:
        try:
            ok = self.ready() is None
        except Exception:  # a failing check is "not ready", never a failed scrape
            log.exception("readiness check failed")
            ok = False
        yield GaugeMetricFamily(
            "streamer_ready", "1 while /readyz answers 200, else 0.", value=float(ok)
        )


class MetricsServer:
    """Serves ``/metrics`` (Prometheus text format), ``/healthz`` and ``/readyz``.

    Parameters
    ----------
    registry
        The registry to expose.
    host, port
        Where to listen (port 0: any free port, see :attr:`port`).
    live
        Liveness check for ``/healthz``: None while the process can make progress, else why
        not. A failing liveness probe makes Kubernetes restart the pod.
    ready
        Readiness check for ``/readyz``: None while the worker is ready to serve (for
        example: its partitions are assigned and restored), else why not. When given,
        ``streamer_ready`` on ``/metrics`` mirrors it.

    Both answer 200 with ``ok`` or 503 with the reason; a check that raises answers 503.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "0.0.0.0",
        port: int = 8000,
        live: Check | None = None,
        ready: Check | None = None,
    ) -> None:
        self._ready_collector: _Ready | None = None
        if ready is not None:
            self._ready_collector = _Ready(ready)
            registry.register(self._ready_collector)
        self._registry = registry
        metrics_app = make_wsgi_app(registry)
        checks = {"/healthz": live, "/readyz": ready}

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "/")
            if path in checks:
                reason = _run_check(checks[path])
                status = "200 OK" if reason is None else "503 Service Unavailable"
                start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
                return [b"ok\n" if reason is None else f"{reason}\n".encode()]
            if path in ("/", "/metrics"):
                result: Iterable[bytes] = metrics_app(environ, start_response)
                return result
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics, /healthz or /readyz\n"]

        try:
            self._server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        except OSError:
            self._unregister()
            raise
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()

    def _unregister(self) -> None:
        if self._ready_collector is not None:
            self._registry.unregister(self._ready_collector)
            self._ready_collector = None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._unregister()


def _run_check(check: Check | None) -> str | None:
    if check is None:
        return None
    try:
        return check()
    except Exception as exc:
        log.exception("health check failed")
        return f"check failed: {type(exc).__name__}"


class _Served(Protocol):
    """What :func:`serve_worker_metrics` needs of a worker (a :class:`streamer.worker.Worker`)."""

    @property
    def metrics(self) -> Metrics: ...

    @property
    def health(self) -> Any: ...


def serve_worker_metrics(worker: _Served, settings: Settings) -> MetricsServer:
    """Serve a worker's ``/metrics``, ``/healthz``, ``/readyz`` and ``streamer_ready``.

    The one way a worker is served, by ``streamer run`` and ``streamer demo`` alike: liveness
    is the worker loop turning, readiness is the worker's own account (started, broker
    reachable, outputs delivered), and ``streamer_ready`` mirrors ``/readyz``. A port that
    cannot be bound is a configuration error naming ``prometheus.port``.
    """
    health = worker.health

    def live() -> str | None:
        return None if health.live() else "the worker loop has stopped turning"

    def ready() -> str | None:
        ok, why = health.ready()
        return None if ok else str(why)

    try:
        return MetricsServer(
            worker.metrics.registry,
            host=settings.prometheus.host,
            port=settings.prometheus.port,
            live=live,
            ready=ready,
        )
    except OSError as exc:
        raise ConfigError(
            "prometheus.port",
            f"cannot serve metrics on {settings.prometheus.host}:"
            f"{settings.prometheus.port}: {exc.strerror} (set another port, or 0 to disable)",
        ) from exc
