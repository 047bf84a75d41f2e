from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamer.drift.monitor import CLEAR_AFTER, DriftMonitor
from streamer.drift.window import Finding, WindowMonitor
from streamer.errors import ConfigError
from streamer.models import build_model
from streamer.prequential import ModelSlot, prequential
from streamer.settings import DriftSettings, FieldSettings, load_settings
from streamer.synth import CovariateShift, concept_drift
from streamer.testing import events_from, parsed


def _run(events, fields, drift=None, batch=250, preset="logistic_regression"):
    drift = drift or DriftSettings()
    slot = ModelSlot(build_model(preset, categorical=bool(fields.categorical)))
    mon = DriftMonitor(drift, fields=fields, task=slot.task, topic="t", partition=0)
    slot.drift = mon.model_drift()
    out = []
    for lo in range(0, len(events), batch):
        chunk = events[lo : lo + batch]
        outcome = prequential([slot], chunk)
        out.append(mon.observe(parsed(chunk), outcome, slot.drift, version=1))
    return mon, out


def _events(reports):
    return [e for r in reports for e in r.events]


def test_concept_drift_is_raised_after_the_change_and_not_before():
    events = list(events_from(concept_drift("agrawal", seed=2, position=5001, n=10_000)))
    _, reports = _run(events, FieldSettings(), preset="hoeffding_tree")
    concept = [e for e in _events(reports) if e.signal == "concept" and e.level == "alarm"]
    assert concept, "no concept drift raised"
    assert all(e.current_offsets[1] >= 5000 for e in concept)
    first = concept[0]
    assert first.current_offsets[1] - 5000 < 500
    assert first.value > first.threshold  # recent error above the error before it
    assert (first.statistic, first.model, first.version, first.topic) == (
        "DualADWIN",
        "champion",
        1,
        "t",
    )


def test_feature_drift_names_the_shifted_features_only():
    stream = CovariateShift(
        n_features=6, shifted=["f1", "f4"], position=4001, magnitude=1.0, new_category=True, seed=3
    )
    events = list(events_from(itertools.islice(stream, 8000)))
    fields = FieldSettings(features=[*stream.features, "cat"], categorical=["cat"], label="")
    mon, reports = _run(events, fields)
    alarms = [e for e in _events(reports) if e.signal == "feature" and e.level == "alarm"]
    assert {e.feature for e in alarms} == {"f1", "f4", "cat"}
    assert all(e.current_offsets[1] >= 4000 for e in alarms)
    assert {e.statistic for e in alarms if e.feature == "cat"} >= {"new_category_rate"}
    # Each statistic alarms once while it stays in alarm.
    keys = [(e.feature, e.statistic) for e in alarms]
    assert len(keys) == len(set(keys))
    assert mon.alarming()["feature"] == len(keys)
    first = alarms[0]
    assert first.reference_offsets == (0, 1999) and first.threshold > 0


def test_levels_go_down_only_after_clear_after_evaluations():
    mon = DriftMonitor(
        DriftSettings(),
        fields=FieldSettings(features=["a"]),
        task="classification",
        topic="t",
        partition=0,
    )
    from streamer.drift.monitor import DriftReport

    def at(level, n):
        report = DriftReport()
        mon._findings(
            report,
            "feature",
            [Finding("a", "psi", float(level), 0.25, level, (0, 1), (2, 3), n)],
            1,
        )
        return [e.level for e in report.events]

    assert at(2, 1) == ["alarm"]
    assert at(2, 2) == []
    assert [at(0, 3 + i) for i in range(CLEAR_AFTER)] == [[]] * (CLEAR_AFTER - 1) + [["ok"]]
    assert at(1, 10) == ["warning"]
    assert at(0, 11) == [] and at(1, 12) == [] and at(0, 13) == []


