"""Schema drift: fields that are new, missing or of a changed type, compared with the schema.

The expected schema is the configured one when ``[fields]`` lists the features (id, label,
time and features, numbers or categories); otherwise it is learned from the first
``reference_size`` decoded records (a field is expected if it was present and not null in at
least ``presence`` of them, with the kinds of value it had there). Records are counted over
consecutive periods of ``every`` records; at the end of each period, the share of records with
each change is a finding, like the window statistics.

Every decoded record counts, including those that validation will send to the dead-letter
topic: a field whose type changed is schema drift before it is a bad record.

Field names come from the data, so everything kept per name is bounded: new field names are
reported by name for the first ``max_new_fields`` of a period (and only names of at most
``max_name_length`` characters), the rest together as ``(other)``, whose rate is the share of
records with at least one such field; a learned schema holds at most ``max_fields`` names.

Examples
--------
>>> mon = SchemaMonitor(expected={"id": {"string"}, "x": {"number"}}, every=4)
>>> rows = [{"id": "a", "x": 1.0}, {"id": "b", "x": "1.0"}, {"id": "c"},
...         {"id": "d", "x": 2, "y": 1}]
>>> for f in mon.observe(rows, range(4)):
...     print(f.feature, f.statistic, f.value, f.level)
x type_changed_rate 0.25 2
x missing_rate 0.25 2
y new_field_rate 0.25 2
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streamer.drift import defaults
from streamer.drift.window import Finding

__all__ = ["DEFAULT_SCHEMA_THRESHOLDS", "OTHER", "SCHEMA_STATISTICS", "SchemaMonitor", "kind_of"]

# Record shapes remembered (each holds only the changes it implies, usually none).
_MAX_SIGNATURES = 256

SCHEMA_STATISTICS = ("new_field_rate", "missing_rate", "type_changed_rate")
#: The name under which new fields beyond the named ones are counted.
OTHER = "(other)"
#: Statistic -> (warning, alarm); see :data:`streamer.drift.defaults.SCHEMA_THRESHOLDS`.
DEFAULT_SCHEMA_THRESHOLDS: dict[str, tuple[float, float]] = defaults.SCHEMA_THRESHOLDS


def kind_of(value: Any) -> str:
    """The schema kind of a decoded value: number, string, boolean, null, array or object."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    return "object"


