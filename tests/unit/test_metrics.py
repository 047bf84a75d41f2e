from __future__ import annotations

import random
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from streamer.metrics import BatchHistogram, HeldState, Metrics, MetricsServer

T = "events"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _samples(reg: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in reg.collect()
        for s in family.samples
    }


@dataclass(frozen=True)
class _Finding:
    feature: str
    statistic: str
    value: float


@dataclass(frozen=True)
class _Change:
    signal: str
    feature: str
    statistic: str
    level: str


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_names_follow_prometheus_conventions():
    reg = CollectorRegistry()
    Metrics(reg)
    names = set()
    for family in reg.collect():
        names.add(family.name)
        assert family.name.startswith(("streamer_", "process_", "python_")), family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples)
        if "seconds" in family.name and family.type != "counter":
            assert family.name.endswith("_seconds")
    # The standard process and Python collectors are there.
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= names


def test_no_created_series():
    reg = CollectorRegistry()
    m = Metrics(reg, process=False)
    m.export_partition(T, 0, records=1, predictions=1, labelled=0, learned=0, event_times=[1.0])
    m.export_batch(started=0.0, records=1)
    assert not [name for name, _ in _samples(reg) if name.endswith("_created")]


def test_partition_model_and_delivery_export():
    reg = CollectorRegistry()
    m = Metrics(reg, process=False)
    m.export_partition(
        T, 1, records=5, predictions=4, labelled=3, learned=2, event_times=[10.0, 11.0, 12.0, 13.0]
    )
    m.export_model(
        T,
        1,
        model="m",
        role="champion",
        version=3,
        values={("Accuracy", "running"): 0.9, ("Accuracy", "rolling"): 0.8},
    )
    m.export_batch(started=0.0, records=5, dead_letters={(T, "decode", "undecodable"): 1})
    m.export_commit({(T, 1): (105, 130)})
    tp = {"topic": T, "partition": "1"}
    get = reg.get_sample_value
    assert get("streamer_events_total", tp) == 5
    assert get("streamer_predictions_total", tp) == 4
    assert get("streamer_labelled_events_total", tp) == 3
    assert get("streamer_learned_events_total", tp) == 2
    assert get("streamer_last_event_timestamp_seconds", tp) == 13.0
    assert get("streamer_committed_offset", tp) == 105
    assert get("streamer_consumer_lag", tp) == 25
    assert get("streamer_model_version", {**tp, "model": "m", "role": "champion"}) == 3
    rolling = {**tp, "model": "m", "role": "champion", "metric": "Accuracy", "window": "rolling"}
    assert get("streamer_model_metric", rolling) == 0.8
    assert (
        get(
            "streamer_dead_letters_total",
            {"topic": T, "stage": "decode", "reason": "undecodable"},
        )
        == 1
    )
    # Every record of the partition got the batch's processing latency; every prediction an
    # end-to-end latency; the batch histograms one observation each.
    assert get("streamer_processing_latency_seconds_count", tp) == 5
    assert get("streamer_end_to_end_latency_seconds_count", tp) == 4
    assert get("streamer_batch_duration_seconds_count") == 1
    assert get("streamer_batch_records_sum") == 5
    # The next batch has nothing pending from this one.
    m.export_batch(started=0.0, records=0)
    assert get("streamer_processing_latency_seconds_count", tp) == 5


