"""Every dashboard and alert query returns data on a real Prometheus fed by a real worker.

A worker consumes the compose demo producer's stream (deploy/compose/producer.py: its concept
and features drift mid-stream, and some records are malformed) from the test broker. A real
Prometheus scrapes it every second (plus a target where nothing listens, as a dead worker
would be) and evaluates the shipped rules (deploy/prometheus/alerts.yml). Once the run went
through a drift, every query of every panel, annotation and variable of the shipped Grafana
dashboards and every alert expression is evaluated through Prometheus's HTTP API over the run,
with Grafana's variables substituted, and must return data; the concept-drift alert must fire.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamer import kafka
from streamer.broker import free_port
from streamer.decode import JsonEncoder
from streamer.metrics import Metrics, serve_worker_metrics
from streamer.produce import produce_rows
from streamer.testing import wait_for
from streamer.worker import Worker

from ..conftest import missing_tool

pytestmark = [pytest.mark.integration, pytest.mark.prometheus]

ROOT = Path(__file__).parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"

#: Alerts the run drives into their condition: their expression must return data as shipped.
#: The others (growing lag and no events take many minutes; no checkpoint fails here) are
#: evaluated with their thresholds relaxed, which still checks every metric, label and join.
CONDITIONS_MET = {
    "StreamerConceptDrift",
    "StreamerFeatureDrift",
    "StreamerAccuracyDrop",
    "StreamerDeadLetters",
    "StreamerWorkerDown",
    "StreamerNotReady",
}

N = 8000  # records
# The stream drifts at record 7200 (3600 per partition), so that the run ends in the drift:
# the gauges hold the drifted state (accuracy down against its running baseline, features
# in alarm) for every scrape after the last batch, however the batches fell between scrapes.
PERIOD = 7200
BAD_EVERY = 40  # 2.5 % dead letters: above the alert's 1 %
RATE = 500.0  # records/s: the run lasts about 16 s, so Prometheus scrapes it as it goes

# Grafana's variables, as Grafana would substitute them for "All" partitions.
RATE_INTERVAL = "10s"
INTERVAL = "5s"

_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)\s*(?:bool\s+)?-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def _producer_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "compose_producer", ROOT / "deploy" / "compose" / "producer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def grafana(expr: str, topic: str) -> str:
    """``expr`` with Grafana's variables substituted (topic: the test's; partition: All)."""
    return (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("$__interval", INTERVAL)
        .replace("$topic", topic)
        .replace("$partition", ".*")
    )


def relaxed(expr: str) -> str:
    """``expr`` with every comparison against a number made vacuous (``!= NaN`` keeps all)."""
    return _COMPARISON.sub("!= NaN", expr)


def test_relaxed_keeps_label_matchers_and_ranges():
    assert (
        relaxed('sum(rate(x{a!="1"}[5m])) / sum(y) > 0.01 and z == 0')
        == 'sum(rate(x{a!="1"}[5m])) / sum(y) != NaN and z != NaN'
    )


def dashboard_queries() -> list[tuple[str, str, bool]]:
    """(where, expr, instant) of every panel target and annotation of the dashboards."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        d = json.loads(path.read_text())
        for panel in d["panels"]:
            for target in panel.get("targets", []):
                where = f"{path.name}: panel {panel['title']!r} ({target['refId']})"
                out.append((where, target["expr"], bool(target.get("instant"))))
        for annotation in d["annotations"]["list"]:
            out.append(
                (
                    f"{path.name}: annotation {annotation['name']!r}",
                    annotation["target"]["expr"],
                    False,
                )
            )
    return out


