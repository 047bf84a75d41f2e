"""The model lifecycle: promotion and rollback where they must happen, and nowhere else."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from streamer.lifecycle import Pairing, mcnemar, paired_t
from streamer.pipeline import Pipeline
from streamer.settings import load_settings
from streamer.signing import dumps, loads
from streamer.synth import concept_drift
from streamer.testing import hinted_rows, json_records


def _settings(**sections):
    return load_settings(env={}, overrides=sections or None)


def _run(settings, rows, *, batch=500, state=None, pipeline=None, start=0):
    pipeline = pipeline or Pipeline(settings)
    state = state or pipeline.new_state("events", 0)
    records = list(json_records(rows, start=start))
    decisions, predictions = [], []
    for lo in range(0, len(records), batch):
        out = pipeline.process(state, records[lo : lo + batch])
        decisions += out.decisions
        for seg in out.predictions:
            predictions += [(ev.offset, y, seg.version) for ev, y, _ in seg.scored]
    return state, decisions, predictions


@pytest.mark.parametrize(("won", "lost"), [(0, 0), (5, 5), (12, 10), (30, 10), (80, 20), (3, 40)])
def test_mcnemar_is_the_exact_one_sided_binomial_tail(won, lost):
    expected = (
        stats.binomtest(won, won + lost, 0.5, alternative="greater").pvalue if won + lost else 1.0
    )
    assert mcnemar(won, lost) == pytest.approx(expected, rel=1e-9)


def test_paired_t_agrees_with_the_normal_tail_of_the_t_statistic():
    diffs = [0.3, -0.1, 0.5, 0.2, 0.0, 0.4, 0.1, -0.2, 0.3, 0.25] * 10
    n = len(diffs)
    got = paired_t(n, sum(diffs), sum(d * d for d in diffs))
    t = stats.ttest_1samp(diffs, 0.0, alternative="greater")
    assert got == pytest.approx(0.5 * math.erfc(t.statistic / math.sqrt(2)), rel=1e-9)
    assert got < 1e-6 and paired_t(1, 1.0, 1.0) == 1.0


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), max_size=300), st.integers(1, 50))
@settings(max_examples=50, deadline=None)
def test_a_pairing_counts_the_last_window_only(pairs, window):
    p = Pairing(window)
    for i, (c, m) in enumerate(pairs):
        p.add(i, float(c), float(m))
    last = pairs[-window:]
    assert len(p) == len(last)
    assert p.won == sum(c > m for c, m in last) and p.lost == sum(m > c for c, m in last)
    assert p.champion_error == sum(c for c, _ in last)
    if last:
        assert p.offsets() == (len(pairs) - len(last), len(pairs) - 1)


def _hints(**lifecycle):
    return _settings(
        model={"preset": "streamer.testing:hint_classifier", "params": {"hint": "a"}},
        fields={"features": ["a", "b", "noise"]},
        evaluation={"metrics": ["Accuracy"]},
        lifecycle={
            "retrain_on": [],
            "challengers": [
                {"name": "b", "preset": "streamer.testing:hint_classifier", "params": {"hint": "b"}}
            ],
            **lifecycle,
        },
    )


def test_a_better_challenger_is_promoted_and_a_rollback_follows_when_it_falls_behind():
    """``a`` is right 90 % of the time, except from 4,000 to 8,000 where ``b`` is (95 %) and
    ``a`` is a coin: ``b`` is promoted soon after 4,000, ``a`` comes back soon after 8,000."""
    rows = hinted_rows(12_000, [(0, 0.9, 0.5), (4000, 0.5, 0.95), (8000, 0.9, 0.5)], seed=1)
    state, decisions, predictions = _run(_hints(), rows)
    changes = [
        (d.decision, d.offset, d.version, d.parent)
        for d in decisions
        if d.decision in ("promoted", "rolled_back")
    ]
    assert [c[0] for c in changes] == ["promoted", "rolled_back"]
    (_, promoted_at, v_b, parent_b), (_, rolled_at, v_a, parent_a) = changes
    assert 4000 < promoted_at <= 4400 and 8000 < rolled_at <= 8400
    assert (v_b, parent_b) == (2, 1) and (v_a, parent_a) == (3, 2)  # versions only go up
    promotion = next(d for d in decisions if d.decision == "promoted")
    assert promotion.test == "mcnemar" and promotion.statistic <= 0.01 and promotion.gain >= 0.03
    # The predictions carry the version of the champion that made them.
    versions = {o: v for o, _, v in predictions}
    assert versions[promoted_at - 1] == 1 and versions[promoted_at] == 2
    assert versions[rolled_at] == 3 and versions[11_999] == 3
    # The configured alternative is back in shadow as a challenger after the rollback.
    assert [(s.role, s.name) for s in state.slots] == [
        ("champion", "champion"),
        ("challenger", "b"),
    ]


def test_nothing_is_promoted_while_the_champion_is_better():
    rows = hinted_rows(20_000, [(0, 0.9, 0.85)], seed=2)
    _, decisions, _ = _run(_hints(), rows)
    assert decisions == []


def test_a_challenger_that_fails_is_dropped_and_says_why():
    settings = _hints(
        challengers=[{"name": "fragile", "preset": "streamer.testing:fragile_classifier"}]
    )
    rows = hinted_rows(600, [(0, 0.9, 0.5)], seed=3)
    rows[200]["boom"] = 1  # the fragile model raises on it; the champion ignores the field
    settings = settings.model_copy(
        update={
            "fields": settings.fields.model_copy(
                update={"features": ["a", "b", "noise", "boom"], "optional": ["boom"]}
            )
        }
    )
    state, decisions, _ = _run(settings, rows)
    (dropped,) = decisions
    assert dropped.decision == "challenger_dropped" and dropped.model == "fragile"
    step = settings.lifecycle.step
    assert "ZeroDivisionError" in dropped.reason and dropped.offset == (200 // step + 1) * step
    assert len(state.slots) == 1


def test_a_drift_warning_starts_a_challenger_that_wins_after_an_abrupt_drift():
    rows = [
        {"id": i, **x, "label": y}
        for i, (x, y) in enumerate(concept_drift("sea", seed=1, position=5001, n=9000))
    ]
    _, decisions, _ = _run(_settings(), rows)
    kinds = [(d.decision, d.offset) for d in decisions]
    started = [o for k, o in kinds if k == "challenger_started"]
    promoted = [o for k, o in kinds if k == "promoted"]
    assert started and all(o > 5000 for o in started), kinds
    assert len(promoted) == 1 and 5000 < promoted[0] < 6000, kinds
    trigger = next(d for d in decisions if d.decision == "challenger_started").trigger
    assert trigger is not None and trigger.signal == "concept"


def test_a_stationary_stream_of_50k_events_promotes_nothing():
    rows = [
        {"id": i, **x, "label": y}
        for i, (x, y) in enumerate(concept_drift("sea", seed=4, position=10**9, n=50_000))
    ]
    _, decisions, _ = _run(_settings(), rows, batch=2000)
    assert not [d for d in decisions if d.decision in ("promoted", "rolled_back")], decisions


@given(st.lists(st.integers(min_value=1, max_value=900), min_size=1, max_size=10))
@settings(max_examples=6, deadline=None)
def test_batch_boundaries_do_not_change_any_decision(sizes):
    rows = hinted_rows(9000, [(0, 0.9, 0.5), (3000, 0.5, 0.95), (6000, 0.9, 0.5)], seed=5)
    settings_ = _hints()
    _, whole, whole_preds = _run(settings_, rows, batch=9000)
    pipeline = Pipeline(settings_)
    state = pipeline.new_state("events", 0)
    records = list(json_records(rows))
    split, preds, lo = [], [], 0
    for size in itertools.cycle(sizes):
        if lo >= len(records):
            break
        out = pipeline.process(state, records[lo : lo + size])
        lo += size
        split += out.decisions
        for seg in out.predictions:
            preds += [(ev.offset, y, seg.version) for ev, y, _ in seg.scored]
    assert [d.as_dict() for d in split] == [d.as_dict() for d in whole]
    assert preds == whole_preds


def test_the_lifecycle_survives_a_checkpoint_mid_promotion():
    """Restore while a challenger is in shadow: the same decisions follow."""
    rows = hinted_rows(9000, [(0, 0.9, 0.5), (3000, 0.5, 0.95)], seed=6)
    settings_ = _hints()
    _, whole, _ = _run(settings_, rows)
    pipeline = Pipeline(settings_)
    state, first, _ = _run(settings_, rows[:3100], pipeline=pipeline)
    copy = loads(dumps(state))
    _, rest, _ = _run(settings_, rows[3100:], pipeline=pipeline, state=copy, start=3100)
    assert [d.as_dict() for d in first + rest] == [d.as_dict() for d in whole]


def test_a_poisoned_champion_is_replaced_at_the_next_decision_point():
    """One absurd value makes the logistic regression output NaN for good: its events are
    dead-lettered, and at the next decision point the previous champion (or a fresh model)
    takes over under a new version."""
    settings = _settings(
        input={"max_abs_value": 1e308},
        lifecycle={"retrain_on": []},
    )
    rows = [
        {"id": i, **x, "label": y}
        for i, (x, y) in enumerate(concept_drift("sea", seed=2, position=10**9, n=3000))
    ]
    rows[1010]["0"] = 1e300  # finite, absurd: StandardScaler and the weights go to NaN/inf
    _, decisions, predictions = _run(settings, rows)
    (reset,) = [d for d in decisions if d.decision == "rolled_back"]
    step = settings.lifecycle.step
    assert reset.offset == (1012 // step + 1) * step  # the next decision point after 1012
    assert "poisoned" in reset.reason and reset.version == 2
    versions = {o: v for o, _, v in predictions}
    assert versions[2999] == 2 and 1012 not in versions  # poisoned outputs were dead letters
    accurate = [y == rows[o]["label"] for o, y, v in predictions if v == 2 and y is not None]
    assert sum(accurate[-1000:]) / 1000 > 0.9  # the new champion learns again
