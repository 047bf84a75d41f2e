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


# --------------------------------------------------------------------------------------------
# Bounds on what comes from the data


def test_an_id_longer_than_the_limit_is_refused():
    fields = FieldSettings(max_id_length=10)
    assert _event({"id": "a" * 10}, fields).id == "a" * 10
    with pytest.raises(RecordError, match="has 11 characters, fields.max_id_length is 10") as info:
        _event({"id": "a" * 11}, fields)
    assert info.value.reason == "id_too_long"
    # The message quotes the start of the id only: it goes into a header.
    huge = "z" * 600_000
    with pytest.raises(RecordError) as info:
        _event({"id": huge}, FieldSettings())
    assert info.value.reason == "id_too_long" and len(info.value.message) < 200


@pytest.mark.parametrize("value", [1e308, -1e13, 10**13, 2**63 - 1, 4.2e298])
def test_absurd_magnitudes_are_refused_before_the_model(value):
    assert _reason({"id": 1, "a": value, "b": "x"}) == "out_of_range"
    assert _reason({"id": 1, "a": value}, FieldSettings()) == "out_of_range"  # inferred


def test_the_magnitude_limit_is_configurable_globally_and_per_feature():
    v = Validator(
        FieldSettings(), task="classification", max_abs_value=100, max_abs_by_feature={"big": 1e15}
    )
    rec = FakeRecord(b"")
    assert v.event({"id": 1, "a": 100, "big": 1e14}, rec).x == {"a": 100, "big": 1e14}
    with pytest.raises(RecordError, match="feature 'a' is 101, beyond input.max_abs_value 100"):
        v.event({"id": 1, "a": 101}, rec)
    with pytest.raises(RecordError, match="out_of_range"):
        v.event({"id": 1, "big": 1e16}, rec)
    explicit = Validator(
        FieldSettings(features=["a", "big"]),
        task="classification",
        max_abs_value=100,
        max_abs_by_feature={"big": 1e15},
    )
    assert explicit.event({"id": 1, "a": -100, "big": -1e15}, rec).x == {"a": -100, "big": -1e15}
    with pytest.raises(RecordError, match="out_of_range"):
        explicit.event({"id": 1, "a": -100.5, "big": 0}, rec)


def test_regression_targets_are_bounded_too():
    assert _reason({"id": 1, "a": 1, "b": "x", "label": 1e300}, task="regression") == (
        "out_of_range"
    )


def test_inferred_features_are_the_first_names_up_to_the_bounds():
    fields = FieldSettings(max_features=3, max_name_length=5)
    v = Validator(fields, task="classification")
    rec = FakeRecord(b"")
    assert v.event({"id": 1, "a": 1, "toolong": 2, "b": 3}, rec).x == {"a": 1, "b": 3}
    assert v.event({"id": 2, "c": 1, "d": 2, "a": 3}, rec).x == {"c": 1, "a": 3}
    # Full: later names are not model inputs (the schema monitor counts them as new fields).
    assert v.event({"id": 3, "a": 1, "b": 2, "c": 3, "d": 4, "e": 5}, rec).x == {
        "a": 1,
        "b": 2,
        "c": 3,
    }
    assert list(v.admitted.features) == ["a", "b", "c"]


def test_names_are_admitted_only_by_valid_events_and_per_partition():
    from streamer.validate import Admitted

    v = Validator(FieldSettings(max_features=2), task="classification")
    mine, other = Admitted(), Admitted()
    rec = FakeRecord(b"")
    with pytest.raises(RecordError):
        v.event({"id": 1, "x": 1, "y": 2, "label": [1]}, rec, mine)
    assert mine.features == {} and v.admitted.features == {}
    v.event({"id": 2, "p": 1, "q": 1, "x": 1}, rec, mine)
    v.event({"id": 3, "x": 1, "y": 1}, rec, other)
    assert list(mine.features) == ["p", "q"]
    assert list(other.features) == ["x", "y"]


def _classifier(**kwargs):
    return Validator(FieldSettings(), task="classification", **kwargs)


def test_a_binary_model_takes_the_first_two_classes_seen():
    v, rec = _classifier(max_classes=2), FakeRecord(b"")
    assert [v.event({"id": i, "label": y}, rec).y for i, y in enumerate([True, False, True])] == [
        True,
        False,
        True,
    ]
    for bad in (2, "yes"):
        with pytest.raises(
            RecordError, match=r"not one of the first 2 classes seen \[True, False\]"
        ):
            v.event({"id": 9, "label": bad}, rec)
    assert _reason_of(v, {"id": 9, "label": 0.5}) == "bad_label"  # not a class at all
    assert _reason_of(v, {"id": 9, "label": 2}) == "unknown_class"
    # Unlabelled events are not affected.
    assert v.event({"id": 10}, rec).y is None


def _reason_of(v, obj):
    with pytest.raises(RecordError) as info:
        v.event(obj, FakeRecord(b""))
    return info.value.reason


def test_declared_classes_are_the_only_ones():
    v = _classifier(classes=["cat", "dog"], max_classes=2)
    assert v.event({"id": 1, "label": "dog"}, FakeRecord(b"")).y == "dog"
    assert _reason_of(v, {"id": 2, "label": "cow"}) == "unknown_class"
    multi = _classifier(classes=["a", "b", "c"])
    assert multi.event({"id": 1, "label": "c"}, FakeRecord(b"")).y == "c"
    assert _reason_of(multi, {"id": 2, "label": "d"}) == "unknown_class"


def test_a_multiclass_model_admits_up_to_max_classes():
    v = _classifier(max_classes=3)
    for i, y in enumerate("abc"):
        v.event({"id": i, "label": y}, FakeRecord(b""))
    assert _reason_of(v, {"id": 9, "label": "d"}) == "unknown_class"
    assert list(v.admitted.classes) == ["a", "b", "c"]


def test_class_labels_are_bounded_in_length():
    v = Validator(FieldSettings(max_name_length=8), task="classification")
    assert _reason_of(v, {"id": 1, "label": "x" * 9}) == "bad_label"


def test_from_settings_follows_the_model_and_the_classes():
    from streamer.models import build_model
    from streamer.settings import load_settings

    settings = load_settings(env={})
    v = Validator.from_settings(settings, build_model("logistic_regression"))
    assert (v.task, v._max_classes) == ("classification", 2)
    v = Validator.from_settings(settings, build_model("softmax_regression"))
    assert v._max_classes == settings.evaluation.max_classes == 100
    v = Validator.from_settings(settings, build_model("linear_regression"))
    assert v.task == "regression"
