"""Decoded dicts to events, or a reason for the dead-letter topic.

The validator applies the ``[fields]`` settings: it finds the id, the event time, the label
when the record carries one, and the features, and it checks their types. Numbers stay as the
decoder produced them (int or float, so a model sees exactly what River's own loaders give it);
categories become strings.

Examples
--------
>>> from streamer.settings import FieldSettings
>>> from streamer.testing import FakeRecord
>>> v = Validator(FieldSettings(features=["a", "b"], categorical=["b"]), task="classification")
>>> v.event({"id": 7, "a": 1.5, "b": "x", "label": True}, FakeRecord(b"", offset=3))
Event(id='7', x={'a': 1.5, 'b': 'x'}, y=True, time=0.0, offset=3, record=MemoryRecord(events[0]@3))
>>> v.event({"id": 8, "a": float("nan"), "b": "x"}, FakeRecord(b""))
Traceback (most recent call last):
...
streamer.errors.RecordError: validate/non_finite: feature 'a' is nan
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streamer.decode import Decoder
from streamer.errors import RecordError
from streamer.records import DeadLetter, Event, Record
from streamer.settings import FieldSettings

__all__ = ["REASONS", "Parsed", "Validator", "parse"]

#: Every reason the validator gives (a bounded set: it becomes a metric label).
REASONS = (
    "missing_id",
    "missing_feature",
    "wrong_type",
    "non_finite",
    "bad_label",
    "missing_time",
    "bad_time",
)

_NUMBER = (int, float)  # bool is an int subclass: flags pass as 0/1, as River treats them
_CATEGORY = (str, int, bool)


def _fail(reason: str, message: str) -> RecordError:
    return RecordError("validate", reason, message)


class Validator:
    """Turn decoded records into :class:`~streamer.records.Event`.

    Parameters
    ----------
    fields
        The ``[fields]`` settings.
    task
        ``classification`` (labels are strings, integers or booleans) or ``regression``
        (labels are finite numbers).
    """

    def __init__(self, fields: FieldSettings, *, task: str) -> None:
        self.fields = fields
        self.task = task
        self._reserved = {fields.id, fields.time, fields.label} - {""}
        categorical = set(fields.categorical)
        optional = set(fields.optional)
        # (name, is_categorical, is_optional) in the configured order, resolved once.
        self._spec = [(f, f in categorical, f in optional) for f in fields.features]
        self._time_scale = 1000.0 if fields.time_unit == "ms" else 1.0
        self._categorical = categorical

    def event(self, obj: dict[str, Any], record: Record) -> Event:
        """Validate one decoded record; raise :class:`RecordError` if it cannot be an event."""
        f = self.fields
        eid = obj.get(f.id)
        if eid is None or eid == "" or isinstance(eid, bool) or not isinstance(eid, (str, int)):
            raise _fail("missing_id", f"no usable id in field {f.id!r} (got {eid!r})")
        x = self._features(obj) if self._spec else self._all_features(obj)
        y = obj.get(f.label) if f.label else None
        if y is not None:
            y = self._label(y)
        t = self._time(obj.get(f.time)) if f.time else record.timestamp()[1] / 1000.0
        offset = record.offset()
        return Event(str(eid), x, y, t, -1 if offset is None else offset, record)

    def _features(self, obj: dict[str, Any]) -> dict[str, Any]:
        x: dict[str, Any] = {}
        for name, categorical, optional in self._spec:
            v = obj.get(name)
            if v is None:
                if optional:
                    continue
                raise _fail("missing_feature", f"required feature {name!r} is missing or null")
            x[name] = _category(name, v) if categorical else _number(name, v)
        return x

    def _all_features(self, obj: dict[str, Any]) -> dict[str, Any]:
        categorical = self._categorical
        x: dict[str, Any] = {}
        for name, v in obj.items():
            if name in self._reserved or v is None:
                continue
            if name in categorical:
                x[name] = _category(name, v)
            else:
                x[name] = _number(name, v)
        return x

    def _label(self, y: Any) -> Any:
        if self.task == "regression":
            if not isinstance(y, _NUMBER) or isinstance(y, bool):
                raise _fail("bad_label", f"label must be a number, got {type(y).__name__}")
            if not math.isfinite(y):
                raise _fail("bad_label", f"label is {y}")
            return y
        if isinstance(y, float) and not math.isfinite(y):
            raise _fail("bad_label", f"label is {y}")
        if not isinstance(y, (*_CATEGORY, float)):
            raise _fail(
                "bad_label", f"label must be a class (str, int, bool), got {type(y).__name__}"
            )
        return y

    def _time(self, v: Any) -> float:
        if v is None:
            raise _fail("missing_time", f"event time field {self.fields.time!r} is missing")
        if isinstance(v, _NUMBER) and not isinstance(v, bool):
            t = float(v) / self._time_scale
            if math.isfinite(t):
                return t
        elif isinstance(v, str):
            try:
                return datetime.fromisoformat(v).timestamp()
            except ValueError:
                pass
        raise _fail(
            "bad_time", f"event time {v!r} is not epoch {self.fields.time_unit} or ISO-8601"
        )


def _number(name: str, v: Any) -> Any:
    if not isinstance(v, _NUMBER):
        hint = " (list it in fields.categorical if it is a category)" if isinstance(v, str) else ""
        raise _fail(
            "wrong_type", f"feature {name!r} must be a number, got {type(v).__name__}{hint}"
        )
    if isinstance(v, float) and not math.isfinite(v):
        raise _fail("non_finite", f"feature {name!r} is {v}")
    return v


def _category(name: str, v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, _CATEGORY):
        return str(v)
    raise _fail("wrong_type", f"feature {name!r} must be a category, got {type(v).__name__}")


@dataclass(slots=True)
class Parsed:
    """A partition's batch after decode and validate.

    ``decoded`` holds every record that decoded, valid or not (schema drift counts them all),
    ``decoded_offsets`` their offsets.
    """

    events: list[Event] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    decoded: list[dict[str, Any]] = field(default_factory=list)
    decoded_offsets: list[int] = field(default_factory=list)


def parse(
    records: Sequence[Record], decoder: Decoder, validator: Validator, *, max_bytes: int
) -> Parsed:
    """Decode and validate a partition's records, in order."""
    out = Parsed()
    events, dead, decoded, decoded_offsets = out.events, out.dead, out.decoded, out.decoded_offsets
    decode = decoder.decode
    event = validator.event
    for r in records:
        value = r.value()
        try:
            if value is None:
                raise RecordError("decode", "empty", "record has no value (a tombstone?)")
            if len(value) > max_bytes:
                raise RecordError(
                    "decode",
                    "oversized",
                    f"value is {len(value)} bytes, input.max_record_bytes is {max_bytes}",
                )
            obj = decode(value)
            decoded.append(obj)
            decoded_offsets.append(r.offset())  # type: ignore[arg-type]
            events.append(event(obj, r))
        except RecordError as exc:
            # The class that explains it: the decoder's own error when there is one.
            cls = type(exc.__cause__ or exc).__name__
            dead.append(DeadLetter(r, exc.stage, exc.reason, cls, exc.message))
    return out
