from __future__ import annotations

import json
from pathlib import Path

import orjson

from streamer.decode import AvroDecoder
from streamer.outputs import DRIFT_EVENT_SCHEMA, PREDICTION_SCHEMA, Emitter, dead_letter_headers
from streamer.records import DeadLetter, Event
from streamer.testing import FakeRecord, ListSink

ROOT = Path(__file__).parents[2]


def _scored():
    rec = FakeRecord(b"v", offset=7)
    return [
        (Event("a", {"x": 1.0}, True, 1.5, 7, rec), True, {True: 0.75, False: 0.25}),
        (Event("b", {"x": 2.0}, None, 2.5, 8, rec), None, {}),
    ]


def test_json_predictions_carry_every_field():
    sink = ListSink()
    em = Emitter(sink, predictions_topic="p", dead_letters_topic="d", model="m")
    assert em.predictions("events", 3, _scored(), version=4) == 2
    (_, v1, k1, _), (_, v2, _, _) = sink.on("p")
    assert k1 == b"a"
    assert orjson.loads(v1) == {
        "event_id": "a",
        "topic": "events",
        "partition": 3,
        "offset": 7,
        "time": 1.5,
        "model": "m",
        "version": 4,
        "role": "champion",
        "prediction": True,
        "proba": {"true": 0.75, "false": 0.25},
        "label": True,
    }
    assert orjson.loads(v2)["proba"] is None and orjson.loads(v2)["prediction"] is None


def test_avro_predictions_follow_the_shipped_schema():
    sink = ListSink()
    em = Emitter(sink, predictions_topic="p", dead_letters_topic="d", fmt="avro")
    em.predictions("events", 0, _scored(), version=1)
    dec = AvroDecoder(PREDICTION_SCHEMA, framing="plain")
    first, second = (dec.decode(v) for _, v, _, _ in sink.on("p"))
    assert first["proba"] == {"True": 0.75, "False": 0.25} and first["prediction"] is True
    assert second["proba"] is None and second["label"] is None


def test_schema_files_for_consumers_match_the_code():
    from streamer.outputs import LIFECYCLE_EVENT_SCHEMA
    from streamer.registry import MODEL_UPDATE_SCHEMA

    assert json.loads((ROOT / "schemas" / "prediction.avsc").read_text()) == PREDICTION_SCHEMA
    assert json.loads((ROOT / "schemas" / "drift_event.avsc").read_text()) == DRIFT_EVENT_SCHEMA
    assert json.loads((ROOT / "schemas" / "lifecycle_event.avsc").read_text()) == (
        LIFECYCLE_EVENT_SCHEMA
    )
    assert json.loads((ROOT / "schemas" / "model_update.avsc").read_text()) == MODEL_UPDATE_SCHEMA


def test_drift_events_round_trip_in_both_formats():
    import math

    from streamer.records import DriftEvent

    ev = DriftEvent(
        "concept",
        "",
        "DualADWIN",
        0.31,
        math.nan,
        "alarm",
        "events",
        2,
        (-1, -1),
        (10, 500),
        "champion",
        3,
        12.5,
        491,
    )
    for fmt in ("json", "avro"):
        sink = ListSink()
        Emitter(
            sink, predictions_topic="p", dead_letters_topic="d", drift_events_topic="x", fmt=fmt
        ).drift_events([ev])
        ((topic, value, key, _),) = sink.records
        assert (topic, key) == ("x", b"events/2")
        doc = (
            orjson.loads(value)
            if fmt == "json"
            else AvroDecoder(DRIFT_EVENT_SCHEMA, framing="plain").decode(value)
        )
        expected = {**ev.as_dict(), "threshold": None}
        if fmt == "avro":
            assert math.isnan(doc.pop("threshold"))
            expected.pop("threshold")
        else:
            assert doc["threshold"] is None  # JSON has no NaN: null
        assert {k: v for k, v in doc.items() if k in expected} == expected
        assert doc["current_first_offset"] == 10 and doc["reference_last_offset"] == -1


def test_dead_letters_keep_the_original_and_add_context():
    rec = FakeRecord(
        b"\xff\x00raw",
        key=b"k",
        topic="events",
        partition=2,
        offset=41,
        timestamp_ms=1234,
        headers=[("trace", b"t"), ("empty", None)],
    )
    dl = DeadLetter(rec, "validate", "non_finite", "RecordError", "feature 'a' is nan" * 100)
    sink = ListSink()
    Emitter(sink, predictions_topic="p", dead_letters_topic="d").dead_letters([dl])
    ((topic, value, key, headers),) = sink.records
    assert (topic, value, key) == ("d", b"\xff\x00raw", b"k")
    assert headers == dead_letter_headers(dl)
    h = dict(headers)
    assert headers[:2] == [("trace", b"t"), ("empty", None)]
    assert {
        k: v
        for k, v in h.items()
        if k.startswith("streamer.error.") and k != "streamer.error.message"
    } == {
        "streamer.error.topic": b"events",
        "streamer.error.partition": b"2",
        "streamer.error.offset": b"41",
        "streamer.error.timestamp": b"1234",
        "streamer.error.stage": b"validate",
        "streamer.error.reason": b"non_finite",
        "streamer.error.class": b"RecordError",
    }
    assert len(h["streamer.error.message"]) == 1000