def test_unknown_label_values_are_refused():
    m = Metrics(CollectorRegistry(), process=False)
    with pytest.raises(ValueError, match="role"):
        m.export_model(T, 0, model="m", role="boss", version=1, values={})
    with pytest.raises(ValueError, match="decision"):
        m.lifecycle_decision(T, 0, model="m", decision="fired")
    with pytest.raises(ValueError, match="reason"):
        m.model_update_published(model="m", reason="whim")
    with pytest.raises(ValueError, match="source"):
        m.restored(T, 0, source="tape")


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_batch_histogram_equals_one_observe_per_value(n):
    """Buckets, counts and sums are those of prometheus_client's own Histogram."""
    rng = random.Random(n)
    buckets = (0.01, 0.1, 0.5, 1.0, 5.0)
    values = [rng.choice([0.01, 0.1, 1.0, 5.0, 0.0]) or rng.expovariate(1.0) for _ in range(n)]
    reg = CollectorRegistry()
    ours = BatchHistogram("ours_seconds", "x", ["k"], buckets, reg)
    ref = Histogram("ref_seconds", "x", ["k"], buckets=buckets, registry=reg)
    ours.observe_many(("a",), values[: n // 2])
    ours.observe_many(("a",), values[n // 2 :])
    for v in values:
        ref.labels("a").observe(v)
    if n:
        ours.observe_repeated(("a",), 0.5, 3)
        for _ in range(3):
            ref.labels("a").observe(0.5)
    got = {
        (name.replace("ours", "x"), labels): v
        for (name, labels), v in _samples(reg).items()
        if name.startswith("ours")
    }
    want = {
        (name.replace("ref", "x"), labels): v
        for (name, labels), v in _samples(reg).items()
        if name.startswith("ref") and not name.endswith("_created")
    }
    assert got.keys() == want.keys() or not n
    for key, value in got.items():
        assert value == pytest.approx(want[key]), key


def test_batch_histogram_ignores_non_finite_and_clamps_negative():
    reg = CollectorRegistry()
    h = BatchHistogram("h_seconds", "x", ["k"], (1.0,), reg)
    h.observe_many(("a",), [float("nan"), float("inf"), -3.0, 2.0])
    h.observe_repeated(("a",), float("nan"), 4)
    assert reg.get_sample_value("h_seconds_count", {"k": "a"}) == 2
    assert reg.get_sample_value("h_seconds_bucket", {"k": "a", "le": "1.0"}) == 1
    assert reg.get_sample_value("h_seconds_sum", {"k": "a"}) == 2.0


def test_held_state_holds_a_drift_until_it_clears():
    clock = _Clock()
    reg = CollectorRegistry()
    s = HeldState("state", "x", ["p"], reg, hold=60.0, clock=clock)
    s.update(("0",), [0, 0, 2, 0, 0])  # a drift inside the batch; the detector restarted
    assert reg.get_sample_value("state", {"p": "0"}) == 2
    clock.now += 59
    s.update(("0",), [0, 0])
    assert reg.get_sample_value("state", {"p": "0"}) == 2
    clock.now += 2
    assert reg.get_sample_value("state", {"p": "0"}) == 0  # cleared, even with no new batch
    s.update(("0",), [1, 1])  # a warning lasts as long as the detector stays in it
    clock.now += 600
    assert reg.get_sample_value("state", {"p": "0"}) == 1
    s.update(("0",), [1, 0])
    assert reg.get_sample_value("state", {"p": "0"}) == 1  # held after it ended
    clock.now += 61
    assert s.value(("0",)) == 0
    s.update(("0",), [1, 2, 0])
    clock.now += 61
    assert s.value(("0",)) == 0
    s.remove(("0",))
    assert s.value(("0",)) is None
    assert reg.get_sample_value("state", {"p": "0"}) is None


def test_drift_export_levels_and_bounded_feature_labels():
    reg = CollectorRegistry()
    clock = _Clock()
    m = Metrics(reg, process=False, clock=clock)
    exported = frozenset({"f1", "f2", "prediction"})
    m.export_drift(
        T,
        0,
        statistics=[
            ("feature", _Finding("f1", "psi", 0.4)),
            ("feature", _Finding("f2", "psi", 0.01)),
            ("feature", _Finding("f99", "psi", 3.0)),  # beyond max_exported_features
            ("schema", _Finding("surprise", "new_field_rate", 0.02)),
            ("schema", _Finding("other", "new_field_rate", 0.05)),
            ("prediction", _Finding("prediction", "js", 0.2)),
        ],
        events=[
            _Change("feature", "f1", "psi", "warning"),
            _Change("feature", "f1", "psi", "alarm"),
            _Change("schema", "other", "new_field_rate", "warning"),
            _Change("concept", "", "DualADWIN", "alarm"),
        ],
        concept_states=[0, 1, 2, 0],
        alarming={"feature": 1, "schema": 0},
        levels={
            ("feature", "f1", "psi"): 2,
            ("schema", "other", "new_field_rate"): 1,
            ("feature", "f99", "psi"): 2,
        },
        exported=exported,
    )
    get = reg.get_sample_value
    tp = {"topic": T, "partition": "0"}
    f1 = {**tp, "signal": "feature", "feature": "f1", "statistic": "psi"}
    assert get("streamer_drift_statistic", f1) == 0.4
    assert get("streamer_drift_level", f1) == 2
    f2 = {**f1, "feature": "f2"}
    assert get("streamer_drift_level", f2) == 0
    new = {**tp, "signal": "schema", "feature": "(new)", "statistic": "new_field_rate"}
    assert get("streamer_drift_statistic", new) == 0.05
    assert get("streamer_drift_level", new) == 1
    assert get("streamer_drift_events_total", {**tp, "signal": "feature", "level": "alarm"}) == 1
    assert get("streamer_drift_events_total", {**tp, "signal": "concept", "level": "alarm"}) == 1
    assert get("streamer_drift_alarming", {**tp, "signal": "feature"}) == 1
    assert get("streamer_concept_drift_state", tp) == 2
    features = {
        dict(labels)["feature"]
        for name, labels in _samples(reg)
        if name in ("streamer_drift_statistic", "streamer_drift_level")
    }
    assert features == {"f1", "f2", "(new)", "prediction"}
    # The level goes back down with the monitor's.
    m.export_drift(
        T,
        0,
        statistics=[("feature", _Finding("f1", "psi", 0.05))],
        events=[_Change("feature", "f1", "psi", "ok")],
        concept_states=[],
        alarming={"feature": 0},
        levels={},
        exported=exported,
    )
    assert get("streamer_drift_level", f1) == 0
    clock.now += 61
    assert get("streamer_concept_drift_state", tp) == 0


def _fill(m: Metrics, partition: int) -> None:
    m.export_partition(
        T, partition, records=2, predictions=2, labelled=2, learned=2, event_times=[1.0, 2.0]
    )
    for role in ("champion", "challenger"):
        m.export_model(
            T, partition, model="m", role=role, version=1, values={("Accuracy", "rolling"): 0.5}
        )
    m.export_drift(
        T,
        partition,
        statistics=[("feature", _Finding("f1", "psi", 0.4))],
        events=[_Change("feature", "f1", "psi", "alarm")],
        concept_states=[2],
        alarming={"feature": 1},
        levels={("feature", "f1", "psi"): 2},
        exported={"f1"},
    )
    m.lifecycle_decision(T, partition, model="m", decision="challenger_started")
    m.checkpoint_written(T, partition, size=100, seconds=0.01, at=5.0)
    m.restored(T, partition, source="fresh")
    m.export_batch(started=0.0, records=2)
    m.export_commit({(T, partition): (2, 2)})


def _partitions(reg: CollectorRegistry) -> set[str]:
    return {dict(labels)["partition"] for _, labels in _samples(reg) if "partition" in dict(labels)}


def test_forget_partition_removes_every_series_of_that_partition():
    reg = CollectorRegistry()
    m = Metrics(reg, process=False)
    _fill(m, 0)
    _fill(m, 1)
    before = {k for k in _samples(reg) if dict(k[1]).get("partition") == "1"}
    assert _partitions(reg) == {"0", "1"}
    m.forget_partition(T, 0)
    assert _partitions(reg) == {"1"}
    after = {k for k in _samples(reg) if dict(k[1]).get("partition") == "1"}
    assert after == before
    # Back again: counters start from zero (Prometheus's rate() reads that as a reset).
    m.export_partition(T, 0, records=1, predictions=0, labelled=0, learned=0, event_times=[])
    assert reg.get_sample_value("streamer_events_total", {"topic": T, "partition": "0"}) == 1


def test_forget_model_removes_only_that_slot():
    reg = CollectorRegistry()
    m = Metrics(reg, process=False)
    _fill(m, 0)
    m.forget_model(T, 0, model="m", role="challenger")
    roles = {
        dict(labels)["role"]
        for name, labels in _samples(reg)
        if name in ("streamer_model_metric", "streamer_model_version")
    }
    assert roles == {"champion"}
    m.forget_partition(T, 0)
    assert _partitions(reg) == set()


def test_server_serves_metrics_and_health_checks():
    reg = CollectorRegistry()
    m = Metrics(reg, process=False)
    m.dead_letters.labels("events", "decode", "undecodable").inc(2)
    live: list[str | None] = [None]
    ready: list[str | None] = ["no partitions assigned"]
    server = MetricsServer(
        reg, host="127.0.0.1", port=0, live=lambda: live[0], ready=lambda: ready[0]
    )
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
        assert samples[("streamer_ready", ())] == 0.0
        assert _get(base + "/healthz") == (200, "ok\n")
        assert _get(base + "/readyz") == (503, "no partitions assigned\n")
        ready[0] = None
        assert _get(base + "/readyz") == (200, "ok\n")
        assert reg.get_sample_value("streamer_ready") == 1.0
        live[0] = "consumer loop stalled"
        assert _get(base + "/healthz") == (503, "consumer loop stalled\n")
        assert _get(base + "/nope")[0] == 404
    finally:
        server.close()
    # Closing unregisters streamer_ready: another server can take the same registry.
    assert reg.get_sample_value("streamer_ready") is None
    MetricsServer(reg, host="127.0.0.1", port=0, ready=lambda: None).close()


def test_a_check_that_raises_is_a_503():
    def broken() -> str | None:
        raise RuntimeError("boom")

    reg = CollectorRegistry()
    server = MetricsServer(reg, host="127.0.0.1", port=0, live=broken, ready=broken)
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert _get(base + "/healthz") == (503, "check failed: RuntimeError\n")
        assert _get(base + "/readyz")[0] == 503
        assert reg.get_sample_value("streamer_ready") == 0.0
    finally:
        server.close()


def test_without_checks_both_endpoints_answer_ok():
    server = MetricsServer(CollectorRegistry(), host="127.0.0.1", port=0)
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert _get(base + "/healthz") == (200, "ok\n")
        assert _get(base + "/readyz") == (200, "ok\n")
    finally:
        server.close()


def test_a_busy_port_is_an_os_error():
    reg = CollectorRegistry()
    first = MetricsServer(reg, host="127.0.0.1", port=0)
    try:
        with pytest.raises(OSError):
            MetricsServer(reg, host="127.0.0.1", port=first.port, ready=lambda: None)
        # The failed server left no collector behind.
        assert reg.get_sample_value("streamer_ready") is None
    finally:
        first.close()


def test_worker_removes_the_series_of_revoked_and_lost_partitions():
    from streamer.settings import load_settings
    from streamer.worker import Worker

    reg = CollectorRegistry()
    worker = Worker(
        load_settings(env={}, overrides={"checkpoint": {"enabled": False}}),
        metrics=Metrics(reg, process=False),
    )
    for p in (0, 1, 2):
        _fill(worker.metrics, p)
    worker._on_revoke([(T, 0)])
    worker._on_lost([(T, 1)])
    assert _partitions(reg) == {"2"}


def test_every_metric_is_documented_and_every_query_uses_a_documented_metric():
    import re
    from pathlib import Path

    root = Path(__file__).parents[2]
    doc = (root / "docs" / "metrics.md").read_text()
    reg = CollectorRegistry()
    Metrics(reg)
    exported = set()
    for family in reg.collect():
        name = family.name
        if family.type == "counter":
            name += "_total"
        elif family.type == "info":
            name += "_info"
        exported.add(name)
    exported.add("streamer_ready")  # registered by MetricsServer
    for name in exported:
        assert f"`{name}`" in doc or name in doc, f"docs/metrics.md lacks {name}"
    queries = (root / "deploy" / "prometheus" / "alerts.yml").read_text() + "".join(
        p.read_text() for p in (root / "deploy" / "grafana" / "dashboards").glob("*.json")
    )
    used = {
        re.sub(r"_(bucket|count|sum)$", "", m)
        for m in re.findall(r"\b(?:streamer|process|python)_[a-z_]+", queries)
    }
    assert used <= exported, f"queries use metrics no worker exports: {used - exported}"
    # And the documented streamer_* metrics all exist.
    documented = {m for m in re.findall(r"`(streamer_[a-z_]+)`", doc)}
    assert documented <= exported, documented - exported


def test_export_models_removes_the_series_of_slots_gone():
    reg = CollectorRegistry()
    m = Metrics(reg, process=False)
    values = {("Accuracy", "rolling"): 0.5}
    m.export_models(T, 0, [("m", "champion", 1, values), ("m2", "challenger", 1, values)])
    m.export_models(T, 0, [("m2", "champion", 2, values), ("m", "previous", 1, values)])

    def slots() -> set[tuple[str, str, float]]:
        return {
            (dict(labels)["model"], dict(labels)["role"], v)
            for (name, labels), v in _samples(reg).items()
            if name == "streamer_model_version"
        }

    assert slots() == {("m2", "champion", 2.0), ("m", "previous", 1.0)}
    m.export_models(T, 0, [("m2", "champion", 2, values)])
    assert slots() == {("m2", "champion", 2.0)}
    m.model_update_failed(model="m2", reason="too_large")
    assert (
        reg.get_sample_value(
            "streamer_model_update_failures_total", {"model": "m2", "reason": "too_large"}
        )
        == 1
    )


def test_drift_levels_come_back_with_a_partition_that_comes_back():
    """A revoked partition's series go; taken on again (its monitor restored), its levels are
    the monitor's, although no level changes then."""
    reg = CollectorRegistry()
    m = Metrics(reg, process=False)
    _fill(m, 0)
    m.forget_partition(T, 0)
    m.export_drift(
        T,
        0,
        statistics=[("feature", _Finding("f1", "psi", 0.4))],
        events=[],
        concept_states=[],
        alarming={"feature": 1},
        levels={("feature", "f1", "psi"): 2},
        exported={"f1"},
    )
    labels = {
        "topic": T,
        "partition": "0",
        "signal": "feature",
        "feature": "f1",
        "statistic": "psi",
    }
    assert reg.get_sample_value("streamer_drift_level", labels) == 2


@pytest.mark.parametrize("checkpoints", [True, False])
def test_failure_counters_start_at_zero_for_every_known_reason(checkpoints):
    from streamer.settings import load_settings
    from streamer.state import REFUSAL_REASONS
    from streamer.worker import Worker

    reg = CollectorRegistry()
    settings = load_settings(
        env={},
        overrides={
            "checkpoint": {"enabled": checkpoints},
            "models": {"publish": checkpoints},
            "security": {"signing_key": "k" * 32},
        },
    )
    Worker(settings, metrics=Metrics(reg, process=False))
    samples = _samples(reg)
    checkpoint = {
        dict(labels)["reason"]: v
        for (name, labels), v in samples.items()
        if name == "streamer_checkpoint_failures_total"
    }
    updates = {
        (dict(labels)["model"], dict(labels)["reason"]): v
        for (name, labels), v in samples.items()
        if name == "streamer_model_update_failures_total"
    }
    if checkpoints:
        assert checkpoint == dict.fromkeys(["write", *REFUSAL_REASONS], 0.0)
        assert updates == {
            (settings.model.name, "too_large"): 0.0,
            (settings.model.name, "pickle"): 0.0,
        }
    else:
        assert checkpoint == {} and updates == {}


def test_every_refusal_reason_of_a_restore_is_declared():
    """Restorer's reasons are the ones the failure counter starts at 0 (read from its code:
    a new reason added there must be added to REFUSAL_REASONS)."""
    import inspect
    import re

    from streamer import state

    used = set(re.findall(r'_refuse\(\s*"([a-z_]+)"', inspect.getsource(state)))
    assert used == set(state.REFUSAL_REASONS)
