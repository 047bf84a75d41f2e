"""No input can crash, stall or poison a worker: each attack of issue 8, through a real broker."""

from __future__ import annotations

import io
import itertools
import math
import os
import random
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import fastavro
import orjson
import pytest
from river import datasets

from streamer import kafka
from streamer.broker import EmbeddedBroker, free_port
from streamer.decode import AvroEncoder, load_schema
from streamer.metrics import MetricsServer
from streamer.models import build_model
from streamer.prequential import ModelSlot, prequential
from streamer.testing import events_from, read_topic, wait_for
from streamer.worker import Worker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
SCHEMAS = ROOT / "schemas"


def _headers(msg) -> dict[str, bytes]:
    return dict(msg.headers() or [])


def _send(settings, items) -> None:
    """items: (key, value, headers); produced as a plain client would, in order (records of up
    to 2 MB: the test's producer is not the worker's)."""
    producer = kafka.make_producer(
        settings.kafka.model_copy(update={"producer": {"message.max.bytes": 2_000_000}})
    )
    for key, value, headers in items:
        producer.produce(settings.topics.events, value, key, headers=headers)
        producer.poll(0)
    assert producer.flush(60) == 0


def _good(i: int) -> bytes:
    return orjson.dumps({"id": f"g{i}", "a": i % 7 / 7, "b": (i * 3) % 5 / 5, "label": i % 2 == 0})


def _sized(obj: dict, size: int, pad: str = "pad") -> bytes:
    """``obj`` with a padding field that makes its JSON exactly ``size`` bytes."""
    base = len(orjson.dumps({**obj, pad: ""}))
    value = orjson.dumps({**obj, pad: "x" * (size - base)})
    assert len(value) == size
    return value


def test_outputs_never_exceed_what_the_broker_accepts(make_settings):
    """The three records of the issue crash-looped the worker with MSG_SIZE_TOO_LARGE."""
    settings = make_settings(fields={"features": ["a", "b"]}, worker={"batch_size": 3})
    worker = Worker(settings)
    worker.provision_topics()
    no_id = _sized({"a": 1.0, "b": 1.0}, 1_010_047)  # under input.max_record_bytes
    oversized = _sized({"id": "o", "a": 1.0, "b": 1.0}, 1_100_058)  # over it
    long_id = "i" * 600_000
    valid_long_id = orjson.dumps({"id": long_id, "a": 1.0, "b": 1.0, "label": True})
    items = [
        (b"g0", _good(0), None),
        (b"no-id", no_id, [("trace", b"t-1")]),
        (b"g1", _good(1), None),
        (b"oversized", oversized, [("trace", b"t-2")]),
        (long_id.encode(), valid_long_id, [("trace", b"t-3")]),  # keyed by id, as produce does
        (b"g2", _good(2), None),
    ]
    _send(settings, items)
    worker.run(max_events=len(items))  # on main: KafkaException MSG_SIZE_TOO_LARGE

    preds = read_topic(settings.kafka, settings.topics.predictions, 3)
    assert [orjson.loads(m.value())["event_id"] for m in preds] == ["g0", "g1", "g2"]
    dead = {
        _headers(m)["streamer.error.offset"]: m
        for m in read_topic(settings.kafka, settings.topics.dead_letters, 3)
    }
    assert sorted(dead) == [b"1", b"3", b"4"]
    expected = {
        b"1": ("validate", "missing_id", no_id, b"no-id", b"t-1"),
        b"3": ("decode", "oversized", oversized, b"oversized", b"t-2"),
        b"4": ("validate", "id_too_long", valid_long_id, long_id.encode(), b"t-3"),
    }
    limit = kafka.message_max_bytes(settings.kafka)
    for offset, (stage, reason, original, key, trace) in expected.items():
        msg = dead[offset]
        h = _headers(msg)
        assert (h["streamer.error.stage"], h["streamer.error.reason"]) == (
            stage.encode(),
            reason.encode(),
        )
        # Key and headers kept; the value cut to what fits, its original size said.
        assert msg.key() == key and h["trace"] == trace
        assert h["streamer.error.truncated"] == b"value"
        assert h["streamer.error.original.size"] == str(len(original)).encode()
        assert original.startswith(msg.value()) and len(msg.value()) < len(original)
        assert len(msg.value()) + len(msg.key()) < limit
    assert b"600000 characters" in _headers(dead[b"4"])["streamer.error.message"]


