"""Fuzz: seeded hostile input interleaved with good events, through one worker and a real broker.

Every record falls in one of four kinds, decided when the stream is made:

* **good**: a labelled Phishing event (id ``g<i>``);
* **odd**: a valid event the data should not be able to grow the worker with (hundreds of
  random field names, names of thousands of characters): it is predicted, but only the first
  ``fields.max_features`` short names ever become model inputs;
* **bad**: a poison with a known fate (the attacks of issue 8 and the classic malformed
  inputs): dead-lettered with its stage and reason;
* **noise**: seeded random bytes and mutations of valid records (flipped, inserted, deleted
  bytes, truncation): whatever they decode to, each is either predicted or dead-lettered,
  exactly once.

The worker must end alive, with every good event predicted exactly once (counted by offset and
id), every record accounted for, the model's accuracy on the good events within 2 points of a
clean run over the good events alone, and drift events and /metrics of bounded size.

Nothing is replayed here: one worker, one partition, no kill, no rebalance, so "exactly once"
is checked exactly. A replay (outputs are at-least-once) would show as a duplicate and fail.
"""

from __future__ import annotations

import math
import random
import struct
import threading
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from river import datasets

from streamer import kafka
from streamer.decode import AvroEncoder, load_schema
from streamer.metrics import MetricsServer
from streamer.models import build_model
from streamer.outputs import EMIT_REASONS
from streamer.prequential import ModelSlot, prequential
from streamer.testing import events_from, wait_for
from streamer.validate import REASONS
from streamer.worker import Worker

pytestmark = pytest.mark.integration

SCHEMA = Path(__file__).parents[2] / "schemas" / "phishing.avsc"
GOOD = 1250  # all of Phishing
SEED = 20261127
# (kind, expected (stage, reason) for bad records, key, value, headers)
Item = tuple[
    str, tuple[str, str] | None, bytes | None, bytes | None, list[tuple[str, bytes]] | None
]


def _rows() -> list[dict[str, Any]]:
    return [{"id": f"g{i}", **x, "label": y} for i, (x, y) in enumerate(datasets.Phishing())]


def _mutate(rng: random.Random, value: bytes) -> bytes:
    """One to three random edits: flip, insert, delete a byte, or cut the tail."""
    data = bytearray(value)
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(("flip", "insert", "delete", "cut"))
        at = rng.randrange(max(len(data), 1))
        if op == "flip" and data:
            data[at] ^= 1 << rng.randrange(8)
        elif op == "insert":
            data.insert(at, rng.randrange(256))
        elif op == "delete" and data:
            del data[at]
        elif op == "cut":
            del data[at:]
    return bytes(data)


def _noise(rng: random.Random, valid: list[bytes], n: int) -> list[Item]:
    out: list[Item] = []
    for i in range(n):
        if i % 3 == 0:
            value = rng.randbytes(rng.choice((0, 1, 5, 40, 300, 5000)))
        else:
            value = _mutate(rng, rng.choice(valid))
        out.append(("noise", None, f"n{i}".encode(), value, None))
    return out


def _word(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))


def _json_stream(rng: random.Random, rows: list[dict[str, Any]]) -> list[Item]:
    base = {k: v for k, v in rows[0].items() if k not in ("id", "label")}
    long_names = {_word(rng, 10_000): 1.0 for _ in range(60)}

    def bad(reason: tuple[str, str], value: bytes | None, key: bytes = b"bad") -> Item:
        return ("bad", reason, key, value, [("fuzz", reason[1].encode())])

    def padded(obj: dict[str, Any], size: int) -> bytes:
        filler = size - len(orjson.dumps({**obj, "pad": ""}))
        return orjson.dumps({**obj, "pad": "x" * filler})

    poison = [
        # The three records of the issue that crash-looped the worker.
        bad(("validate", "missing_id"), padded({"label": True}, 1_010_047)),
        bad(("decode", "oversized"), padded({"id": "big", "label": True}, 1_100_058)),
        bad(
            ("validate", "id_too_long"), orjson.dumps({"id": "i" * 600_000, **base}), b"i" * 600_000
        ),
        # Magnitudes that poison a model for good.
        bad(("validate", "out_of_range"), orjson.dumps({"id": "b1", **base, "https": 1e308})),
        bad(("validate", "out_of_range"), orjson.dumps({"id": "b2", **base, "https": -1e13})),
        bad(("validate", "out_of_range"), b'{"id": "b3", "https": 100000000000000000000000000000}'),
        bad(("decode", "undecodable"), b'{"id": "b4", "https": NaN}'),
        # Labels outside a binary task.
        bad(("validate", "unknown_class"), orjson.dumps({"id": "b5", **base, "label": 2})),
        bad(("validate", "bad_label"), orjson.dumps({"id": "b6", **base, "label": 0.5})),
        bad(("validate", "unknown_class"), orjson.dumps({"id": "b7", **base, "label": "yes"})),
        bad(("validate", "bad_label"), orjson.dumps({"id": "b8", **base, "label": [True]})),
        # Field names by the thousand, and of thousands of characters (no id: dead letters,
        # but the schema monitor sees every one of them).
        bad(
            ("validate", "missing_id"),
            orjson.dumps({**base, **{f"f{j}": 1 for j in range(10_000)}}),
        ),
        bad(("validate", "missing_id"), orjson.dumps({**base, **long_names})),
        # The classics.
        bad(("validate", "wrong_type"), orjson.dumps({"id": "b9", **base, "https": "1.0"})),
        bad(("validate", "wrong_type"), orjson.dumps({"id": "b10", **base, "https": {"a": 1}})),
        bad(("validate", "missing_id"), orjson.dumps({"id": True, **base})),
        bad(("validate", "missing_id"), orjson.dumps({"id": [1], **base})),
        bad(("decode", "undecodable"), b"[" * 5000 + b"]" * 5000),
        bad(("decode", "undecodable"), b"[1, 2, 3]"),
        bad(("decode", "undecodable"), b"42"),
        bad(("decode", "undecodable"), b'{"id": "\xff\xfe"}'),
        bad(("decode", "undecodable"), b""),
        bad(("decode", "empty"), None),
    ]
    odd: list[Item] = [
        (
            "odd",
            None,
            b"odd",
            orjson.dumps({"id": f"o{i}", **base, **{_word(rng, 12): 1.0 for _ in range(1000)}}),
            None,
        )
        for i in range(5)
    ]
    odd.append(("odd", None, b"odd", orjson.dumps({"id": "o-long", **base, **long_names}), None))
    valid = [orjson.dumps({**r, "id": f"m{i}"}) for i, r in enumerate(rows[:200])]
    return poison + odd + _noise(rng, valid, 120)


