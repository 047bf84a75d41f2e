"""Decoded dicts to events, or a reason for the dead-letter topic.

The validator applies the ``[fields]`` settings: it finds the id, the event time, the label
when the record carries one, and the features, and it checks their types. Numbers stay as the
decoder produced them (int or float, so a model sees exactly what River's own loaders give it);
categories become strings.

It also keeps what comes from the data within bounds, because every one of these reaches the
model, an output record or a metric:

* an id longer than ``fields.max_id_length`` is refused (``id_too_long``): the id is the key of
  every prediction, and part of its value;
* a number whose magnitude exceeds ``input.max_abs_value`` is refused (``out_of_range``): one
  finite 1e308 turns a StandardScaler's variance, and every later prediction, into NaN;
* with ``fields.features`` empty, a partition's model takes the first ``fields.max_features``
  field names it sees, of at most ``fields.max_name_length`` characters; other fields are not
  model inputs (the schema monitor reports them as new fields);
* a classification label must be one of ``evaluation.classes``, or, when none are declared, of
  the first classes seen: 2 for a binary model, ``evaluation.max_classes`` for a multi-class
  one (``unknown_class``).

What a partition has admitted (feature names, classes) is held in :class:`Admitted`, which
belongs to the partition's state, beside its model.

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
>>> v.event({"id": 9, "a": 1e308, "b": "x"}, FakeRecord(b""))
Traceback (most recent call last):
...
streamer.errors.RecordError: validate/out_of_range: feature 'a' is 1e+308, beyond \
input.max_abs_value 1e+12
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from streamer.decode import Decoder
from streamer.errors import RecordError
from streamer.models import task_kind
from streamer.records import DeadLetter, Event, Record
from streamer.settings import FieldSettings, Settings

__all__ = ["REASONS", "Admitted", "Parsed", "Validator", "parse"]

#: Every reason the validator gives (a bounded set: it becomes a metric label).
REASONS = (
    "missing_id",
    "id_too_long",
    "missing_feature",
    "wrong_type",
    "non_finite",
    "out_of_range",
    "bad_label",
    "unknown_class",
    "missing_time",
    "bad_time",
)

_NUMBER = (int, float)  # bool is an int subclass: flags pass as 0/1, as River treats them
_PLAIN = {int, float}  # the fast path's types (a bool or None takes the checking path)
_MAX_PLANS = 256  # record shapes remembered per partition
_CATEGORY = (str, int, bool)


def _fail(reason: str, message: str) -> RecordError:
    return RecordError("validate", reason, message)


@dataclass(slots=True)
class Admitted:
    """What a partition has taken from its data: inferred feature names and classes.

    Both in order of first appearance, as dict keys. This is partition state, kept (and
    checkpointed) with the model it describes: a replay then admits the same names and classes,
    so the model sees the same inputs.
    """

    features: dict[str, None] = field(default_factory=dict)
    classes: dict[Any, None] = field(default_factory=dict)
    #: Record shape (its field names) -> the feature names it holds, once all are admitted;
    #: a cache for the fast path, not state (empty after a restore).
    plans: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict)

    def __getstate__(self) -> tuple[dict[str, None], dict[Any, None]]:
        return self.features, self.classes

    def __setstate__(self, state: tuple[dict[str, None], dict[Any, None]]) -> None:
        self.features, self.classes = state
        self.plans = {}


class Validator:
    """Turn decoded records into :class:`~streamer.records.Event`.

    Parameters
    ----------
    fields
        The ``[fields]`` settings.
    task
        ``classification`` (labels are strings, integers or booleans) or ``regression``
        (labels are finite numbers).
    max_abs_value
        Largest magnitude of a numeric feature or a regression target.
    max_abs_by_feature
        Per-feature overrides of ``max_abs_value``.
    classes
        Declared classes (classification); labels outside them are refused. Empty: the first
        ``max_classes`` distinct labels seen are the classes.
    max_classes
        Classes admitted when none are declared (2 for a binary model); None for no bound.
    """

    def __init__(
        self,
        fields: FieldSettings,
        *,
        task: str,
        max_abs_value: float = 1e12,
        max_abs_by_feature: Mapping[str, float] | None = None,
        classes: Sequence[Any] = (),
        max_classes: int | None = None,
    ) -> None:
        self.fields = fields
        self.task = task
        self._reserved = {fields.id, fields.time, fields.label} - {""}
        categorical = set(fields.categorical)
        optional = set(fields.optional)
        self._max_abs = max_abs_value
        self._max_abs_by_feature = dict(max_abs_by_feature or {})
        # (name, is_categorical, is_optional, limit) in the configured order, resolved once.
        self._spec = [
            (f, f in categorical, f in optional, self._max_abs_by_feature.get(f, max_abs_value))
            for f in fields.features
        ]
        self._time_scale = 1000.0 if fields.time_unit == "ms" else 1.0
        self._categorical = categorical
        self._classes = list(classes)
        self._declared = frozenset(classes)
        self._max_classes = max_classes
        #: Used when a caller passes no :class:`Admitted` (tools that see one partition).
        self.admitted = Admitted()
        # The fast path covers numeric features under one bound (no categories, no
        # per-feature bounds, no optional ones); anything else takes the checking path.
        self._fast = (
            True
            if not categorical and not self._max_abs_by_feature and not (self._spec and optional)
            else None
        )

    @classmethod
    def from_settings(cls, settings: Settings, model: Any) -> Validator:
        """The validator of ``[fields]``, ``[input]`` and ``[evaluation]`` for ``model``."""
        e, i = settings.evaluation, settings.input
        kind = task_kind(model, e.classes)
        return cls(
            settings.fields,
            task="regression" if kind == "regression" else "classification",
            max_abs_value=i.max_abs_value,
            max_abs_by_feature=i.max_abs_value_by_feature,
            classes=e.classes,
            max_classes=2 if kind == "binary" else e.max_classes,
        )

    def event(self, obj: dict[str, Any], record: Record, admitted: Admitted | None = None) -> Event:
        """Validate one decoded record; raise :class:`RecordError` if it cannot be an event.

        ``admitted`` is the partition's (default: the validator's own). Feature names and a
        class are admitted only when the whole event is valid.
        """
        f = self.fields
        if admitted is None:
            admitted = self.admitted
        eid = obj.get(f.id)
        if eid is None or eid == "" or isinstance(eid, bool) or not isinstance(eid, (str, int)):
            raise _fail("missing_id", f"no usable id in field {f.id!r} (got {_shown(eid)})")
        if isinstance(eid, str) and len(eid) > f.max_id_length:
            raise _fail(
                "id_too_long",
                f"id in field {f.id!r} has {len(eid)} characters, fields.max_id_length is "
                f"{f.max_id_length} (starts {eid[:40]!r})",
            )
        new_features: list[str] = []
        x = self._fast_features(obj, admitted)
        if x is None:
            if self._spec:
                x = self._features(obj)
            else:
                x = self._all_features(obj, admitted.features, new_features)
        y = obj.get(f.label) if f.label else None
        new_class = False
        if y is not None:
            y, new_class = self._label(y, admitted.classes)
        t = self._time(obj.get(f.time)) if f.time else record.timestamp()[1] / 1000.0
        offset = record.offset()
        for name in new_features:
            admitted.features[name] = None
        if new_class:
            admitted.classes[y] = None
        return Event(str(eid), x, y, t, -1 if offset is None else offset, record)

    def _fast_features(self, obj: dict[str, Any], admitted: Admitted) -> dict[str, Any] | None:
        """The features of a record of a known shape whose values are all plain finite numbers
        within bounds (nearly every record), or None to take the checking path, which also
        says what is wrong. Gives the same dict, in the same order, as the checking path."""
        if self._fast is None:
            return None
        shape = tuple(obj)
        names = admitted.plans.get(shape)
        if names is None:
            names = self._plan(shape, admitted)
            if names is None:
                return None
        values = [obj[n] for n in names]
        if not set(map(type, values)) <= _PLAIN:
            return None
        # A NaN or infinity makes the sum non-finite; huge values fail the bound.
        if values and (not math.isfinite(sum(values)) or max(map(abs, values)) > self._max_abs):
            return None
        return dict(zip(names, values, strict=True))

    def _plan(self, shape: tuple[str, ...], admitted: Admitted) -> tuple[str, ...] | None:
        """The feature names of records of this shape, when the fast path applies to them."""
        if self._spec:
            names = tuple(n for n, *_ in self._spec)
            if not set(names) <= set(shape):
                return None
        else:
            names = tuple(n for n in shape if n not in self._reserved)
            if any(n not in admitted.features for n in names):
                return None  # admitting new names is the checking path's work
        if len(admitted.plans) < _MAX_PLANS:
            admitted.plans[shape] = names
        return names

    def _features(self, obj: dict[str, Any]) -> dict[str, Any]:
        x: dict[str, Any] = {}
        for name, categorical, optional, limit in self._spec:
            v = obj.get(name)
            if v is None:
                if optional:
                    continue
                raise _fail("missing_feature", f"required feature {name!r} is missing or null")
            x[name] = _category(name, v) if categorical else _number(name, v, limit)
        return x

    def _all_features(
        self, obj: dict[str, Any], known: dict[str, None], new: list[str]
    ) -> dict[str, Any]:
        """Every field but the reserved ones; names beyond the bounds are left out (``new``
        receives the names this event would admit)."""
        categorical, reserved = self._categorical, self._reserved
        room = self.fields.max_features - len(known)
        longest = self.fields.max_name_length
        limit, by_feature = self._max_abs, self._max_abs_by_feature
        x: dict[str, Any] = {}
        for name, v in obj.items():
            if name in reserved or v is None:
                continue
            if name not in known:
                if len(new) >= room or len(name) > longest:
                    continue  # not a model input: the schema monitor counts it as a new field
                new.append(name)
            if name in categorical:
                x[name] = _category(name, v)
            else:
                x[name] = _number(name, v, by_feature.get(name, limit) if by_feature else limit)
        return x

    def _label(self, y: Any, seen: dict[Any, None]) -> tuple[Any, bool]:
        """The label, checked; and whether it is a class seen for the first time."""
        if self.task == "regression":
            if not isinstance(y, _NUMBER) or isinstance(y, bool):
                raise _fail("bad_label", f"label must be a number, got {type(y).__name__}")
            if not math.isfinite(y):
                raise _fail("bad_label", f"label is {y}")
            if not -self._max_abs <= y <= self._max_abs:
                raise _fail(
                    "out_of_range", f"label is {y}, beyond input.max_abs_value {self._max_abs}"
                )
            return y, False
        if isinstance(y, float) and not (math.isfinite(y) and y.is_integer()):
            raise _fail("bad_label", f"a class must be a string, an integer or a boolean, got {y}")
        if not isinstance(y, (*_CATEGORY, float)):
            raise _fail(
                "bad_label", f"label must be a class (str, int, bool), got {type(y).__name__}"
            )
        if isinstance(y, str) and len(y) > self.fields.max_name_length:
            raise _fail(
                "bad_label",
                f"class label has {len(y)} characters, fields.max_name_length is "
                f"{self.fields.max_name_length} (starts {y[:40]!r})",
            )
        if self._declared:
            if y not in self._declared:
                raise _fail(
                    "unknown_class", f"label {y!r} is not one of evaluation.classes {self._classes}"
                )
            return y, False
        if y in seen:
            return y, False
        if self._max_classes is not None and len(seen) >= self._max_classes:
            what = "a binary model" if self._max_classes == 2 else "evaluation.max_classes"
            raise _fail(
                "unknown_class",
                f"label {y!r} is not one of the first {self._max_classes} classes seen "
                f"{list(seen)} ({what}); declare them in evaluation.classes",
            )
        return y, True

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
            "bad_time",
            f"event time {_shown(v)} is not epoch {self.fields.time_unit} or ISO-8601",
        )


def _shown(v: Any) -> str:
    """A value for an error message, cut short: values come from the data."""
    text = repr(v)
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text)} characters)"


def _number(name: str, v: Any, limit: float) -> Any:
    if not isinstance(v, _NUMBER):
        hint = " (list it in fields.categorical if it is a category)" if isinstance(v, str) else ""
        raise _fail(
            "wrong_type", f"feature {name!r} must be a number, got {type(v).__name__}{hint}"
        )
    # One comparison for the common case; NaN fails it too.
    if not -limit <= v <= limit:
        if isinstance(v, float) and not math.isfinite(v):
            raise _fail("non_finite", f"feature {name!r} is {v}")
        raise _fail(
            "out_of_range", f"feature {name!r} is {v:.6g}, beyond input.max_abs_value {limit:g}"
        )
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
    records: Sequence[Record],
    decoder: Decoder,
    validator: Validator,
    *,
    max_bytes: int,
    admitted: Admitted | None = None,
) -> Parsed:
    """Decode and validate a partition's records, in order (``admitted``: the partition's)."""
    out = Parsed()
    events, dead, decoded, decoded_offsets = out.events, out.dead, out.decoded, out.decoded_offsets
    decode = decoder.decode
    event = validator.event
    if admitted is None:
        admitted = validator.admitted
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
            events.append(event(obj, r, admitted))
        except RecordError as exc:
            # The class that explains it: the decoder's own error when there is one.
            cls = type(exc.__cause__ or exc).__name__
            dead.append(DeadLetter(r, exc.stage, exc.reason, cls, exc.message))
    return out