def test_a_prediction_the_broker_refuses_dead_letters_its_input(make_settings):
    """Any produce error of one record becomes a dead letter of its input, never a crash."""
    settings = make_settings(
        fields={"features": ["a", "b"], "max_id_length": 3000},
        kafka={"producer": {"message.max.bytes": 4000}},
        checkpoint={"chunk_bytes": 2048},
        models={"chunk_bytes": 2048},
    )
    worker = Worker(settings)
    worker.provision_topics()
    big_id = "j" * 2500  # valid, but its prediction (key + value) is over 4000 bytes
    big = orjson.dumps({"id": big_id, "a": 0.5, "b": 0.5, "label": True})
    items = [
        (b"g0", _good(0), None),
        (b"big", big, [("trace", b"t")]),
        (b"g1", _good(1), None),
    ]
    _send(settings, items)
    worker.run(max_events=len(items))  # on main: KafkaException MSG_SIZE_TOO_LARGE
    preds = read_topic(settings.kafka, settings.topics.predictions, 2)
    assert [orjson.loads(m.value())["event_id"] for m in preds] == ["g0", "g1"]
    (dead,) = read_topic(settings.kafka, settings.topics.dead_letters, 1)
    h = _headers(dead)
    assert (h["streamer.error.stage"], h["streamer.error.reason"]) == (b"emit", b"output_too_large")
    assert h["streamer.error.class"] == b"MSG_SIZE_TOO_LARGE"
    assert h["streamer.error.offset"] == b"1" and h["trace"] == b"t"
    assert dead.key() == b"big" and dead.value() == big  # the input, whole: it fits
    assert (
        worker.metrics.registry.get_sample_value(
            "streamer_dead_letters_total",
            {"topic": settings.topics.events, "stage": "emit", "reason": "output_too_large"},
        )
        == 1
    )
    # The event was scored and learned from; only its prediction is missing.
    (state,) = worker.states.values()
    assert state.champion.n_learned == 3


def _phishing_rows(n: int) -> list[dict]:
    return [
        {"id": f"p{i}", **x, "label": y}
        for i, (x, y) in enumerate(itertools.islice(datasets.Phishing(), n))
    ]


def _clean_accuracy(rows: list[dict]) -> float:
    p = ModelSlot(build_model("logistic_regression", seed=42), metrics=["Accuracy"])
    events = [({k: v for k, v in r.items() if k not in ("id", "label")}, r["label"]) for r in rows]
    prequential([p], list(events_from(events)))
    return float(p.evaluation.running["Accuracy"].get())


def test_one_absurd_number_never_reaches_the_model_json(make_settings):
    """One finite 1e308 made every later probability NaN: 994/1000 right became 525/1000."""
    settings = make_settings(worker={"batch_size": 100})
    worker = Worker(settings)
    worker.provision_topics()
    rows = _phishing_rows(1000)
    poison = {**rows[200], "id": "poison", "https": 1e308}
    values = [orjson.dumps(r) for r in rows[:200]] + [orjson.dumps(poison)]
    values += [orjson.dumps(r) for r in rows[200:]]
    _send(settings, [(None, v, None) for v in values])
    worker.run(max_events=len(values))

    (dead,) = read_topic(settings.kafka, settings.topics.dead_letters, 1)
    h = _headers(dead)
    assert (h["streamer.error.reason"], h["streamer.error.offset"]) == (b"out_of_range", b"200")
    assert b"input.max_abs_value" in h["streamer.error.message"]
    preds = [
        orjson.loads(m.value())
        for m in read_topic(settings.kafka, settings.topics.predictions, 1000)
    ]
    assert all(p["proba"] is not None and None not in p["proba"].values() for p in preds[1:])
    (state,) = worker.states.values()
    # Exactly the model of the stream without the poison.
    assert state.champion.evaluation.running["Accuracy"].get() == _clean_accuracy(rows)