def _avro_stream(rng: random.Random, rows: list[dict[str, Any]]) -> list[Item]:
    enc = AvroEncoder(load_schema(SCHEMA))
    row = {**rows[0], "id": "b"}

    def bad(reason: tuple[str, str], value: bytes) -> Item:
        return ("bad", reason, b"bad", value, [("fuzz", reason[1].encode())])

    def with_double(name: str, x: float) -> bytes:
        return enc.encode({**row, name: x})

    poison = [
        bad(("decode", "oversized"), enc.encode({**row, "id": "o" * 1_100_000})),
        bad(("validate", "id_too_long"), enc.encode({**row, "id": "i" * 1_010_000})),
        bad(("validate", "id_too_long"), enc.encode({**row, "id": "i" * 600_000})),
        bad(("validate", "out_of_range"), with_double("https", 1e308)),
        bad(("validate", "out_of_range"), with_double("popup_window", 4.2e298)),
        bad(("validate", "non_finite"), with_double("https", math.nan)),
        bad(("validate", "non_finite"), with_double("https", -math.inf)),
        bad(("validate", "out_of_range"), enc.encode({**row, "age_of_domain": 2**62})),
        bad(("validate", "missing_id"), enc.encode({**row, "id": ""})),
        bad(("decode", "undecodable"), enc.encode(row)[:-4]),
        bad(("decode", "undecodable"), enc.encode(row) + b"\x00\x01"),
        bad(("decode", "undecodable"), b""),
        # One flipped bit of the exponent: 0.5 becomes 2**1023.
        bad(("validate", "out_of_range"), _flip_exponent(enc, {**row, "popup_window": 0.5})),
    ]
    valid = [enc.encode({**r, "id": f"m{i}"}) for i, r in enumerate(rows[:200])]
    return poison + _noise(rng, valid, 120)


def _flip_exponent(enc: AvroEncoder, row: dict[str, Any]) -> bytes:
    data = bytearray(enc.encode(row))
    half = struct.pack("<d", 0.5)
    at = data.index(half, 1 + len(row["id"]) + 8)  # popup_window, after the first double
    data[at + 7] ^= 0x40
    return bytes(data)


def _interleave(rng: random.Random, good: list[Item], other: list[Item]) -> list[Item]:
    """``good`` in order, the others shuffled into seeded random places."""
    other = list(other)
    rng.shuffle(other)
    n = len(good) + len(other)
    at = set(rng.sample(range(n), len(other)))
    g, o = iter(good), iter(other)
    return [next(o) if i in at else next(g) for i in range(n)]


def _clean_predictions(rows: list[dict[str, Any]]) -> list[Any]:
    slot = ModelSlot(build_model("logistic_regression", seed=42), metrics=["Accuracy"])
    pairs = [({k: v for k, v in r.items() if k not in ("id", "label")}, r["label"]) for r in rows]
    out = prequential([slot], list(events_from(pairs)))
    return [y_pred for _, y_pred, _ in out.scored]


