"""Emit: predictions and dead letters become Kafka records on their topics.

This stage builds records and hands them to a :class:`Sink`; it does not know Kafka. The
worker's sink is :class:`streamer.kafka.KafkaSink`, which tracks delivery so that offsets are
committed only after every output of a batch is acknowledged.

Dead letters keep the original key, value and headers, and add headers in the spirit of Kafka
Connect's ``errors.deadletterqueue.context.headers.enable``:

=============================  ================================================
``streamer.error.topic``       source topic
``streamer.error.partition``   source partition (decimal)
``streamer.error.offset``      source offset (decimal)
``streamer.error.timestamp``   source record timestamp, epoch ms (decimal)
``streamer.error.stage``       ``decode``, ``validate``, ``score`` or ``learn``
``streamer.error.reason``      short reason, e.g. ``non_finite``
``streamer.error.class``       exception class, e.g. ``ValueError``
``streamer.error.message``     the error message (UTF-8, at most 1000 bytes)
=============================  ================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from streamer.decode import AvroEncoder, Encoder, JsonEncoder
from streamer.records import DeadLetter, DriftEvent, Event, Headers
from streamer.resources import load_avsc

__all__ = [
    "DEAD_LETTER_HEADER_PREFIX",
    "DRIFT_EVENT_SCHEMA",
    "LIFECYCLE_EVENT_SCHEMA",
    "PREDICTION_SCHEMA",
    "Emitter",
    "Sink",
    "dead_letter_headers",
]

DEAD_LETTER_HEADER_PREFIX = "streamer.error."

#: Avro schema of predictions (``output.format = "avro"``), from the shipped
#: ``streamer/schemas/prediction.avsc`` (``schemas/`` in a checkout): one copy, for the
#: worker and for consumers.
PREDICTION_SCHEMA: dict[str, Any] = load_avsc("prediction")

#: Avro schema of drift events (``output.format = "avro"``), from ``drift_event.avsc``.
DRIFT_EVENT_SCHEMA: dict[str, Any] = load_avsc("drift_event")

#: Avro schema of lifecycle events (``output.format = "avro"``), from
#: ``lifecycle_event.avsc``. JSON output carries the same fields.
LIFECYCLE_EVENT_SCHEMA: dict[str, Any] = load_avsc("lifecycle_event")


class Sink(Protocol):
    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers | None = None
    ) -> None: ...


def dead_letter_headers(dl: DeadLetter) -> Headers:
    """The original headers followed by the ``streamer.error.*`` context headers."""
    r = dl.record
    p = DEAD_LETTER_HEADER_PREFIX
    context: Headers = [
        (p + "topic", (r.topic() or "").encode()),
        (p + "partition", str(r.partition()).encode()),
        (p + "offset", str(r.offset()).encode()),
        (p + "timestamp", str(r.timestamp()[1]).encode()),
        (p + "stage", dl.stage.encode()),
        (p + "reason", dl.reason.encode()),
        (p + "class", dl.error.encode()),
        (p + "message", dl.message.encode()[:1000]),
    ]
    return [*(r.headers() or []), *context]


class Emitter:
    """Encode predictions and dead letters and produce them to their topics.

    Parameters
    ----------
    sink
        Where records go.
    predictions_topic, dead_letters_topic
        Topic names.
    fmt
        ``json`` or ``avro`` for predictions (dead letters are always the original bytes).
    model
        Model name written into predictions.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        predictions_topic: str,
        dead_letters_topic: str,
        drift_events_topic: str = "drift-events",
        lifecycle_topic: str = "lifecycle-events",
        fmt: str = "json",
        model: str = "champion",
    ) -> None:
        self.sink = sink
        self.predictions_topic = predictions_topic
        self.dead_letters_topic = dead_letters_topic
        self.drift_events_topic = drift_events_topic
        self.lifecycle_topic = lifecycle_topic
        self.model = model
        self._avro = fmt == "avro"
        self._encoder: Encoder = AvroEncoder(PREDICTION_SCHEMA) if self._avro else JsonEncoder()
        self._drift_encoder: Encoder = (
            AvroEncoder(DRIFT_EVENT_SCHEMA) if self._avro else JsonEncoder()
        )
        self._lifecycle_encoder: Encoder = (
            AvroEncoder(LIFECYCLE_EVENT_SCHEMA) if self._avro else JsonEncoder()
        )

    def predictions(
        self,
        topic: str,
        partition: int,
        scored: Sequence[tuple[Event, Any, dict[Any, float] | None]],
        version: int,
        *,
        model: str | None = None,
        role: str = "champion",
    ) -> int:
        """Produce one prediction per scored event, keyed by event id; return how many."""
        produce = self.sink.produce
        out_topic = self.predictions_topic
        encode = self._encoder.encode
        model = model or self.model
        avro = self._avro
        for ev, y_pred, proba in scored:
            doc = {
                "event_id": ev.id,
                "topic": topic,
                "partition": partition,
                "offset": ev.offset,
                "time": ev.time,
                "model": model,
                "version": version,
                "role": role,
                "prediction": y_pred,
                "proba": proba or None,
                "label": ev.y,
            }
            if avro:
                doc = _avro_prediction(doc)
            produce(out_topic, encode(doc), ev.id.encode())
        return len(scored)

    def drift_events(self, events: Sequence[DriftEvent]) -> None:
        """Produce drift events keyed by ``topic/partition``, so each partition's stay in order.

        Non-finite values (a concept drift before any baseline) are null in JSON, NaN in Avro.
        """
        encode = self._drift_encoder.encode
        for ev in events:
            key = f"{ev.topic}/{ev.partition}".encode()
            self.sink.produce(self.drift_events_topic, encode(ev.as_dict()), key)

    def lifecycle(self, decisions: Sequence[Any], *, time: float) -> None:
        """Produce lifecycle decisions keyed by ``topic/partition`` (in order per partition)."""
        encode = self._lifecycle_encoder.encode
        for d in decisions:
            doc = {**d.as_dict(), "time": time}
            self.sink.produce(
                self.lifecycle_topic, encode(doc), f"{d.topic}/{d.partition}".encode()
            )

    def dead_letters(self, dead: Sequence[DeadLetter]) -> None:
        """Produce each dead letter with its original key and value and the context headers."""
        for dl in dead:
            self.sink.produce(
                self.dead_letters_topic,
                dl.record.value() or b"",
                dl.record.key(),
                dead_letter_headers(dl),
            )


def _avro_prediction(doc: dict[str, Any]) -> dict[str, Any]:
    # The schema's union covers null, boolean, long, double and string; anything else (a
    # numpy scalar, a tuple class) is written as its string form. Map keys must be strings.
    def value(v: Any) -> Any:
        return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)

    proba = doc["proba"]
    return {
        **doc,
        "prediction": value(doc["prediction"]),
        "label": value(doc["label"]),
        "proba": None if proba is None else {str(k): float(p) for k, p in proba.items()},
    }
