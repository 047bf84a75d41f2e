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
