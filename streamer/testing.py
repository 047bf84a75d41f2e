"""Helpers for tests of streamer and of code built on it: fake records and event factories.

They ship inside the package (as Bytewax does) so that most tests are short in-memory flows and
users can test their own model factories the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from river import base

from streamer.records import Event, Headers, MemoryRecord

__all__ = [
    "FakeRecord",
    "FragileClassifier",
    "ListSink",
    "Reference",
    "events_from",
    "json_records",
    "parsed",
    "read_topic",
    "read_until",
    "wait_for",
]


#: A consumed message, in memory (see :class:`streamer.records.MemoryRecord`).
FakeRecord = MemoryRecord


def json_records(
    rows: Iterable[Mapping[str, Any]], *, topic: str = "events", partition: int = 0, start: int = 0
) -> Iterator[FakeRecord]:
    """JSON-encode rows into consecutive fake records of one partition."""
    for i, row in enumerate(rows, start):
        yield FakeRecord(
            orjson.dumps(row, option=orjson.OPT_NON_STR_KEYS),
            key=str(row.get("id", i)).encode(),
            topic=topic,
            partition=partition,
            offset=i,
            timestamp_ms=1_700_000_000_000 + i,
        )


def events_from(
    dataset: Iterable[tuple[dict[str, Any], Any]], *, partition: int = 0, start: int = 0
) -> Iterator[Event]:
    """Events straight from ``(x, y)`` pairs (a River dataset), skipping decode and validate."""
    for i, (x, y) in enumerate(dataset, start):
        yield Event(str(i), x, y, 0.0, i, FakeRecord(None, partition=partition, offset=i))


def parsed(events: Iterable[Event]) -> Any:
    """A parsed batch of already-validated events (their features stand for the decoded rows)."""
    from streamer.validate import Parsed

    evs = list(events)
    return Parsed(evs, [], [e.x for e in evs], [e.offset for e in evs])


class ListSink:
    """A :class:`streamer.outputs.Sink` that keeps what it is given."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None, Headers | None]] = []

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers | None = None
    ) -> None:
        self.records.append((topic, value, key, headers))

    def on(self, topic: str) -> list[tuple[str, bytes, bytes | None, Headers | None]]:
        return [r for r in self.records if r[0] == topic]


def wait_for(
    condition: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def read_topic(kafka_settings: Any, topic: str, count: int, *, timeout: float = 60.0) -> list[Any]:
    """Read ``count`` records from the start of ``topic`` (all partitions), or fail on timeout.

    Counts records rather than trusting high watermarks, which some Kafka-compatible brokers
    report low.
    """
    return read_until(
        kafka_settings,
        topic,
        lambda out: len(out) >= count,
        timeout=timeout,
        what=f"{count} records",
    )[:count]


def read_until(
    kafka_settings: Any,
    topic: str,
    done: Callable[[list[Any]], bool],
    *,
    timeout: float = 60.0,
    what: str = "",
) -> list[Any]:
    """Read ``topic`` from the start until ``done(records so far)``; fail after ``timeout``."""
    from streamer import kafka

    consumer = kafka.make_reader(kafka_settings, topic)
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while not done(out):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"read {len(out)} records from {topic!r} in {timeout}s, waiting for {what}"
                )
            out.extend(m for m in consumer.consume(1000, 0.2) if m.error() is None)
    finally:
        consumer.close()
    return out


class FragileClassifier(base.Classifier):
    """A logistic regression that raises when a trigger feature is set (non-zero).

    Numbers are scaled and string categories one-hot encoded, as the preset does. For testing
    the dead-letter path of model errors (see :func:`fragile_classifier`).
    """

    def __init__(
        self, raise_on_predict: str = "boom", raise_on_learn: str = "bang", seed: int = 0
    ) -> None:
        from streamer.models import build_model

        self.raise_on_predict = raise_on_predict
        self.raise_on_learn = raise_on_learn
        self.seed = seed
        self.inner = build_model("logistic_regression", seed=seed, categorical=True)

    def learn_one(self, x: dict[Any, Any], y: Any, **kwargs: Any) -> None:
        if x.get(self.raise_on_learn):
            raise ValueError(f"cannot learn with {self.raise_on_learn}={x[self.raise_on_learn]}")
        self.inner.learn_one(x, y)

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[Any, float]:
        if x.get(self.raise_on_predict):
            raise ZeroDivisionError(
                f"cannot score with {self.raise_on_predict}={x[self.raise_on_predict]}"
            )
        return self.inner.predict_proba_one(x)  # type: ignore[no-any-return]


def fragile_classifier(
    raise_on_predict: str = "boom", raise_on_learn: str = "bang", seed: int = 0
) -> Any:
    """A :class:`FragileClassifier`: use it as
    ``model.preset = "streamer.testing:fragile_classifier"``."""
    return FragileClassifier(raise_on_predict, raise_on_learn, seed)


def settings_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment that makes a ``streamer`` process run with ``settings``: every value
    that differs from the defaults as a ``STREAMER_*`` variable (plus ``extra`` ones), over the
    current environment's non-STREAMER variables."""
    import os

    from pydantic import BaseModel

    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (dict, list, tuple)):
            return orjson.dumps(value).decode()
        return str(value)

    def walk(model: BaseModel, prefix: str) -> None:
        for name, info in type(model).model_fields.items():
            if name == "source":
                continue
            value = getattr(model, name)
            if value == info.get_default(call_default_factory=True):
                continue
            key = f"{prefix}{(info.alias or name).upper()}"
            if isinstance(value, BaseModel):
                walk(value, key + "__")
            elif prefix == "STREAMER_KAFKA__" and name in ("client", "consumer", "producer"):
                for prop, v in value.items():  # librdkafka names: dots become underscores
                    env[f"{key}__{prop.replace('.', '_').upper()}"] = text(v)
            else:
                env[key] = text(value)

    walk(settings, "STREAMER_")
    env.update(extra)
    return env


@dataclass
class Reference:
    """An uninterrupted in-memory run (see :func:`reference_run`)."""

    state: Any
    predictions: dict[str, dict[str, Any]]
    drift_events: list[dict[str, Any]]


def reference_run(
    settings: Any, rows: Iterable[Mapping[str, Any]], *, topic: str = "events", partition: int = 0
) -> Reference:
    """What an uninterrupted worker computes for ``rows`` of one partition, in memory.

    Gives the final partition state, ``event id -> {"prediction", "proba", "version"}`` as the
    predictions topic carries them (JSON round trip included), and the drift events as
    published (without their ``time``, which comes from the record timestamps), to compare a
    worker's outputs with.
    """
    from streamer.pipeline import Pipeline

    pipeline = Pipeline(settings)
    state = pipeline.new_state(topic, partition)
    out = pipeline.process(state, list(json_records(rows, topic=topic, partition=partition)))
    predictions = {}
    for segment in out.predictions:
        for ev, y_pred, proba in segment.scored:
            doc = {"prediction": y_pred, "proba": proba or None, "version": segment.version}
            predictions[ev.id] = _json_round_trip(doc)
    drift = [_json_round_trip({**e.as_dict(), "time": None}) for e in out.drift_events]
    return Reference(state, predictions, drift)


def _json_round_trip(doc: Mapping[str, Any]) -> Any:
    return orjson.loads(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))
