from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import datasets, evaluate, metrics

from streamer.errors import ConfigError
from streamer.models import build_model
from streamer.prequential import Evaluation, ModelSlot, prequential
from streamer.records import Event
from streamer.testing import FakeRecord, events_from, fragile_classifier


@pytest.mark.parametrize(
    ("dataset", "preset", "names"),
    [
        (datasets.Phishing, "logistic_regression", ["Accuracy", "F1", "LogLoss"]),
        (datasets.Bananas, "hoeffding_tree", ["Accuracy", "MacroF1", "CrossEntropy"]),
        (datasets.TrumpApproval, "linear_regression", ["MAE", "RMSE"]),
        (datasets.TrumpApproval, "hoeffding_tree_regressor", ["MAE", "RMSE"]),
    ],
)
def test_running_metrics_equal_progressive_val_score_exactly(dataset, preset, names):
    p = ModelSlot(build_model(preset, seed=1), metrics=names)
    prequential([p], list(events_from(dataset())))
    expected = metrics.base.Metrics([getattr(metrics, n)() for n in names])
    evaluate.progressive_val_score(dataset(), build_model(preset, seed=1), expected)
    assert {n: m.get() for n, m in p.evaluation.running.items()} == {
        type(m).__name__: m.get() for m in expected
    }


def test_rolling_metric_covers_the_last_window_of_scored_events():
    window = 100
    p = ModelSlot(build_model("logistic_regression"), metrics=["Accuracy"], window=window)
    out = prequential([p], list(events_from(datasets.Phishing())))
    hits = [float(y_pred == ev.y) for ev, y_pred, _ in out.scored if y_pred is not None]
    assert p.evaluation.rolling["Accuracy"].get() == pytest.approx(sum(hits[-window:]) / window)
    assert out.errors == [1.0 - h for h in hits]


def test_regression_errors_are_absolute():
    p = ModelSlot(build_model("linear_regression"))
    out = prequential([p], list(events_from(itertools.islice(datasets.TrumpApproval(), 50))))
    assert out.errors == [abs(ev.y - y) for ev, y, _ in out.scored]
    assert all(proba is None for _, _, proba in out.scored)


@given(st.lists(st.integers(min_value=1, max_value=200), min_size=1, max_size=20))
@settings(max_examples=15, deadline=None)
def test_batch_boundaries_do_not_change_anything(sizes):
    events = list(events_from(itertools.islice(datasets.Phishing(), 600)))
    whole = ModelSlot(build_model("logistic_regression"), window=50)
    prequential([whole], events)
    split = ModelSlot(build_model("logistic_regression"), window=50)
    bounds = list(itertools.accumulate(sizes))
    for lo, hi in zip([0, *bounds], [*bounds, len(events)], strict=False):
        prequential([split], events[lo:hi])
    assert split.evaluation.values() == whole.evaluation.values()
    assert split.n_learned == whole.n_learned == 600


def test_unlabelled_events_are_scored_not_learned():
    events = list(events_from(itertools.islice(datasets.Phishing(), 100)))
    for ev in events[50:]:
        ev.y = None
    p = ModelSlot(build_model("logistic_regression"))
    out = prequential([p], events)
    assert (len(out.scored), out.labelled, p.n_learned) == (100, 50, 50)
    assert (p.first_offset_learned, p.last_offset_learned) == (0, 49)


def test_a_model_that_raises_dead_letters_the_event_and_goes_on():
    def ev(i, **x):
        return Event(str(i), {"a": float(i), **x}, i % 2 == 0, 0.0, i, FakeRecord(b"v", offset=i))

    p = ModelSlot(fragile_classifier())
    out = prequential([p], [ev(0), ev(1, boom=1), ev(2, bang=1), ev(3)])
    assert [(d.record.offset(), d.stage, d.error) for d in out.dead] == [
        (1, "score", "ZeroDivisionError"),
        (2, "learn", "ValueError"),
    ]
    assert [e.offset for e, _, _ in out.scored] == [0, 2, 3]
    assert p.n_learned == 2


def test_metric_names_are_checked_against_the_task():
    with pytest.raises(ConfigError, match="unknown River metric 'Acuracy'"):
        ModelSlot(build_model("logistic_regression"), metrics=["Acuracy"])
    with pytest.raises(ConfigError, match="MAE does not work with a classification model"):
        ModelSlot(build_model("logistic_regression"), metrics=["MAE"])
    with pytest.raises(ConfigError, match="^evaluation.metrics"):
        ModelSlot(build_model("linear_regression"), metrics=["Accuracy"])


def test_positive_label_reaches_binary_metrics():
    events = [
        Event(str(i), {"a": float(i % 3)}, "yes" if i % 3 else "no", 0.0, i, FakeRecord(b""))
        for i in range(200)
    ]
    p = ModelSlot(build_model("hoeffding_tree"), metrics=["F1"], positive_label="yes")
    p_out = prequential([p], events)
    hits = [(y_pred == "yes", ev.y == "yes") for ev, y_pred, _ in p_out.scored if y_pred]
    tp = sum(a and b for a, b in hits)
    precision = tp / sum(a for a, _ in hits)
    recall = tp / sum(b for _, b in hits)
    f1 = p.evaluation.running["F1"].get()
    assert f1 == pytest.approx(2 * precision * recall / (precision + recall))
    assert f1 > 0.5


@pytest.mark.parametrize(
    ("preset", "classes", "defaults"),
    [
        ("logistic_regression", [], ["Accuracy", "F1", "LogLoss"]),
        ("softmax_regression", [], ["Accuracy", "MacroF1", "CrossEntropy"]),
        ("hoeffding_tree", [], ["Accuracy", "MacroF1", "CrossEntropy"]),
        ("hoeffding_tree", [True, False], ["Accuracy", "F1", "LogLoss"]),
        ("linear_regression", [], ["MAE", "RMSE"]),
    ],
)
def test_default_metrics_follow_the_task(preset, classes, defaults):
    assert list(Evaluation(build_model(preset), classes=classes).running) == defaults


def test_multiclass_defaults_score_a_multiclass_stream():
    """ImageSegments (7 classes) with the binary defaults read F1 0.0 and LogLoss 34.5."""
    events = list(events_from(itertools.islice(datasets.ImageSegments(), 1000)))
    p = ModelSlot(build_model("softmax_regression"))
    prequential([p], events)
    values = {n: m.get() for n, m in p.evaluation.running.items()}
    assert set(values) == {"Accuracy", "MacroF1", "CrossEntropy"}
    assert values["MacroF1"] > 0.3 and values["CrossEntropy"] < 5
    # What the binary metrics would have said: the reason they are not the default.
    binary = ModelSlot(build_model("softmax_regression"), metrics=["F1", "LogLoss"])
    prequential([binary], events)
    running = binary.evaluation.running
    assert running["F1"].get() == 0.0 and running["LogLoss"].get() > 30


def test_binary_metrics_with_more_than_two_declared_classes_are_refused(caplog):
    with pytest.raises(ConfigError, match="F1 only score two classes, and evaluation.classes"):
        Evaluation(build_model("softmax_regression"), metrics=["Accuracy", "F1"], classes="abc")
    # Undeclared: a multi-class model may be given a binary stream; a warning says so.
    Evaluation(build_model("hoeffding_tree"), metrics=["F1"])
    assert "F1 only score two classes and the model is multi-class" in caplog.text


def test_a_binary_model_cannot_declare_more_than_two_classes():
    with pytest.raises(ConfigError, match="3 classes declared, but LogisticRegression is a binary"):
        ModelSlot(build_model("logistic_regression"), classes=["a", "b", "c"])
