"""The data that moves between stages: events in, predictions and dead letters out.

Stages pass these plain objects to each other; only :mod:`streamer.kafka` knows about
confluent-kafka. A Kafka message reaches the stages as anything that has the methods of
:class:`Record` (confluent-kafka's ``Message`` has them, and so has
:class:`streamer.testing.FakeRecord`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["DeadLetter", "Event", "Prediction", "Record"]

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
class Prediction:
    """What the champion said about one event, before (prequential) it learned from it."""

    event_id: str
    topic: str
    partition: int
    offset: int
    time: float
    model: str
    version: int
    prediction: Any
    proba: dict[Any, float] | None
    score: float | None
    label: Any

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the JSON encoder (dict keys of ``proba`` become strings)."""
        return {
            "event_id": self.event_id,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "time": self.time,
            "model": self.model,
            "version": self.version,
            "prediction": self.prediction,
            "proba": None if self.proba is None else {str(k): v for k, v in self.proba.items()},
            "score": self.score,
            "label": self.label,
        }


@dataclass(slots=True)
class DeadLetter:
    """A record that a stage refused, with why. The original bytes travel unchanged."""

    record: Record
    stage: str
    reason: str
    error: str
    message: str