def test_one_flipped_avro_byte_never_reaches_the_model(make_settings):
    """In Avro, one flipped byte decoded a double of 4.2e298."""
    schema_path = SCHEMAS / "phishing.avsc"
    settings = make_settings(
        input={"format": "avro", "avro": {"schema": str(schema_path), "framing": "plain"}},
        worker={"batch_size": 100},
    )
    worker = Worker(settings)
    worker.provision_topics()
    encoder = AvroEncoder(load_schema(schema_path))
    rows = _phishing_rows(600)
    values = [encoder.encode(r) for r in rows]
    # Row 300's popup_window is 0.5, the 8 bytes after the id and empty_server_form_handler;
    # one bit of its top byte (the exponent) makes it 2**1023.
    assert rows[300]["popup_window"] == 0.5
    at = 1 + len(rows[300]["id"]) + 8 + 8
    flipped = bytearray(values[300])
    flipped[at - 1] ^= 0x40
    decoded = fastavro.schemaless_reader(io.BytesIO(bytes(flipped)), load_schema(schema_path))
    assert math.isfinite(decoded["popup_window"]) and decoded["popup_window"] > 1e300
    values[300] = bytes(flipped)
    _send(settings, [(None, v, None) for v in values])
    worker.run(max_events=len(values))
    (dead,) = read_topic(settings.kafka, settings.topics.dead_letters, 1)
    assert _headers(dead)["streamer.error.reason"] == b"out_of_range"
    (state,) = worker.states.values()
    assert state.champion.evaluation.running["Accuracy"].get() == _clean_accuracy(
        rows[:300] + rows[301:]
    )


def _metrics_text(registry) -> str:
    server = MetricsServer(registry, host="127.0.0.1", port=0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
            return r.read().decode()
    finally:
        server.close()


def _label_values(text: str) -> list[str]:
    import re

    return re.findall(r'="((?:[^"\\]|\\.)*)"', text)


def test_field_names_from_the_data_cannot_grow_the_model_drift_events_or_metrics(make_settings):
    """Random field names took RSS from 157 to 287 MB; one record with 10,000 new fields made
    10,000 drift events; 60 fields with 10,000-character names made /metrics 2.5 MB."""
    every = 50
    settings = make_settings(
        drift={"windows": {"reference_size": every, "window_size": every, "every": every}},
        worker={"batch_size": 100},
    )
    worker = Worker(settings)
    worker.provision_topics()
    rng = random.Random(8)

    def word(n: int) -> str:
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(n))

    long_names = [word(1000) for _ in range(60)]

    def base(i: int) -> dict:
        # Every record has the long names: on main they were features, watched and exported.
        row = {"id": f"e{i}", "a": rng.random(), "b": rng.random(), "label": i % 2 == 0}
        return {**row, **dict.fromkeys(long_names, 1.0)}

    rows = [base(i) for i in range(100)]
    rows += [{**base(i), **{word(12): 1.0 for _ in range(500)}} for i in range(100, 300)]
    rows += [{**base(300), **{f"n{j}": 1 for j in range(10_000)}}]
    rows += [base(i) for i in range(301, 400)]
    _send(settings, [(None, orjson.dumps(r), None) for r in rows])
    worker.run(max_events=len(rows))

    (state,) = worker.states.values()
    admitted = state.admitted.features
    # The model's inputs: a, b and the first random names, up to fields.max_features.
    assert len(admitted) == settings.fields.max_features
    assert list(admitted)[:2] == ["a", "b"]
    assert set(state.champion.model["StandardScaler"].counts) == set(admitted)
    assert all(len(n) <= settings.fields.max_name_length for n in admitted)

    drift = read_topic(settings.kafka, settings.topics.drift_events, worker.drift_total)
    events = [orjson.loads(m.value()) for m in drift]
    # Per period, at most max_new_fields (20) names + (other) change level, up and back down.
    periods = len(rows) // every
    assert worker.drift_total <= periods * 2 * 21 + 50, worker.drift_total
    schema = [e for e in events if e["signal"] == "schema"]
    assert schema and all(0.0 <= e["value"] <= 1.0 for e in schema)
    assert all(len(e["feature"]) <= settings.fields.max_name_length for e in events)
    assert max(len(m.value()) for m in drift) < 2000

    text = _metrics_text(worker.metrics.registry)
    assert len(text) < 100_000, len(text)
    assert max(len(v) for v in _label_values(text)) <= settings.fields.max_name_length
    rates = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streamer_drift_statistic{") and 'statistic="new_field_rate"' in line
    ]
    assert rates and all(0.0 <= r <= 1.0 for r in rates), rates


