"""Model-update records: layout, JSON and Avro manifests, verification."""

from __future__ import annotations

import orjson
import pytest
from river import datasets, linear_model

from streamer.decode import AvroEncoder
from streamer.registry import (
    MODEL_UPDATE_SCHEMA,
    Accepted,
    Assembler,
    ModelUpdate,
    Refused,
    update_records,
)
from streamer.signing import Signer

SIGNER = Signer(b"registry-test-key-000")


def _model(n=200):
    m = linear_model.LogisticRegression()
    for x, y in list(datasets.Phishing())[:n]:
        m.learn_one(x, y)
    return m


def _feed(records, assembler=None):
    assembler = assembler or Assembler(SIGNER)
    return [r for k, v, h in records if (r := assembler.add(k.encode(), v, h)) is not None]


@pytest.mark.parametrize("avro", [False, True], ids=["json", "avro"])
def test_an_update_round_trips_chunked_in_either_encoding(avro):
    model = _model()
    update = ModelUpdate(
        name="m",
        topic="events",
        partition=3,
        version=2,
        revision=200,
        parent_version=1,
        reason="promotion",
        metrics={"Accuracy.running": 0.9},
    )
    encode = AvroEncoder(MODEL_UPDATE_SCHEMA).encode if avro else None
    records = update_records(update, model, signer=SIGNER, chunk_bytes=256, encode=encode)
    assert len(records) > 2 and records[-1][0] == "m/events/3"
    if not avro:
        manifest = orjson.loads(records[-1][1])  # readable by any Kafka client
        assert manifest["version"] == 2 and manifest["reason"] == "promotion"
    (got,) = _feed(records)
    assert isinstance(got, Accepted)
    assert got.update.order == (2, 200) and got.update.metrics == {"Accuracy.running": 0.9}
    x = next(iter(datasets.Phishing()))[0]
    assert got.model.predict_proba_one(x) == model.predict_proba_one(x)


def test_an_older_update_is_refused_and_the_same_one_again_is_ignored():
    assembler = Assembler(SIGNER)
    newer = update_records(
        ModelUpdate(name="m", topic="t", partition=0, version=1, revision=20),
        _model(),
        signer=SIGNER,
        chunk_bytes=4096,
    )
    older = update_records(
        ModelUpdate(name="m", topic="t", partition=0, version=1, revision=10),
        _model(),
        signer=SIGNER,
        chunk_bytes=4096,
    )
    assert isinstance(_feed(newer, assembler)[0], Accepted)
    assert _feed(newer, assembler) == []  # a replayed duplicate: nothing to do
    (refused,) = _feed(older, assembler)
    assert isinstance(refused, Refused) and refused.reason == "older"


def test_an_update_over_the_size_limit_is_not_published():
    from streamer.errors import PayloadError

    with pytest.raises(PayloadError, match="over models.max_bytes"):
        update_records(
            ModelUpdate(name="m", topic="t", partition=0, version=1, revision=1),
            _model(),
            signer=SIGNER,
            chunk_bytes=4096,
            max_bytes=100,
        )
    records = update_records(
        ModelUpdate(name="m", topic="t", partition=0, version=1, revision=1),
        _model(),
        signer=SIGNER,
        chunk_bytes=4096,
    )
    (refused,) = _feed(records, Assembler(SIGNER, max_bytes=100))
    assert isinstance(refused, Refused) and refused.reason == "oversized"
