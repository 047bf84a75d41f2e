from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from streamer.metrics import Metrics, MetricsServer


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_names_follow_prometheus_conventions():
    reg = CollectorRegistry()
    Metrics(reg)
    for family in reg.collect():
        assert family.name.startswith("streamer_")
        if family.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in family.samples)
        if "seconds" in family.name:
            assert family.name.endswith("_seconds")


def test_server_serves_metrics_and_health():
    reg = CollectorRegistry()
    m = Metrics(reg)
    m.dead_letters.labels("events", "decode", "undecodable").inc(2)
    healthy = [True]
    server = MetricsServer(reg, host="127.0.0.1", port=0, healthy=lambda: healthy[0])
    try:
        base = f"http://127.0.0.1:{server.port}"
        status, body = _get(base + "/metrics")
        assert status == 200
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body)
            for s in f.samples
        }
        key = (
            "streamer_dead_letters_total",
            (("reason", "undecodable"), ("stage", "decode"), ("topic", "events")),
        )
        assert samples[key] == 2.0
        assert _get(base + "/healthz") == (200, "ok\n")
        healthy[0] = False
        assert _get(base + "/healthz")[0] == 503
        assert _get(base + "/nope")[0] == 404
    finally:
        server.close()


def test_a_busy_port_is_an_os_error():
    reg = CollectorRegistry()
    first = MetricsServer(reg, host="127.0.0.1", port=0)
    try:
        with pytest.raises(OSError):
            MetricsServer(reg, host="127.0.0.1", port=first.port)
    finally:
        first.close()