def test_labels_outside_a_binary_task_are_dead_lettered(make_settings):
    """A binary classifier learned labels 2 and 0.5 silently."""
    settings = make_settings(fields={"features": ["a"]})
    worker = Worker(settings)
    worker.provision_topics()
    labels = [True, False, True, 2, 0.5, False, "yes", True]
    values = [orjson.dumps({"id": f"e{i}", "a": i / 8, "label": y}) for i, y in enumerate(labels)]
    _send(settings, [(None, v, None) for v in values])
    worker.run(max_events=len(values))
    dead = read_topic(settings.kafka, settings.topics.dead_letters, 3)
    assert {
        (_headers(m)["streamer.error.offset"], _headers(m)["streamer.error.reason"]) for m in dead
    } == {
        (b"3", b"unknown_class"),
        (b"4", b"bad_label"),
        (b"6", b"unknown_class"),
    }
    (state,) = worker.states.values()
    assert state.champion.n_learned == 5
    assert list(state.admitted.classes) == [True, False]


def test_declared_classes_and_multiclass_default_metrics(make_settings):
    """A multi-class preset with the binary defaults exported F1 0.0 and LogLoss 34.5."""
    classes = ["brickface", "cement", "foliage", "grass", "path", "sky", "window"]
    settings = make_settings(
        model={"preset": "softmax_regression"},
        evaluation={"classes": classes[:-1]},  # window is not declared: dead-lettered
        worker={"batch_size": 200},
    )
    worker = Worker(settings)
    worker.provision_topics()
    rows = [
        {"id": f"s{i}", **x, "label": y}
        for i, (x, y) in enumerate(itertools.islice(datasets.ImageSegments(), 1000))
    ]
    _send(settings, [(None, orjson.dumps(r), None) for r in rows])
    worker.run(max_events=len(rows))
    windows = [i for i, r in enumerate(rows) if r["label"] == "window"]
    dead = read_topic(settings.kafka, settings.topics.dead_letters, len(windows))
    assert sorted(int(_headers(m)["streamer.error.offset"]) for m in dead) == windows
    assert {_headers(m)["streamer.error.reason"] for m in dead} == {b"unknown_class"}
    samples = [
        s
        for metric in worker.metrics.registry.collect()
        if metric.name == "streamer_model_metric"
        for s in metric.samples
    ]
    assert {s.labels["metric"] for s in samples} == {"Accuracy", "MacroF1", "CrossEntropy"}
    (macro,) = (
        s.value
        for s in samples
        if s.labels["metric"] == "MacroF1" and s.labels["window"] == "running"
    )
    assert macro > 0.3


def _stream(proc: subprocess.Popen[str], lines: list[str]) -> threading.Thread:
    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t


def test_an_unreachable_broker_is_one_clear_line_per_attempt_until_it_answers(make_settings):
    """It hung forever printing about 20 librdkafka lines a second."""
    port = free_port()
    settings = make_settings()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")},
        "STREAMER_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "STREAMER_KAFKA__GROUP_ID": settings.kafka.group_id,
        "STREAMER_KAFKA__CONSUMER__SESSION_TIMEOUT_MS": "6000",
        "STREAMER_KAFKA__CONSUMER__HEARTBEAT_INTERVAL_MS": "500",
        "STREAMER_TOPICS__EVENTS": settings.topics.events,
        "STREAMER_TOPICS__PREDICTIONS": settings.topics.predictions,
        "STREAMER_TOPICS__DEAD_LETTERS": settings.topics.dead_letters,
        "STREAMER_TOPICS__DRIFT_EVENTS": settings.topics.drift_events,
        "STREAMER_PROMETHEUS__PORT": "0",
        "STREAMER_SECURITY__SIGNING_KEY": settings.security.signing_key,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = _stream(proc, lines)
    broker = EmbeddedBroker(port=port)
    try:
        unreachable = f"not accepting connections: 127.0.0.1:{port} (Connection refused)"
        wait_for(
            lambda: sum(unreachable in line for line in lines) >= 2,
            timeout=60,
            what="two clear lines naming the server",
        )
        broker.start()
        wait_for(
            lambda: any("assigned [(" in line for line in lines), timeout=60, what="an assignment"
        )
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        proc.kill()
        broker.stop()
    reader.join(10)
    assert proc.returncode == 0, "".join(lines)
    assert any("Kafka cluster reachable after" in line for line in lines)
    attempts = sum("Kafka cluster unreachable (attempt" in line for line in lines)
    librdkafka = [line for line in lines if "streamer.librdkafka" in line]
    # One line per attempt, not twenty a second; librdkafka's own lines held back.
    assert len(librdkafka) <= 2 * attempts + 5, "".join(lines)
    assert len(lines) < 4 * attempts + 20, "".join(lines)