@pytest.mark.parametrize("fmt", ["json", "avro"])
def test_fuzz(make_settings, fmt):
    rng = random.Random(f"{SEED}-{fmt}")
    rows = _rows()
    input_settings: dict[str, Any] = {"format": fmt}
    if fmt == "avro":
        input_settings["avro"] = {"schema": str(SCHEMA), "framing": "plain"}
        encode = AvroEncoder(load_schema(SCHEMA)).encode
        other = _avro_stream(rng, rows)
    else:
        encode = orjson.dumps
        other = _json_stream(rng, rows)
    good: list[Item] = [("good", None, r["id"].encode(), encode(r), None) for r in rows]
    stream = _interleave(rng, good, other)
    settings = make_settings(
        input=input_settings,
        drift={"windows": {"reference_size": 200, "window_size": 200, "every": 100}},
        worker={"batch_size": 100},
    )
    worker = Worker(settings)
    worker.provision_topics()
    producer = kafka.make_producer(
        settings.kafka.model_copy(update={"producer": {"message.max.bytes": 2_000_000}})
    )
    for _, _, key, value, headers in stream:
        producer.produce(settings.topics.events, value, key, headers=headers)
        producer.poll(0)
    assert producer.flush(60) == 0

    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # the worker died: the test says how
            failure.append(exc)

    thread = threading.Thread(target=run, name="fuzzed-worker", daemon=True)
    thread.start()
    server = MetricsServer(worker.metrics.registry, host="127.0.0.1", port=0)
    try:
        wait_for(
            lambda: failure or worker.processed >= len(stream),
            timeout=120,
            what=f"{len(stream)} records processed",
        )
        assert not failure, failure
        assert thread.is_alive(), "the worker stopped"
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
            metrics_text = r.read().decode()
    finally:
        server.close()
        worker.stop()
        thread.join(60)
    assert not failure, failure

    # Everything is delivered: a batch counts as processed once its outputs are.
    def read(topic: str) -> list[Any]:
        return kafka.read_to_end(settings.kafka, topic, [0])

    predictions = [orjson.loads(m.value()) for m in read(settings.topics.predictions)]
    dead = read(settings.topics.dead_letters)
    assert len(dead) == worker.dead_total
    by_offset: dict[int, list[dict[str, Any]]] = {}
    for p in predictions:
        by_offset.setdefault(p["offset"], []).append(p)
    dead_at: dict[int, list[dict[str, bytes]]] = {}
    for m in dead:
        h = dict(m.headers() or [])
        dead_at.setdefault(int(h["streamer.error.offset"]), []).append(h)
    known = {*REASONS, *EMIT_REASONS, "empty", "oversized", "undecodable", "unknown_schema"}
    known |= {"model_error", "non_finite_output"}

    kinds = Counter(kind for kind, *_ in stream)
    good_preds = []
    for offset, (kind, expected, _, _, _) in enumerate(stream):
        preds, dls = by_offset.get(offset, []), dead_at.get(offset, [])
        for h in dls:
            assert h["streamer.error.reason"].decode() in known, (offset, h)
        if kind == "good":
            # Exactly once, under its own id, and never dead-lettered.
            assert len(preds) == 1 and not dls, (offset, preds, dls)
            assert preds[0]["event_id"] == f"g{len(good_preds)}"
            good_preds.append(preds[0])
        elif kind == "odd":
            assert len(preds) == 1 and not dls, (offset, preds, dls)
        elif kind == "bad":
            assert not preds, (offset, expected, preds)
            assert len(dls) == 1, (offset, expected, dls)
            h = dls[0]
            got = (h["streamer.error.stage"].decode(), h["streamer.error.reason"].decode())
            assert got == expected, (offset, got, expected, h["streamer.error.message"][:200])
            assert h["fuzz"] == expected[1].encode()  # the original headers travel along
        else:  # noise: one fate, whatever it decoded to
            assert len(preds) + len(dls) == 1, (offset, preds, dls)
    assert len(good_preds) == GOOD

    # Accuracy on the good events: within 2 points of the same model on them alone.
    clean = _clean_predictions(rows)
    labels = [r["label"] for r in rows]
    fuzzed = sum(p["prediction"] == y for p, y in zip(good_preds, labels, strict=True)) / GOOD
    alone = sum(p == y for p, y in zip(clean, labels, strict=True)) / GOOD
    assert abs(fuzzed - alone) <= 0.02, (fuzzed, alone)
    assert alone > 0.85

    # What the data cannot grow: model inputs, drift events, /metrics.
    (state,) = worker.states.values()
    assert len(state.admitted.features) <= settings.fields.max_features
    assert all(len(n) <= settings.fields.max_name_length for n in state.admitted.features)
    assert list(state.admitted.classes) in ([True, False], [False, True])
    drift = read(settings.topics.drift_events)
    assert len(drift) == worker.drift_total < 400, len(drift)
    assert max((len(m.value()) for m in drift), default=0) < 2000
    assert len(metrics_text) < 100_000, len(metrics_text)
    lines = [line for line in metrics_text.splitlines() if not line.startswith("#")]
    assert max(len(line) for line in lines) < 400
    print(
        f"\n{fmt}: {len(stream)} records ({dict(kinds)}), {len(predictions)} predictions, "
        f"{len(dead)} dead letters, {len(drift)} drift events, /metrics {len(metrics_text)} "
        f"bytes, accuracy {fuzzed:.4f} vs {alone:.4f} clean, "
        f"{len(state.admitted.features)} features"
    )
