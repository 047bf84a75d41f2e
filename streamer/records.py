"""The data that moves between stages: events in; dead letters and drift events out.

Stages pass these plain objects to each other; only :mod:`streamer.kafka` knows about
confluent-kafka. A Kafka message reaches the stages as anything that has the methods of
:class:`Record` (confluent-kafka's ``Message`` has them, and so has
:class:`streamer.testing.FakeRecord`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["DeadLetter", "DriftEvent", "Event", "MemoryRecord", "Record", "Refused", "record_size"]

Headers = list[tuple[str, bytes | None]]


class Record(Protocol):
    """The parts of a consumed Kafka message that the stages read."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Headers | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class MemoryRecord:
    """A Kafka record held in memory, with the methods of :class:`Record`.

    For offline tools that run stages without a broker (``streamer drift-reference``) and
    for tests (:data:`streamer.testing.FakeRecord`).
    """

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(
        self,
        value: bytes | None,
        *,
        key: bytes | None = None,
        topic: str = "events",
        partition: int = 0,
        offset: int = 0,
        timestamp_ms: int = 0,
        headers: Headers | None = None,
    ) -> None:
        self._value = value
        self._key = key
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._timestamp = timestamp_ms
        self._headers = headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)

    def error(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"MemoryRecord({self._topic}[{self._partition}]@{self._offset})"


@dataclass(slots=True)
class Event:
    """A validated input event.

    ``x`` holds the features in the configured order (numbers as float, categories as str);
    ``y`` is the label when the event carries one. ``record`` is the Kafka message it came
    from, kept so that a later stage can still dead-letter the original bytes.
    """

    id: str
    x: dict[str, Any]
    y: Any
    time: float
    offset: int
    record: Record


@dataclass(slots=True)
class DeadLetter:
    """A record that a stage refused, with why. The original bytes travel unchanged."""

    record: Record
    stage: str
    reason: str
    error: str
    message: str


@dataclass(slots=True, frozen=True)
class Refused:
    """An output record that Kafka refused for a reason of its own (too large, invalid).

    ``origin`` is what the emitter passed along with the record (the input event of a
    prediction, a dead letter, a drift event); ``error`` is librdkafka's error name
    (``MSG_SIZE_TOO_LARGE``), ``message`` its text, ``size`` the record's size in bytes
    (:func:`record_size`).
    """

    topic: str
    origin: Any
    error: str
    message: str
    size: int


def record_size(key: bytes | None, value: bytes | None, headers: Headers | None) -> int:
    """An upper bound of the size librdkafka checks against ``message.max.bytes``.

    Key, value and headers, plus the record's framing (measured with librdkafka 2.16: 36 bytes
    and 2 to 4 bytes of length fields per header; bounded here by 64 and 10).

    >>> record_size(b"k", b"v" * 100, [("h", b"x")])
    177
    """
    size = 64 + len(key or b"") + len(value or b"")
    for name, v in headers or ():
        size += 10 + len(name.encode()) + len(v or b"")
    return size


@dataclass(slots=True, frozen=True)
class DriftEvent:
    """A drift signal changed level: what changed, by how much, since when, under which model.

    ``signal`` is ``concept``, ``feature``, ``prediction``, ``label`` or ``schema``;
    ``statistic`` the detector's name (concept) or the statistic (``psi``, ``js``, ``ks``,
    ``missing_rate``, ``new_category_rate``, ``new_field_rate``…); ``level`` is ``warning``,
    ``alarm``, or ``ok`` when a statistic falls back below its warning threshold.

    For window statistics ``value`` is the statistic and ``threshold`` the alarm threshold;
    for concept drift ``value`` is the model's mean error since the change began (since the
    detector's warning, or over the last 50 scored labelled events when it gave none) and
    ``threshold`` its mean error before that, since the previous drift.
    ``current_offsets`` are the first and last offsets of the window evaluated (for concept
    drift: since the previous drift, up to the event that raised it); ``reference_offsets``
    those of the reference window ((-1, -1) when there is none). ``time`` is the event time
    of the last event evaluated, ``events`` the count of events the monitor had seen.
    """

    signal: str
    feature: str
    statistic: str
    value: float
    threshold: float
    level: str
    topic: str
    partition: int
    reference_offsets: tuple[int, int]
    current_offsets: tuple[int, int]
    model: str
    version: int
    time: float
    events: int

    def as_dict(self) -> dict[str, Any]:
        """Flat plain data, as written to the drift-events topic (JSON or Avro)."""
        return {
            "signal": self.signal,
            "feature": self.feature,
            "statistic": self.statistic,
            "value": self.value,
            "threshold": self.threshold,
            "level": self.level,
            "topic": self.topic,
            "partition": self.partition,
            "reference_first_offset": self.reference_offsets[0],
            "reference_last_offset": self.reference_offsets[1],
            "current_first_offset": self.current_offsets[0],
            "current_last_offset": self.current_offsets[1],
            "model": self.model,
            "version": self.version,
            "time": self.time,
            "events": self.events,
        }