# --------------------------------------------------------------------------------------------
# Outputs never exceed what Kafka accepts


def _dead(value: bytes, key: bytes | None = b"k", headers=None) -> DeadLetter:
    rec = FakeRecord(value, key=key, offset=3, headers=headers)
    return DeadLetter(rec, "validate", "missing_id", "RecordError", "no usable id")


def test_a_dead_letter_that_fits_is_the_original():
    from streamer.outputs import dead_letter_record
    from streamer.records import record_size

    value, key, headers = dead_letter_record(_dead(b"x" * 900, headers=[("t", b"1")]), 2000)
    assert (value, key) == (b"x" * 900, b"k") and headers[0] == ("t", b"1")
    assert "streamer.error.truncated" not in dict(headers)
    assert record_size(key, value, headers) <= 2000


def test_a_dead_letter_too_large_keeps_key_headers_and_the_start_of_its_value():
    from streamer.outputs import dead_letter_record
    from streamer.records import record_size

    original = bytes(range(256)) * 40  # 10,240 bytes
    value, key, headers = dead_letter_record(_dead(original, headers=[("trace", b"t")]), 4000)
    h = dict(headers)
    assert key == b"k" and h["trace"] == b"t" and h["streamer.error.reason"] == b"missing_id"
    assert h["streamer.error.original.size"] == b"10240"
    assert h["streamer.error.truncated"] == b"value"
    assert original.startswith(value) and 0 < len(value) < 4000
    assert 4000 - 100 < record_size(key, value, headers) <= 4000  # as much as fits


def test_a_dead_letter_whose_key_alone_is_too_large_is_sent_bare():
    from streamer.outputs import dead_letter_record
    from streamer.records import record_size

    value, key, headers = dead_letter_record(_dead(b"v" * 100, key=b"K" * 5000), 4000)
    h = dict(headers)
    assert (value, key) == (b"", None)
    assert h["streamer.error.truncated"] == b"value,key,headers"
    assert h["streamer.error.original.size"] == b"100"
    assert record_size(key, value, headers) <= 4000


def _too_large_over(limit: int):
    from streamer.records import record_size

    def refuse(topic, value, key, headers):
        return "MSG_SIZE_TOO_LARGE" if record_size(key, value, headers) > limit else None

    return refuse


def test_a_refused_prediction_becomes_a_dead_letter_of_its_input():
    sink = ListSink(refuse=_too_large_over(600))
    em = Emitter(sink, predictions_topic="p", dead_letters_topic="d", max_message_bytes=600)
    small = Event("a", {}, True, 0.0, 7, FakeRecord(b'{"id": "a"}', key=b"a", offset=7))
    big_id = "b" * 400  # the key and the value of its prediction: 800+ bytes
    big = Event(big_id, {}, True, 0.0, 8, FakeRecord(b'{"x": 1}', key=b"kb", offset=8))
    em.predictions("events", 0, [(small, True, None), (big, False, None)], version=1)
    made = em.flush(1.0)
    assert [(d.record.offset(), d.stage, d.reason, d.error) for d in made] == [
        (8, "emit", "output_too_large", "MSG_SIZE_TOO_LARGE")
    ]
    assert "its prediction" in made[0].message and "refused by topic 'p'" in made[0].message
    assert [k for _, _, k, _ in sink.on("p")] == [b"a"]
    ((_, value, key, headers),) = sink.on("d")
    assert (value, key) == (b'{"x": 1}', b"kb")  # the input, as consumed
    assert dict(headers)["streamer.error.stage"] == b"emit"


def test_a_refused_dead_letter_is_sent_bare_and_then_fails_the_batch():
    import pytest

    from streamer.errors import DeliveryError

    # The topic refuses anything over 700 bytes, though the producer could send 10,000.
    sink = ListSink(refuse=_too_large_over(700))
    em = Emitter(sink, predictions_topic="p", dead_letters_topic="d", max_message_bytes=10_000)
    em.dead_letters([_dead(b"y" * 1000)])
    assert em.flush(1.0) == []
    ((_, value, key, headers),) = sink.on("d")
    assert (value, key, dict(headers)["streamer.error.truncated"]) == (
        b"",
        None,
        b"value,key,headers",
    )
    # A topic that refuses even that: not a record's problem any more.
    em = Emitter(
        ListSink(refuse=lambda *_: "INVALID_RECORD"), predictions_topic="p", dead_letters_topic="d"
    )
    em.dead_letters([_dead(b"z")])
    with pytest.raises(DeliveryError, match=r"events\[0\]@3 was refused by topic 'd' even bare"):
        em.flush(1.0)


def test_a_refused_drift_event_is_logged(caplog):
    from streamer.records import DriftEvent

    ev = DriftEvent(
        "schema",
        "f",
        "new_field_rate",
        1.0,
        0.01,
        "alarm",
        "events",
        0,
        (-1, -1),
        (0, 9),
        "m",
        1,
        0.0,
        10,
    )
    em = Emitter(
        ListSink(refuse=lambda *_: "INVALID_TIMESTAMP"),
        predictions_topic="p",
        dead_letters_topic="d",
    )
    em.drift_events([ev])
    assert em.flush(1.0) == []
    assert "output to drift-events refused and dropped: INVALID_TIMESTAMP" in caplog.text
