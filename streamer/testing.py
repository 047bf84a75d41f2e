"""Helpers for tests of streamer and of code built on it: fake records and event factories.

They ship inside the package (as Bytewax does) so that most tests are short in-memory flows and
users can test their own model factories the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from river import base

from streamer.records import Event, Headers, MemoryRecord, Refused, record_size

__all__ = [
    "FakeRecord",
    "FragileClassifier",
    "HintClassifier",
    "ListSink",
    "Reference",
    "events_from",
    "json_records",
    "parsed",
    "read_committed_values",
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
    """A :class:`streamer.outputs.Sink` that keeps what it is given.

    ``refuse(topic, value, key, headers)`` may return an error name (``"MSG_SIZE_TOO_LARGE"``)
    for a record Kafka would refuse: the record is then not kept, and ``flush`` returns it as
    :class:`~streamer.records.Refused` with its origin, as :class:`streamer.kafka.KafkaSink`
    does.
    """

    def __init__(
        self, refuse: Callable[[str, bytes, bytes | None, Headers | None], str | None] | None = None
    ) -> None:
        self.records: list[tuple[str, bytes, bytes | None, Headers | None]] = []
        self.refuse = refuse
        self._refused: list[Refused] = []

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Headers | None = None,
        *,
        origin: Any = None,
    ) -> None:
        error = self.refuse(topic, value, key, headers) if self.refuse else None
        if error is None:
            self.records.append((topic, value, key, headers))
        else:
            size = record_size(key, value, headers)
            self._refused.append(Refused(topic, origin, error, f"refused: {error}", size))

    def flush(
        self, timeout: float = 0.0, *, waiting: Callable[[int, float], None] | None = None
    ) -> list[Refused]:
        refused, self._refused = self._refused, []
        return refused

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


class HintClassifier(base.Classifier):
    """A classifier that believes a hint: it predicts the boolean in feature ``hint`` (with
    probability 0.9) and learns nothing.

    For testing the model lifecycle on constructed streams, where the data decides which model
    is right when: use it as ``model.preset = "streamer.testing:hint_classifier"`` with
    ``[model.params] hint = "a"``, and a challenger with ``hint = "b"``.
    """

    def __init__(self, hint: str = "hint") -> None:
        self.hint = hint

    def learn_one(self, x: dict[Any, Any], y: Any, **kwargs: Any) -> None:
        pass

    def predict_proba_one(self, x: dict[Any, Any], **kwargs: Any) -> dict[Any, float]:
        p = 0.9 if x.get(self.hint) else 0.1
        return {False: 1.0 - p, True: p}


def hint_classifier(hint: str = "hint", seed: int = 0) -> HintClassifier:
    """A :class:`HintClassifier` (a ``module:factory`` for settings)."""
    return HintClassifier(hint)


def hinted_rows(
    n: int, spans: Sequence[tuple[int, float, float]], *, seed: int = 0
) -> list[dict[str, Any]]:
    """Rows whose hints ``a`` and ``b`` are right with given probabilities over spans of offsets.

    ``spans`` holds ``(start offset, P(a is right), P(b is right))``, in order; labels are
    fair coins and one noise feature goes with them.
    """
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        _, pa, pb = [s for s in spans if s[0] <= i][-1]
        y = rng.random() < 0.5
        a = y if rng.random() < pa else not y
        b = y if rng.random() < pb else not y
        rows.append({"id": f"e{i}", "a": a, "b": b, "noise": rng.random(), "label": y})
    return rows


def committed_count(settings: Any, partitions: int = 1) -> int:
    """How many events of the events topic's first ``partitions`` partitions the worker's group
    has committed (the sum of the committed offsets)."""
    from streamer import kafka

    got = kafka.group_committed(settings.kafka, settings.topics.events, range(partitions))
    return sum(max(offset, 0) for offset in got.values())


def read_committed_values(bootstrap: str, topic: str, partition: int = 0) -> list[bytes | None]:
    """The values of ``topic[partition]`` that belong to committed transactions (or to no
    transaction), read with Kafka's own rule: a transactional record counts once the
    transaction marker that follows it says commit.

    A ``read_committed`` consumer relies on the broker listing aborted transactions in its
    fetch responses; the embedded Tansu 0.6 broker always lists none, so its consumers show
    aborted records too. This reader fetches the raw record batches (Fetch v4,
    ``read_uncommitted``) from a single-broker cluster and applies the markers itself.
    Uncompressed batches only (the worker's default).
    """
    import socket
    import struct

    host, _, port = bootstrap.partition(",")[0].rpartition(":")

    def string(s: str) -> bytes:
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    def varint(buf: bytes, i: int) -> tuple[int, int]:
        shift = value = 0
        while True:
            byte = buf[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return (value >> 1) ^ -(value & 1), i

    def fetch(sock: socket.socket, offset: int) -> bytes:
        body = struct.pack(">iiiib", -1, 100, 1, 64 << 20, 0) + struct.pack(">i", 1)
        body += string(topic) + struct.pack(">iiqi", 1, partition, offset, 64 << 20)
        request = struct.pack(">hhi", 1, 4, 7) + string("streamer-test") + body
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        resp = _recv(sock, size)
        i = 4 + 4 + 4  # correlation id, throttle time, topics count
        i += 2 + struct.unpack_from(">h", resp, i)[0] + 4  # topic name, partitions count
        _, error = struct.unpack_from(">ih", resp, i)
        if error:
            raise RuntimeError(f"fetch error {error} on {topic}[{partition}]")
        i += 4 + 2 + 8 + 8
        aborted = struct.unpack_from(">i", resp, i)[0]
        i += 4 + max(aborted, 0) * 16
        length = struct.unpack_from(">i", resp, i)[0]
        return resp[i + 4 : i + 4 + length]

    pending: dict[int, list[bytes | None]] = {}  # producer id -> values of its open txn
    out: list[bytes | None] = []
    offset = 0
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        while True:
            data = fetch(sock, offset)
            i, moved = 0, False
            while i + 61 <= len(data):
                base, length = struct.unpack_from(">qi", data, i)
                if i + 12 + length > len(data):
                    break  # a partial batch at the end of the response
                attributes = struct.unpack_from(">h", data, i + 21)[0]
                last_delta = struct.unpack_from(">i", data, i + 23)[0]
                producer = struct.unpack_from(">q", data, i + 43)[0]
                count = struct.unpack_from(">i", data, i + 57)[0]
                if attributes & 0x07:
                    raise RuntimeError("compressed batches are not supported here")
                j, values = i + 61, []
                for _ in range(count):
                    _, j = varint(data, j)  # record length
                    j += 1  # attributes
                    _, j = varint(data, j)  # timestamp delta
                    _, j = varint(data, j)  # offset delta
                    klen, j = varint(data, j)
                    key = data[j : j + klen] if klen >= 0 else None
                    j += max(klen, 0)
                    vlen, j = varint(data, j)
                    values.append(data[j : j + vlen] if vlen >= 0 else None)
                    j += max(vlen, 0)
                    headers, j = varint(data, j)
                    for _ in range(headers):
                        hk, j = varint(data, j)
                        j += hk
                        hv, j = varint(data, j)
                        j += max(hv, 0)
                    if attributes & 0x20 and key is not None:  # a transaction marker
                        committed = struct.unpack_from(">h", key, 2)[0] == 1
                        done = pending.pop(producer, [])
                        if committed:
                            out.extend(done)
                if not attributes & 0x20:
                    if attributes & 0x10:
                        pending.setdefault(producer, []).extend(values)
                    else:
                        out.extend(values)
                offset = base + last_delta + 1
                i += 12 + length
                moved = True
            if not moved:
                return out


def _recv(sock: Any, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        buf += chunk
    return buf
