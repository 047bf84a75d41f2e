from __future__ import annotations

import math

import orjson
import pytest

from streamer.decode import JsonDecoder
from streamer.errors import RecordError
from streamer.settings import FieldSettings
from streamer.testing import FakeRecord
from streamer.validate import REASONS, Validator, parse

EXPLICIT = FieldSettings(features=["a", "b", "c"], categorical=["b"], optional=["c"])


def _event(obj, fields=EXPLICIT, task="classification", **record):
    return Validator(fields, task=task).event(obj, FakeRecord(b"", **record))


def _reason(obj, fields=EXPLICIT, task="classification"):
    with pytest.raises(RecordError) as info:
        _event(obj, fields, task)
    assert info.value.stage == "validate"
    return info.value.reason


def test_explicit_features_keep_order_types_and_skip_missing_optional():
    ev = _event({"label": False, "b": 7, "a": 2, "id": 5, "extra": "ignored"}, offset=9)
    assert (ev.id, ev.y, ev.offset) == ("5", False, 9)
    assert ev.x == {"a": 2, "b": "7"}
    assert list(ev.x) == ["a", "b"]
    assert type(ev.x["a"]) is int  # numbers are not converted: models see what River gives


def test_inferred_features_are_every_other_field():
    fields = FieldSettings(categorical=["kind"], time="ts")
    ev = _event({"id": "x", "ts": 10, "label": 1, "u": 1.5, "kind": "k", "gone": None}, fields)
    assert ev.x == {"u": 1.5, "kind": "k"}
    assert ev.time == 10.0


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"a": 1, "b": "x"}, "missing_id"),
        ({"id": "", "a": 1, "b": "x"}, "missing_id"),
        ({"id": True, "a": 1, "b": "x"}, "missing_id"),
        ({"id": [1], "a": 1, "b": "x"}, "missing_id"),
        ({"id": 1, "b": "x"}, "missing_feature"),
        ({"id": 1, "a": None, "b": "x"}, "missing_feature"),
        ({"id": 1, "a": "1.0", "b": "x"}, "wrong_type"),
        ({"id": 1, "a": [1], "b": "x"}, "wrong_type"),
        ({"id": 1, "a": 1, "b": {"k": 1}}, "wrong_type"),
        ({"id": 1, "a": math.inf, "b": "x"}, "non_finite"),
        ({"id": 1, "a": 1, "b": "x", "c": math.nan}, "non_finite"),
        ({"id": 1, "a": 1, "b": "x", "label": [True]}, "bad_label"),
        ({"id": 1, "a": 1, "b": "x", "label": math.nan}, "bad_label"),
    ],
)
def test_each_reason(obj, reason):
    assert reason in REASONS
    assert _reason(obj) == reason


def test_regression_labels_must_be_finite_numbers():
    assert _event({"id": 1, "a": 1, "b": "x", "label": 2.5}, task="regression").y == 2.5
    assert _reason({"id": 1, "a": 1, "b": "x", "label": "2.5"}, task="regression") == "bad_label"
    assert _reason({"id": 1, "a": 1, "b": "x", "label": True}, task="regression") == "bad_label"
    assert _reason({"id": 1, "a": 1, "b": "x", "label": math.inf}, task="regression") == "bad_label"


def test_string_in_an_undeclared_feature_says_how_to_fix_it():
    with pytest.raises(RecordError, match="list it in fields.categorical"):
        _event({"id": 1, "s": "x"}, FieldSettings())


def test_event_time_sources():
    ms = FieldSettings(time="t", time_unit="ms")
    assert _event({"id": 1, "t": 1500}, ms).time == 1.5
    iso = FieldSettings(time="t")
    assert _event({"id": 1, "t": "2026-01-01T00:00:00+00:00"}, iso).time == 1767225600.0
    assert _reason({"id": 1, "t": "yesterday"}, iso) == "bad_time"
    assert _reason({"id": 1}, iso) == "missing_time"
    # No time field: the Kafka record timestamp.
    assert _event({"id": 1}, FieldSettings(), timestamp_ms=2500).time == 2.5


def test_parse_sorts_records_into_events_and_dead_letters_in_order():
    recs = [
        FakeRecord(orjson.dumps({"id": 1, "a": 1, "b": "x"}), offset=0),
        FakeRecord(None, offset=1),
        FakeRecord(b"x" * 101, offset=2),
        FakeRecord(b"{bad", offset=3),
        FakeRecord(orjson.dumps({"id": 2, "a": "?", "b": "x"}), offset=4),
        FakeRecord(orjson.dumps({"id": 3, "a": 2, "b": "y"}), offset=5),
    ]
    parsed = parse(recs, JsonDecoder(), Validator(EXPLICIT, task="classification"), max_bytes=100)
    events, dead = parsed.events, parsed.dead
    # Schema drift sees every record that decoded, valid or not.
    assert parsed.decoded_offsets == [0, 4, 5]
    assert parsed.decoded[1] == {"id": 2, "a": "?", "b": "x"}
    assert [e.id for e in events] == ["1", "3"]
    assert [(d.record.offset(), d.stage, d.reason, d.error) for d in dead] == [
        (1, "decode", "empty", "RecordError"),
        (2, "decode", "oversized", "RecordError"),
        (3, "decode", "undecodable", "JSONDecodeError"),
        (4, "validate", "wrong_type", "RecordError"),
    ]
    assert "101 bytes" in dead[1].message
