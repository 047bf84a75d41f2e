"""Emit: predictions and dead letters become Kafka records on their topics.

This stage builds records and hands them to a :class:`Sink`; it does not know Kafka. The
worker's sink is :class:`streamer.kafka.KafkaSink`, which tracks delivery so that offsets are
committed only after every output of a batch is acknowledged.

Dead letters keep the original key, value and headers, and add headers in the spirit of Kafka
Connect's ``errors.deadletterqueue.context.headers.enable``:

=================================  ================================================
``streamer.error.topic``           source topic
``streamer.error.partition``       source partition (decimal)
``streamer.error.offset``          source offset (decimal)
``streamer.error.timestamp``       source record timestamp, epoch ms (decimal)
``streamer.error.stage``           ``decode``, ``validate``, ``score``, ``learn`` or ``emit``
``streamer.error.reason``          short reason, e.g. ``non_finite``
``streamer.error.class``           exception class, e.g. ``ValueError``
``streamer.error.message``         the error message (UTF-8, at most 1000 bytes)
``streamer.error.original.size``   only when cut: the original value's size in bytes
``streamer.error.truncated``       only when cut: what was cut (``value``, or
                                   ``value,key,headers``)
=================================  ================================================

**Outputs never exceed what the producer may send** (``message.max.bytes``, 1,000,000 bytes
by default, which is less than ``input.max_record_bytes``). A dead letter that would be larger
keeps its key and headers and as much of the start of its value as fits; if even its key and
original headers do not fit, it is sent bare: empty value, no key, only the
``streamer.error.*`` headers.

**An output Kafka refuses for a reason of its own** (too large for the topic, invalid) does
not stop the worker: :meth:`Emitter.flush` receives it back from the sink
(:class:`~streamer.records.Refused`, carrying the ``origin`` the emitter gave it) and

* a prediction: its *input* record becomes a dead letter, stage ``emit``, reason
  ``output_too_large`` or ``output_refused`` (the event was scored, and learned from when
  labelled; only its prediction is missing);
* a dead letter: sent again, bare; refused again, the batch fails (:class:`DeliveryError`);
* a drift event: logged as an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from streamer.decode import AvroEncoder, Encoder, JsonEncoder
from streamer.errors import DeliveryError
from streamer.records import DeadLetter, DriftEvent, Event, Headers, Refused, record_size
from streamer.resources import load_avsc

__all__ = [
    "DEAD_LETTER_HEADER_PREFIX",
    "DRIFT_EVENT_SCHEMA",
    "EMIT_REASONS",
    "LIFECYCLE_EVENT_SCHEMA",
    "PREDICTION_SCHEMA",
    "Emitter",
    "Sink",
    "dead_letter_headers",
    "dead_letter_record",
]

log = logging.getLogger(__name__)

DEAD_LETTER_HEADER_PREFIX = "streamer.error."
#: Reasons of stage ``emit``: a prediction Kafka refused (a bounded set: a metric label).
EMIT_REASONS = ("output_too_large", "output_refused")
#: librdkafka's default ``message.max.bytes``.
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000

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
    """Where records go (:class:`streamer.kafka.KafkaSink`; :class:`streamer.testing.ListSink`).

    ``produce`` takes an ``origin``, which the sink does not read: it hands it back in a
    :class:`~streamer.records.Refused` from ``flush`` when the record is refused for a reason
    of its own. ``flush`` waits for delivery and raises :class:`DeliveryError` on any other
    failure.
    """

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Headers | None = None,
        *,
        origin: Any = None,
    ) -> None: ...

    def flush(
        self, timeout: float = ..., *, waiting: Callable[[int, float], None] | None = None
    ) -> list[Refused]: ...


def _context_headers(dl: DeadLetter) -> Headers:
    r = dl.record
    p = DEAD_LETTER_HEADER_PREFIX
    return [
        (p + "topic", (r.topic() or "").encode()),
        (p + "partition", str(r.partition()).encode()),
        (p + "offset", str(r.offset()).encode()),
        (p + "timestamp", str(r.timestamp()[1]).encode()),
        (p + "stage", dl.stage.encode()),
        (p + "reason", dl.reason.encode()),
        (p + "class", dl.error.encode()[:200]),
        (p + "message", dl.message.encode()[:1000]),
    ]


def dead_letter_headers(dl: DeadLetter) -> Headers:
    """The original headers followed by the ``streamer.error.*`` context headers."""
    return [*(dl.record.headers() or []), *_context_headers(dl)]


def dead_letter_record(
    dl: DeadLetter, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES, *, bare: bool = False
) -> tuple[bytes, bytes | None, Headers]:
    """Value, key and headers of a dead letter, cut to fit ``max_bytes`` (see the module doc).

    Examples
    --------
    >>> from streamer.testing import FakeRecord
    >>> dl = DeadLetter(FakeRecord(b"x" * 5000, key=b"k"), "decode", "oversized", "E", "big")
    >>> value, key, headers = dead_letter_record(dl, max_bytes=2000)
    >>> len(value), key, dict(headers)["streamer.error.original.size"]
    (1574, b'k', b'5000')
    >>> value, key, headers = dead_letter_record(dl, bare=True)
    >>> value, key, dict(headers)["streamer.error.truncated"]
    (b'', None, b'value,key,headers')
    """
    r = dl.record
    value, key = r.value() or b"", r.key()
    context = _context_headers(dl)
    p = DEAD_LETTER_HEADER_PREFIX
    size = (p + "original.size", str(len(value)).encode())
    if not bare:
        headers = [*(r.headers() or []), *context]
        if record_size(key, value, headers) <= max_bytes:
            return value, key, headers
        headers = [*headers, size, (p + "truncated", b"value")]
        room = max_bytes - record_size(key, b"", headers)
        if room >= 0:
            return value[:room], key, headers
    return b"", None, [*context, size, (p + "truncated", b"value,key,headers")]


@dataclass(slots=True, frozen=True)
class _Bare:
    """The origin of a dead letter sent bare, after Kafka refused it whole."""

    dead_letter: DeadLetter


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
    max_message_bytes
        The producer's ``message.max.bytes``: dead letters are cut to fit it.
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
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.sink = sink
        self.max_message_bytes = max_message_bytes
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
            produce(out_topic, encode(doc), ev.id.encode(), origin=ev)
        return len(scored)

    def drift_events(self, events: Sequence[DriftEvent]) -> None:
        """Produce drift events keyed by ``topic/partition``, so each partition's stay in order.

        Non-finite values (a concept drift before any baseline) are null in JSON, NaN in Avro.
        """
        encode = self._drift_encoder.encode
        for ev in events:
            key = f"{ev.topic}/{ev.partition}".encode()
            self.sink.produce(self.drift_events_topic, encode(ev.as_dict()), key, origin=ev)

    def lifecycle(self, decisions: Sequence[Any], *, time: float) -> None:
        """Produce lifecycle decisions keyed by ``topic/partition`` (in order per partition)."""
        encode = self._lifecycle_encoder.encode
        for d in decisions:
            doc = {**d.as_dict(), "time": time}
            self.sink.produce(
                self.lifecycle_topic, encode(doc), f"{d.topic}/{d.partition}".encode(), origin=d
            )

    def dead_letters(self, dead: Sequence[DeadLetter]) -> None:
        """Produce each dead letter with its original key and value and the context headers
        (cut to fit ``max_message_bytes``)."""
        for dl in dead:
            value, key, headers = dead_letter_record(dl, self.max_message_bytes)
            self.sink.produce(self.dead_letters_topic, value, key, headers, origin=dl)

    def flush(
        self, timeout: float, *, waiting: Callable[[int, float], None] | None = None
    ) -> list[DeadLetter]:
        """Wait until every output is delivered, dealing with the ones Kafka refused.

        A refused prediction's input becomes a dead letter; a refused dead letter is sent
        again bare (see the module doc). Returns the dead letters made here (stage ``emit``),
        for the caller's counts. Raises :class:`DeliveryError` when outputs could not be
        delivered: the batch must then not be committed.
        """
        made: list[DeadLetter] = []
        refused = self.sink.flush(timeout, waiting=waiting)
        while refused:  # each round moves every refusal one step down: it ends
            for r in refused:
                self._refused(r, made)
            refused = self.sink.flush(timeout, waiting=waiting)
        return made

    def _refused(self, r: Refused, made: list[DeadLetter]) -> None:
        o = r.origin
        if isinstance(o, Event):
            reason = EMIT_REASONS[0] if "TOO_LARGE" in r.error else EMIT_REASONS[1]
            dl = DeadLetter(
                o.record,
                "emit",
                reason,
                r.error,
                f"its prediction ({r.size} bytes) was refused by topic {r.topic!r}: {r.message}",
            )
            made.append(dl)
            self.dead_letters([dl])
        elif isinstance(o, DeadLetter):
            value, key, headers = dead_letter_record(o, bare=True)
            self.sink.produce(self.dead_letters_topic, value, key, headers, origin=_Bare(o))
        elif isinstance(o, _Bare):
            rec = o.dead_letter.record
            raise DeliveryError(
                f"the dead letter of {rec.topic()}[{rec.partition()}]@{rec.offset()} was refused "
                f"by topic {r.topic!r} even bare: {r.error}: {r.message}"
            )
        else:  # a drift event or a lifecycle decision: no input to dead-letter
            log.error(
                "output to %s refused and dropped: %s: %s (%d bytes): %r",
                r.topic,
                r.error,
                r.message,
                r.size,
                o,
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