class SchemaMonitor:
    """Counts schema changes per field and reports their rates every ``every`` records.

    Parameters
    ----------
    expected
        Field -> accepted kinds (see :func:`kind_of`). None: learn it from the first
        ``reference_size`` records.
    optional
        Expected fields that may be absent or null without counting as missing.
    every
        Records per period; one evaluation at the end of each.
    reference_size
        Records to learn the schema from when ``expected`` is None.
    presence
        Share of the reference records a field must appear in to be expected.
    max_new_fields
        New field names reported by name per period; the others are counted together under
        :data:`OTHER` (once per record), so that a flood of random keys can grow neither memory
        nor the number of drift events.
    max_name_length
        Longer field names are never expected, nor reported by name (they are :data:`OTHER`).
    max_fields
        Most field names a learned schema tracks (the first seen in the reference records).
    thresholds
        Statistic -> (warning, alarm); a rate strictly above ``warning`` warns, at or above
        ``alarm`` alarms.
    """

    def __init__(
        self,
        expected: Mapping[str, Iterable[str]] | None = None,
        *,
        optional: Iterable[str] = (),
        every: int = 1000,
        reference_size: int = 1000,
        presence: float = 0.99,
        max_new_fields: int = 20,
        max_name_length: int = 128,
        max_fields: int = 1000,
        thresholds: Mapping[str, tuple[float, float]] | None = None,
    ) -> None:
        if every < 1 or reference_size < 1:
            raise ValueError("every and reference_size must be >= 1")
        self.every = every
        self.reference_size = reference_size
        self.presence = presence
        self.max_new_fields = max_new_fields
        self.max_name_length = max_name_length
        self.max_fields = max_fields
        self.optional = frozenset(optional)
        self.thresholds = {**DEFAULT_SCHEMA_THRESHOLDS, **(thresholds or {})}
        self._pinned = expected is not None
        self._expected: dict[str, frozenset[str]] | None = (
            None if expected is None else {k: frozenset(v) for k, v in expected.items()}
        )
        self.reset()

    @property
    def ready(self) -> bool:
        return self._expected is not None

    @property
    def expected(self) -> dict[str, frozenset[str]] | None:
        return None if self._expected is None else dict(self._expected)

    def reset(self) -> None:
        """Start a new period; a learned schema is learned again from the next records."""
        if not self._pinned:
            self._expected = None
        self._ref_seen: Counter[str] = Counter()
        self._known_optional: frozenset[str] = frozenset()
        self._ref_kinds: dict[str, set[str]] = {}
        self._ref_n = 0
        self._ref_first: int | None = None
        self._ref_last: int | None = None
        self._period_first: int | None = None
        self._n = 0
        self._events = 0
        self._new: Counter[str] = Counter()
        self._missing: Counter[str] = Counter()
        self._changed: Counter[str] = Counter()
        self._reported: set[tuple[str, str]] = set()
        self._signatures: dict[tuple[Any, ...], tuple[tuple[Counter[str], str], ...]] = {}

    def observe(self, rows: Sequence[Mapping[str, Any]], offsets: Sequence[int]) -> list[Finding]:
        """Count the batch's records; return the findings of the periods that ended in it."""
        out: list[Finding] = []
        for row, offset in zip(rows, offsets, strict=True):
            self._events += 1
            if self._expected is None:
                self._learn(row, offset)
                continue
            if self._period_first is None:
                self._period_first = offset
            # Records of a stream nearly always share their field names and value types: the
            # changes a (names, types) signature implies are worked out once and remembered.
            signature = (tuple(row), tuple(map(type, row.values())))
            changes = self._signatures.get(signature)
            if changes is None:
                changes, reusable = self._changes(row, self._expected)
                if reusable and len(self._signatures) < _MAX_SIGNATURES:
                    self._signatures[signature] = changes
            for counts, name in changes:
                counts[name] += 1
            self._n += 1
            if self._n == self.every:
                out.extend(self._evaluate(offset))
        return out

    def _learn(self, row: Mapping[str, Any], offset: int) -> None:
        if self._ref_first is None:
            self._ref_first = offset
        self._ref_last = offset
        self._ref_n += 1
        seen = self._ref_seen
        for name, value in row.items():
            if value is None:
                continue
            if name not in seen and (
                len(seen) >= self.max_fields or len(name) > self.max_name_length
            ):
                continue  # not learned: a new field later
            seen[name] += 1
            self._ref_kinds.setdefault(name, set()).add(kind_of(value))
        if self._ref_n >= self.reference_size:
            need = self.presence * self._ref_n
            self._expected = {
                name: frozenset(self._ref_kinds[name])
                for name, seen in self._ref_seen.items()
                if seen >= need
            }
            # Fields seen in the reference but too rarely to be expected are not "new" later.
            self._known_optional = frozenset(self._ref_seen) - frozenset(self._expected)

    def _changes(
        self, row: Mapping[str, Any], expected: Mapping[str, frozenset[str]]
    ) -> tuple[tuple[tuple[Counter[str], str], ...], bool]:
        """The (counter, field) pairs a record of this shape adds to, and whether they hold for
        every record of the same shape (not when it has unknown fields: those are capped per
        period, so where they are counted depends on the period so far)."""
        known_optional = self._known_optional
        new = self._new
        # Names this period still has room for; "(other)" is not one of them.
        room = self.max_new_fields - (len(new) - (OTHER in new))
        other = False
        out: list[tuple[Counter[str], str]] = []
        for name, value in row.items():
            kinds = expected.get(name)
            if kinds is None:
                if name in known_optional:
                    continue
                if name in new:
                    out.append((new, name))
                elif room > 0 and len(name) <= self.max_name_length:
                    # The cap moves with every name admitted, within the record too.
                    room -= 1
                    out.append((new, name))
                else:
                    other = True
            elif value is None:
                if name not in self.optional:
                    out.append((self._missing, name))
            elif kind_of(value) not in kinds:
                out.append((self._changed, name))
        for name in expected:
            if name not in row and name not in self.optional:
                out.append((self._missing, name))
        if other:
            out.append((new, OTHER))  # once per record: its rate is a share of records
        # Where a record's new fields are counted depends on the period so far: not reusable.
        return tuple(out), not any(counts is new for counts, _ in out)

    def _evaluate(self, last_offset: int) -> list[Finding]:
        n = self._n
        ref = (
            (self._ref_first, self._ref_last)
            if self._ref_first is not None and self._ref_last is not None
            else (-1, -1)
        )
        current = (
            self._period_first if self._period_first is not None else last_offset,
            last_offset,
        )
        findings = []
        reported = set()
        for statistic, counts in (
            ("type_changed_rate", self._changed),
            ("missing_rate", self._missing),
            ("new_field_rate", self._new),
        ):
            warn, alarm = self.thresholds[statistic]
            # A change seen last period and gone now is reported once more, as 0.
            names = sorted(set(counts) | {f for s, f in self._reported if s == statistic})
            for name in names:
                rate = counts.get(name, 0) / n
                level = 2 if rate >= alarm else 1 if rate > warn else 0
                findings.append(
                    Finding(name, statistic, rate, alarm, level, ref, current, self._events)
                )
                if rate:
                    reported.add((statistic, name))
        self._reported = reported
        self._n = 0
        self._period_first = None
        self._new.clear()
        self._missing.clear()
        self._changed.clear()
        return findings
