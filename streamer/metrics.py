"""Prometheus metrics, and the HTTP endpoint that serves them.

Conventions: prefix ``streamer_``; counters end in ``_total``, durations in ``_seconds``; labels
come only from bounded sets (topic, partition, stage, reason, metric name, model role), never
from event keys or ids. The worker updates them once per batch, not per event.

Every metric is registered on the registry given to :class:`Metrics`, so a test builds its own
``CollectorRegistry()`` and reads values with ``registry.get_sample_value``.

Examples
--------
>>> from prometheus_client import CollectorRegistry
>>> reg = CollectorRegistry()
>>> m = Metrics(reg)
>>> m.events.labels("events", "0").inc(3)
>>> reg.get_sample_value("streamer_events_total", {"topic": "events", "partition": "0"})
3.0
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

__all__ = ["Metrics", "MetricsServer"]

log = logging.getLogger(__name__)

_BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric a worker exports, on one registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        tp = ["topic", "partition"]
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
        self.model_metric = Gauge(
            "streamer_model_metric",
            "Prequential (test-then-train) metric of a partition's model; window is running "
            "(since start) or rolling (last evaluation.window labelled events).",
            ["topic", "partition", "model", "role", "metric", "window"],
            registry=r,
        )
        self.model_version = Gauge(
            "streamer_model_version",
            "Version of each model of a partition (role: champion, challenger, previous).",
            ["topic", "partition", "model", "role"],
            registry=r,
        )
        self.checkpoints = Counter(
            "streamer_checkpoints",
            "Checkpoints of a partition's state written to the changelog topic.",
            tp,
            registry=r,
        )
        self.checkpoint_bytes = Gauge(
            "streamer_checkpoint_bytes",
            "Size of the last checkpoint of a partition (compressed payload).",
            tp,
            registry=r,
        )
        self.checkpoint_time = Gauge(
            "streamer_last_checkpoint_timestamp_seconds",
            "When the last checkpoint of a partition was written (its age: time() - this).",
            tp,
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "streamer_checkpoint_duration_seconds",
            "Time to pickle, sign and write one partition's checkpoint.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.checkpoint_failures = Counter(
            "streamer_checkpoint_failures",
            "Checkpoints that could not be written, or were refused on restore, by reason.",
            ["reason"],
            registry=r,
        )
        self.lifecycle = Counter(
            "streamer_lifecycle_decisions",
            "Model lifecycle decisions (challenger_started, promoted, rolled_back, "
            "challenger_dropped, retired).",
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
            "Model updates that could not be published (too_large, pickle).",
            ["model", "reason"],
            registry=r,
        )
        self.restores = Counter(
            "streamer_restores",
            "Partition states taken on at assignment, by where they came from (changelog: a "
            "checkpoint; memory: kept by this worker; fresh: a new model).",
            ["topic", "partition", "source"],
            registry=r,
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
        self.drift_statistic = Gauge(
            "streamer_drift_statistic",
            "Latest value of a drift statistic (signal: feature, prediction, label, schema). "
            "Features beyond drift.max_exported_features are not exported here.",
            ["partition", "signal", "feature", "statistic"],
            registry=r,
        )
        self.drift_events = Counter(
            "streamer_drift_events",
            "Drift level changes published (level: warning, alarm, or ok when one clears).",
            ["partition", "signal", "level"],
            registry=r,
        )
        self.drift_alarming = Gauge(
            "streamer_drift_alarming",
            "Statistics currently at alarm level, per signal.",
            ["partition", "signal"],
            registry=r,
        )
        self.concept_state = Gauge(
            "streamer_concept_drift_state",
            "Concept-drift detector state after the last batch: 0 stable, 1 warning, 2 drift.",
            ["partition"],
            registry=r,
        )


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class MetricsServer:
    """Serves ``/metrics`` (Prometheus text format) and ``/healthz`` on a background thread.

    ``/healthz`` answers 200 while ``healthy()`` returns true, 503 otherwise.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        host: str = "0.0.0.0",
        port: int = 8000,
        healthy: Callable[[], bool] = lambda: True,
    ) -> None:
        metrics_app = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "/")
            if path == "/healthz":
                ok = healthy()
                start_response(
                    "200 OK" if ok else "503 Service Unavailable",
                    [("Content-Type", "text/plain")],
                )
                return [b"ok\n" if ok else b"unhealthy\n"]
            if path in ("/", "/metrics"):
                result: Iterable[bytes] = metrics_app(environ, start_response)
                return result
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics or /healthz\n"]

        self._server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