def variable_queries() -> list[tuple[str, str, str]]:
    """(where, series selector, label) of every label_values() variable of the dashboards."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        d = json.loads(path.read_text())
        for variable in d["templating"]["list"]:
            if variable["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["query"])
            assert m, f"{path.name}: variable {variable['name']}: {variable['query']}"
            out.append((f"{path.name}: variable {variable['name']}", m[1], m[2]))
    return out


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_alerts_named_here_exist():
    assert {rule["alert"] for rule in alert_rules()} >= CONDITIONS_MET


def _has_data(result: list[dict[str, Any]]) -> bool:
    """A vector or matrix with at least one sample that is a number (not NaN)."""
    for series in result:
        values = series.get("values") or [series["value"]]
        if any(not math.isnan(float(v)) for _, v in values):
            return True
    return False


def test_every_dashboard_and_alert_query_returns_data(make_settings, prometheus):
    if shutil.which("promtool") is None:
        missing_tool("promtool is not installed (scripts/test installs prometheus as root)")
    settings = make_settings(
        topics={"partitions": 2},
        fields={"features": ["f0", "f1", "f2", "f3", "f4", "cat"], "categorical": ["cat"]},
        drift={"windows": {"reference_size": 1000, "window_size": 500, "every": 100}},
        evaluation={"window": 300},
        worker={"batch_size": 200},
        prometheus={"host": "127.0.0.1", "port": 0},
        checkpoint={"every_events": 500},  # a few per partition in the run
        # Challengers start on the drift, but cannot be promoted within the run (the drop of
        # the champion's accuracy is what the accuracy alert must see).
        lifecycle={"window": 1000, "min_compared": 1000},
    )
    topic = settings.topics.events
    metrics = Metrics()
    worker = Worker(settings, metrics=metrics)
    worker.provision_topics()
    # Served as `streamer run` serves it: /readyz and streamer_ready follow the worker's health.
    server = serve_worker_metrics(worker, settings)
    dead = f"127.0.0.1:{free_port()}"  # a worker that does not answer
    prom = prometheus([f"127.0.0.1:{server.port}", dead], rule_files=[RULES])
    start = time.time()
    threads: list[threading.Thread] = []
    try:
        # The scrapes see the worker before it is ready, and the dead target down.
        wait_for(lambda: prom.query("streamer_ready == 0"), timeout=30, what="a not-ready scrape")
        wait_for(lambda: prom.query(f'up{{instance="{dead}"}} == 0'), timeout=30, what="up == 0")

        rows = _producer_module().rows(period=PERIOD, seed=3, bad_every=BAD_EVERY)
        sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))

        def produce() -> None:
            produce_rows(rows, sink, topic, JsonEncoder(), rate=RATE, limit=N)
            sink.close()

        threads = [
            threading.Thread(target=worker.run, name="worker", daemon=True),
            threading.Thread(target=produce, name="producer", daemon=True),
        ]
        for t in threads:
            t.start()
        wait_for(lambda: worker.processed >= N, timeout=180, what=f"{N} records processed")
        assert worker.dead_total == N // BAD_EVERY
        assert {p for _, p in worker.states} == {0, 1}

        def concept_alert() -> list[dict[str, Any]]:
            return [
                a
                for a in prom.alerts()
                if a["labels"]["alertname"] == "StreamerConceptDrift"
                and a["labels"]["topic"] == topic
                and a["state"] == "firing"
            ]

        firing = wait_for(concept_alert, timeout=60, what="StreamerConceptDrift firing")
        assert {a["labels"]["partition"] for a in firing} <= {"0", "1"}
        # The final counts are scraped before the queries run over the whole run.
        wait_for(
            lambda: prom.query(f'sum(streamer_events_total{{topic="{topic}"}}) == {N}'),
            timeout=30,
            what="the last batch scraped",
        )
        # The range queries step by a second from `start`: reach past the last scrape, so the
        # final state (the drift the run ends in) is always on the grid.
        end = time.time() + 2.0

        # The exposition passes Prometheus's own linter.
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics") as r:
            exposition = r.read()
        lint = subprocess.run(
            ["promtool", "check", "metrics"], input=exposition, capture_output=True, timeout=60
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr

        missing = []
        for where, expr, instant in dashboard_queries():
            q = grafana(expr, topic)
            result = prom.query(q, time=str(end)) if instant else prom.query_range(q, start, end)
            if not _has_data(result):
                missing.append(f"{where}: {q}")
        for where, selector, label in variable_queries():
            values = prom.get(
                f"/api/v1/label/{label}/values",
                **{"match[]": grafana(selector, topic), "start": str(start), "end": str(end)},
            )["data"]
            want = {topic} if label == "topic" else {"0", "1"}
            if not want <= set(values):
                missing.append(f"{where}: {label} values {values}, want {want}")
        for rule in alert_rules():
            q = grafana(rule["expr"], topic)
            checked = q if rule["alert"] in CONDITIONS_MET else relaxed(q)
            if not _has_data(prom.query_range(checked, start, end)):
                missing.append(f"alert {rule['alert']}: {checked}")
        assert not missing, "queries that returned no data:\n" + "\n".join(missing)
    finally:
        worker.stop()
        for t in threads:
            t.join(30)
        server.close()
