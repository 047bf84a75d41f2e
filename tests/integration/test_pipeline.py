"""The streaming core against a real broker: exactness, outputs, dead letters, offsets."""

from __future__ import annotations

import math

import orjson
import pytest
from river import datasets, evaluate, metrics

from streamer import kafka
from streamer.decode import JsonEncoder
from streamer.models import build_model
from streamer.produce import dataset_rows, produce_rows
from streamer.settings import Settings
from streamer.testing import read_topic
from streamer.worker import Worker

pytestmark = pytest.mark.integration


def _produce(settings: Settings, rows: list[dict], topic: str | None = None) -> None:
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    produce_rows(rows, sink, topic or settings.topics.events, JsonEncoder())
    sink.close()


@pytest.mark.parametrize(
    ("dataset", "preset", "names"),
    [
        ("Phishing", "logistic_regression", ["Accuracy", "F1", "LogLoss"]),
        ("Phishing", "hoeffding_tree", ["Accuracy", "F1", "LogLoss"]),
        ("TrumpApproval", "linear_regression", ["MAE", "RMSE"]),
    ],
)
def test_final_metrics_equal_progressive_val_score(make_settings, dataset, preset, names):
    """The correctness anchor: same model, data and order -> River's numbers, bit for bit."""
    settings = make_settings(
        model={"preset": preset, "seed": 3},
        # Named: the tree is multi-class, so its defaults are MacroF1 and CrossEntropy.
        evaluation={"metrics": names},
        worker={"batch_size": 97},
    )
    worker = Worker(settings)
    worker.provision_topics()
    rows = list(dataset_rows(dataset))
    _produce(settings, rows)
    worker.run(max_events=len(rows))

    expected = metrics.base.Metrics([getattr(metrics, n)() for n in names])
    evaluate.progressive_val_score(
        getattr(datasets, dataset)(), build_model(preset, seed=3), expected
    )
    (state,) = worker.states.values()
    got = {n: m.get() for n, m in state.champion.evaluation.running.items()}
    want = {type(m).__name__: m.get() for m in expected}
    assert got == want  # exact: not approx
    assert state.champion.n_learned == len(rows)

    predictions = read_topic(settings.kafka, settings.topics.predictions, len(rows))
    docs = [orjson.loads(m.value()) for m in predictions]
    assert [d["event_id"] for d in docs] == [r["id"] for r in rows]
    assert [d["offset"] for d in docs] == list(range(len(rows)))
    first = docs[0]
    assert set(first) == {
        "event_id",
        "topic",
        "partition",
        "offset",
        "time",
        "model",
        "version",
        "role",
        "prediction",
        "proba",
        "label",
    }
    assert first["model"] == "champion" and first["version"] == 1
    assert first["label"] == rows[0]["label"]
    if preset != "linear_regression":
        assert all(d["proba"] is None or math.isclose(sum(d["proba"].values()), 1.0) for d in docs)
