"""Bad input goes to the dead-letter topic, with its bytes and a reason; the worker carries on."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from streamer import kafka
from streamer.decode import AvroEncoder, load_schema
from streamer.testing import read_topic
from streamer.worker import Worker

pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).parents[2] / "schemas"


def _headers(msg) -> dict[str, bytes]:
    return dict(msg.headers() or [])


def _send(settings, items) -> None:
    """items: (key, value bytes or None, headers)."""
    producer = kafka.make_producer(settings.kafka)
    for key, value, headers in items:
        producer.produce(settings.topics.events, value, key, headers=headers)
    assert producer.flush(30) == 0


def test_every_kind_of_bad_record_is_dead_lettered_and_the_worker_carries_on(make_settings):
    settings = make_settings(
        fields={
            "features": ["a", "b", "boom", "bang", "pad"],
            "categorical": ["b", "pad"],
            "optional": ["boom", "bang", "pad"],
        },
        input={"max_record_bytes": 2000},
        model={"preset": "streamer.testing:fragile_classifier"},
        worker={"batch_size": 7},
    )
    worker = Worker(settings)
    worker.provision_topics()

    def good(i: int, **extra) -> bytes:
        return orjson.dumps({"id": f"e{i}", "a": i / 10, "b": "x", "label": i % 2 == 0, **extra})

    items = [
        (b"k0", good(0), None),
        (b"k1", b"{not json", [("trace", b"t-1")]),  # undecodable
        (b"k2", orjson.dumps({"a": 1.0, "b": "x"}), None),  # no id
        (b"k3", orjson.dumps({"id": "e3", "b": "x"}), None),  # required feature
        (b"k4", orjson.dumps({"id": "e4", "a": "1.5", "b": "x"}), None),  # wrong type
        (b"k5", good(5, pad="z" * 3000), None),  # oversized
        (b"k6", good(6, boom=1), [("trace", b"t-6")]),  # model raises
        (b"k7", good(7, bang=1), None),  # learn raises
        (b"k8", None, None),  # tombstone
        (b"k9", orjson.dumps([1, 2, 3]), None),  # not an object
        (b"k10", good(10), None),
    ]
    _send(settings, items)
    worker.run(max_events=len(items))

    dead = read_topic(settings.kafka, settings.topics.dead_letters, 9)
    by_key = {m.key(): m for m in dead}
    expected = {
        b"k1": ("decode", "undecodable", "JSONDecodeError"),
        b"k2": ("validate", "missing_id", "RecordError"),
        b"k3": ("validate", "missing_feature", "RecordError"),
        b"k4": ("validate", "wrong_type", "RecordError"),
        b"k5": ("decode", "oversized", "RecordError"),
        b"k6": ("score", "model_error", "ZeroDivisionError"),
        b"k7": ("learn", "model_error", "ValueError"),
        b"k8": ("decode", "empty", "RecordError"),
        b"k9": ("decode", "undecodable", "RecordError"),
    }
    assert {
        k: (
            _headers(m)["streamer.error.stage"].decode(),
            _headers(m)["streamer.error.reason"].decode(),
            _headers(m)["streamer.error.class"].decode(),
        )
        for k, m in by_key.items()
    } == {k: v for k, v in expected.items()}
    values = dict((k, v) for k, v, _ in items)
    for key, msg in by_key.items():
        h = _headers(msg)
        # The original bytes, key and headers travel unchanged…
        assert msg.value() == (values[key] or b"")
        offset = int(key[1:])
        assert h["streamer.error.topic"] == settings.topics.events.encode()
        assert h["streamer.error.partition"] == b"0"
        assert h["streamer.error.offset"] == str(offset).encode()
        assert int(h["streamer.error.timestamp"]) > 0
        assert h["streamer.error.message"]
    assert _headers(by_key[b"k1"])["trace"] == b"t-1"
    assert _headers(by_key[b"k6"])["trace"] == b"t-6"
    assert b"infinity" not in _headers(by_key[b"k4"])["streamer.error.message"]
    assert b"'a' must be a number" in _headers(by_key[b"k4"])["streamer.error.message"]

    # …and the good records (and the one whose learning failed) were still scored.
    preds = read_topic(settings.kafka, settings.topics.predictions, 3)
    assert sorted(orjson.loads(m.value())["event_id"] for m in preds) == ["e0", "e10", "e7"]
    state = worker.states[(settings.topics.events, 0)]
    assert state.champion.n_learned == 2  # e0 and e10; e7 raised in learn_one

    reg = worker.metrics.registry

    def count(stage, reason):
        return reg.get_sample_value(
            "streamer_dead_letters_total",
            {"topic": settings.topics.events, "stage": stage, "reason": reason},
        )

    assert count("decode", "undecodable") == 2
    for stage, reason, _ in expected.values():
        assert count(stage, reason) >= 1
    assert sum(count(s, r) for s, r in {(s, r) for s, r, _ in expected.values()}) == 9
    assert reg.get_sample_value(
        "streamer_events_total", {"topic": settings.topics.events, "partition": "0"}
    ) == len(items)


def test_avro_plain_and_confluent_framing_and_non_finite_values(make_settings):
    schema_path = SCHEMAS / "phishing.avsc"
    settings = make_settings(
        input={
            "format": "avro",
            "avro": {"schema": str(schema_path), "schema_ids": {5: str(schema_path)}},
        },
    )
    worker = Worker(settings)
    worker.provision_topics()
    schema = load_schema(schema_path)
    row = {
        "id": "p0",
        "empty_server_form_handler": 0.0,
        "popup_window": 0.5,
        "https": 1.0,
        "request_from_other_domain": 0.0,
        "anchor_from_other_domain": 0.5,
        "is_popular": 1.0,
        "long_url": 0.0,
        "age_of_domain": 1,
        "ip_in_url": 0,
        "label": True,
    }
    plain, framed = AvroEncoder(schema), AvroEncoder(schema, schema_id=5)
    items = [
        (b"p0", plain.encode(row), None),
        (b"p1", framed.encode({**row, "id": "p1"}), None),
        (b"p2", framed.encode({**row, "id": "p2", "https": math.nan}), None),  # non-finite
        (b"p3", AvroEncoder(schema, schema_id=6).encode({**row, "id": "p3"}), None),  # unknown id
        (b"p4", plain.encode(row)[:-3], None),  # truncated
    ]
    _send(settings, items)
    worker.run(max_events=len(items))
    preds = read_topic(settings.kafka, settings.topics.predictions, 2)
    assert sorted(orjson.loads(m.value())["event_id"] for m in preds) == ["p0", "p1"]
    dead = {
        m.key(): _headers(m) for m in read_topic(settings.kafka, settings.topics.dead_letters, 3)
    }
    assert dead[b"p2"]["streamer.error.reason"] == b"non_finite"
    assert dead[b"p3"]["streamer.error.stage"] == b"decode"
    assert dead[b"p4"]["streamer.error.reason"] == b"undecodable"