@given(st.lists(st.integers(min_value=1, max_value=700), min_size=1, max_size=12))
@settings(max_examples=8, deadline=None)
def test_batch_boundaries_do_not_change_the_drift_events(sizes):
    events = list(events_from(concept_drift("sea", seed=5, position=3001, n=6000)))
    _, whole = _run(events, FieldSettings(), batch=500)
    slot = ModelSlot(build_model("logistic_regression"))
    mon = DriftMonitor(
        DriftSettings(), fields=FieldSettings(), task="classification", topic="t", partition=0
    )
    slot.drift = mon.model_drift()
    split, lo = [], 0
    for size in itertools.cycle(sizes):
        if lo >= len(events):
            break
        chunk = events[lo : lo + size]
        lo += size
        outcome = prequential([slot], chunk)
        split += mon.observe(parsed(chunk), outcome, slot.drift, version=1).events
    assert split == _events(whole)


def test_inferred_features_are_capped_and_exported_features_bounded():
    stream = CovariateShift(n_features=30, position=10**9, seed=1)
    events = list(events_from(itertools.islice(stream, 300)))
    drift = DriftSettings(max_features=12, max_exported_features=5)
    mon, _ = _run(events, FieldSettings(categorical=["cat"]), drift=drift)
    assert mon.features is not None
    assert list(mon.features.numeric) == [f"f{i}" for i in range(12)]
    assert mon.exported_features() == {"f0", "f1", "f2", "f3", "f4", "prediction", "label"}


def test_disabled_signals_are_not_built():
    s = load_settings(
        env={
            "STREAMER_DRIFT__LABELS": "false",
            "STREAMER_DRIFT__SCHEMA": "false",
            "STREAMER_DRIFT__CONCEPT__ENABLED": "false",
        }
    )
    mon = DriftMonitor(
        s.drift, fields=FieldSettings(features=["a"]), task="classification", topic="t", partition=0
    )
    model = mon.model_drift()
    assert (model.concept, mon.labels, mon.schema) == (None, None, None)
    assert mon.features is not None and model.predictions is not None


def test_pinned_reference_is_used_and_required():
    ref = WindowMonitor(["a"], reference_size=100)
    ref.observe([{"a": float(i % 10)} for i in range(100)], range(100))
    pinned = {"features": ref.reference_snapshot()}
    s = load_settings(
        env={
            "STREAMER_DRIFT__WINDOWS__REFERENCE": "pinned",
            "STREAMER_DRIFT__WINDOWS__REFERENCE_FILE": "ref.json",
            "STREAMER_DRIFT__PREDICTIONS": "false",
            "STREAMER_DRIFT__LABELS": "false",
        }
    )
    mon = DriftMonitor(
        s.drift,
        fields=FieldSettings(features=["a"]),
        task="classification",
        topic="t",
        partition=0,
        pinned=pinned,
    )
    assert mon.features is not None and mon.features.ready
    with pytest.raises(ConfigError, match="no 'features' snapshot"):
        DriftMonitor(
            s.drift,
            fields=FieldSettings(features=["a"]),
            task="classification",
            topic="t",
            partition=0,
            pinned={},
        )


def test_reset_reference_collects_a_new_reference_from_the_next_events():
    """A model (re)start: with reference="first", drift is judged against what comes next."""
    stream = CovariateShift(n_features=3, shifted=["f1"], position=4001, magnitude=2.0, seed=4)
    events = list(events_from(itertools.islice(stream, 12_000)))
    fields = FieldSettings(features=stream.features, label="")
    slot = ModelSlot(build_model("logistic_regression"))
    mon = DriftMonitor(
        DriftSettings(), fields=fields, task="classification", topic="t", partition=0
    )
    slot.drift = mon.model_drift()

    def feed(chunk):
        rep = mon.observe(parsed(chunk), prequential([slot], chunk), slot.drift, version=1)
        return [e for e in rep.events if e.signal == "feature" and e.level == "alarm"]

    before = [a for lo in range(0, 6000, 500) for a in feed(events[lo : lo + 500])]
    assert {a.feature for a in before} == {"f1"} and mon.alarming()["feature"] > 0
    mon.reset_reference()
    assert mon.alarming()["feature"] == 0 and mon.features is not None and not mon.features.ready
    after = [a for lo in range(6000, 12_000, 500) for a in feed(events[lo : lo + 500])]
    assert mon.features.ready
    assert after == []  # the shifted stream is the new normal
    assert mon.features.reference_snapshot()["offsets"] == [6000, 7999]
