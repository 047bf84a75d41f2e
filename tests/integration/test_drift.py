"""Drift monitoring end to end: events in, drift events on the topic, metrics in Prometheus."""

from __future__ import annotations

import itertools
import math
import shutil
import subprocess
import threading
import urllib.request

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamer import kafka
from streamer.decode import AvroDecoder, JsonEncoder
from streamer.metrics import Metrics, MetricsServer
from streamer.outputs import DRIFT_EVENT_SCHEMA
from streamer.produce import produce_rows
from streamer.synth import CovariateShift
from streamer.testing import read_until, wait_for
from streamer.worker import Worker

pytestmark = pytest.mark.integration

N = 9000
SHIFT_AT = 5001  # 1-based: offsets from 5000 on are shifted


def _rows():
    stream = CovariateShift(
        n_features=5, shifted=["f2"], position=SHIFT_AT, magnitude=1.5, new_category=True, seed=11
    )
    rows = [
        {"id": f"e{i}", **x, "label": y} for i, (x, y) in enumerate(itertools.islice(stream, N))
    ]
    rows[7000]["surprise"] = 1  # one record with a field nobody configured
    return rows


def _settings(make_settings, **extra):
    return make_settings(
        fields={"features": ["f0", "f1", "f2", "f3", "f4", "cat"], "categorical": ["cat"]},
        drift={"windows": {"reference_size": 2000, "window_size": 1000, "every": 250}},
        **extra,
    )


def _start(settings, metrics=None):
    worker = Worker(settings, metrics=metrics)
    worker.provision_topics()
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    produce_rows(_rows(), sink, settings.topics.events, JsonEncoder())
    sink.close()
    return worker


def _run_and_read(settings):
    """Run a worker over the stream; return it and the drift-event records it published."""
    worker = _start(settings)
    worker.run(max_events=N)
    events = read_until(
        settings.kafka,
        settings.topics.drift_events,
        lambda out: len(out) >= worker.drift_total,
        what="all drift events",
    )
    return worker, events


def test_feature_drift_events_name_the_shifted_feature_and_when(make_settings):
    settings = _settings(make_settings)
    worker, events = _run_and_read(settings)
    docs = [orjson.loads(m.value()) for m in events]
    assert len(docs) == worker.drift_total > 0
    assert {m.key() for m in events} == {f"{settings.topics.events}/0".encode()}
    alarms = [d for d in docs if d["level"] == "alarm"]
    features = {d["feature"] for d in alarms if d["signal"] == "feature"}
    assert features == {"f2", "cat"}
    for d in alarms:
        if d["signal"] == "feature":
            assert d["current_last_offset"] >= SHIFT_AT - 1
            assert d["reference_first_offset"] == 0 and d["reference_last_offset"] == 1999
            assert d["value"] >= d["threshold"]
            assert (d["model"], d["version"], d["partition"]) == ("champion", 1, 0)
    first = min((d for d in alarms if d["feature"] == "f2"), key=lambda d: d["current_last_offset"])
    assert first["current_last_offset"] - (SHIFT_AT - 1) <= 1000
    schema = [d for d in docs if d["signal"] == "schema"]
    assert [(d["feature"], d["statistic"], d["level"]) for d in schema][:1] == [
        ("surprise", "new_field_rate", "warning")
    ]
    assert math.isfinite(first["time"])


def test_drift_events_in_avro(make_settings):
    settings = _settings(make_settings, output={"format": "avro"})
    _, events = _run_and_read(settings)
    dec = AvroDecoder(DRIFT_EVENT_SCHEMA, framing="plain")
    docs = [dec.decode(m.value()) for m in events]
    assert any(
        d["signal"] == "feature" and d["feature"] == "f2" and d["level"] == "alarm" for d in docs
    )


def test_prometheus_scrapes_the_drift_and_pipeline_metrics(make_settings, prometheus):
    settings = _settings(make_settings)
    metrics = Metrics()
    worker = _start(settings, metrics)
    server = MetricsServer(metrics.registry, host="127.0.0.1", port=0)
    prom = prometheus([f"127.0.0.1:{server.port}"])
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.processed >= N, timeout=120, what="all events processed")
        reg = metrics.registry
        events_topic = settings.topics.events
        psi = reg.get_sample_value(
            "streamer_drift_statistic",
            {
                "topic": events_topic,
                "partition": "0",
                "signal": "feature",
                "feature": "f2",
                "statistic": "psi",
            },
        )
        assert psi is not None and psi > 0.25

        def scraped(promql, want):
            result = prom.query(promql)
            return result and math.isclose(float(result[0]["value"][1]), want, rel_tol=1e-9)

        wait_for(
            lambda: scraped(
                'streamer_drift_statistic{signal="feature",feature="f2",statistic="psi"}', psi
            ),
            timeout=30,
            what="Prometheus to scrape the latest PSI",
        )
        wait_for(
            lambda: scraped(f'sum(streamer_events_total{{topic="{events_topic}"}})', N),
            timeout=30,
            what="the events counter",
        )
        alarms = reg.get_sample_value(
            "streamer_drift_events_total",
            {"topic": events_topic, "partition": "0", "signal": "feature", "level": "alarm"},
        )
        assert alarms >= 2
        assert scraped('streamer_drift_events_total{signal="feature",level="alarm"}', alarms)
        alarming = prom.query('streamer_drift_alarming{signal="feature"}')
        assert float(alarming[0]["value"][1]) >= 2
        accuracy = prom.query('streamer_model_metric{metric="Accuracy",window="rolling"}')
        assert 0.5 < float(accuracy[0]["value"][1]) <= 1.0
        # The exposition passes Prometheus's own linter.
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as r:
            text = r.read()
        if shutil.which("promtool"):
            lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True)
            assert lint.returncode == 0, lint.stdout + lint.stderr
        names = {f.name for f in text_string_to_metric_families(text.decode())}
        assert {
            "streamer_drift_statistic",
            "streamer_drift_events",
            "streamer_concept_drift_state",
        } <= names
        # No unbounded label values: feature labels are only configured names.
        features = {r["metric"]["feature"] for r in prom.query("streamer_drift_statistic")}
        assert features <= {
            "f0",
            "f1",
            "f2",
            "f3",
            "f4",
            "cat",
            "prediction",
            "label",
            "id",
            "(new)",
        }
    finally:
        worker.stop()
        thread.join(30)
        server.close()
