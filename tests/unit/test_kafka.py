"""The Kafka edge without a broker: refusals, librdkafka's log lines, configuration."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, Producer

from streamer import kafka
from streamer.errors import ConfigError, DeliveryError
from streamer.records import MemoryRecord
from streamer.settings import load_settings

NOWHERE = "127.0.0.1:9"


def _sink(**conf) -> kafka.KafkaSink:
    return kafka.KafkaSink(Producer({"bootstrap.servers": NOWHERE, "log_level": 0, **conf}))


def test_a_record_librdkafka_refuses_at_once_comes_back_with_its_origin():
    sink = _sink(**{"message.max.bytes": 1000})
    sink.produce("t", b"x" * 2000, b"k", origin="the input")
    (refused,) = sink.flush(0.1)
    assert (refused.topic, refused.origin, refused.error) == (
        "t",
        "the input",
        "MSG_SIZE_TOO_LARGE",
    )
    assert refused.size > 2000
    assert sink.flush(0.1) == []  # handed over once


def test_without_an_origin_a_refusal_fails_the_flush():
    sink = _sink(**{"message.max.bytes": 1000})
    sink.produce("t", b"x" * 2000)
    with pytest.raises(DeliveryError, match="1 output record.s. refused.*Message size too large"):
        sink.flush(0.1)


def test_a_broker_refusal_in_a_delivery_report_is_the_records_own_or_the_batchs():
    sink = _sink()
    msg = MemoryRecord(b"v" * 10, key=b"k", topic="preds")
    sink._delivered("origin", KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), msg)
    sink._delivered("other", KafkaError(KafkaError.INVALID_RECORD), msg)
    assert [(r.origin, r.error) for r in sink.flush(0.1)] == [
        ("origin", "MSG_SIZE_TOO_LARGE"),
        ("other", "INVALID_RECORD"),
    ]
    # The cluster's problems are not one record's: the batch fails, uncommitted.
    sink._delivered("origin", KafkaError(KafkaError._MSG_TIMED_OUT), msg)
    with pytest.raises(DeliveryError, match="preds"):
        sink.flush(0.1)


def _line(text: str, client: str = "rdkafka#consumer-1", fac: str = "FAIL") -> logging.LogRecord:
    return logging.LogRecord(
        "streamer.librdkafka", 40, "", 0, "%s [%s] %s", (fac, client, text), None
    )


def test_repeated_librdkafka_lines_are_held_back_and_counted(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(kafka.time, "monotonic", lambda: now[0])
    f = kafka._Repeats(interval=60)
    refused = "Connect to ipv4#127.0.0.1:9 failed: Connection refused (after {}ms in state CONNECT)"
    passed = []
    for i in range(1200):  # 20 a second for a minute
        line = _line(refused.format(i % 3))
        if f.filter(line):
            passed.append(line.getMessage())
        now[0] += 0.05
    assert len(passed) == 1
    # Another client, or another message, is not held back by it.
    assert f.filter(_line(refused.format(0), client="rdkafka#producer-2"))
    assert f.filter(_line("Broker: Not coordinator", fac="COORD"))
    now[0] += 1
    later = _line(refused.format(7))
    assert f.filter(later)
    assert later.getMessage().endswith("(1199 similar line(s) held back)")


def test_clients_log_through_python_logging_at_its_level(caplog):
    s = load_settings(env={"STREAMER_KAFKA__BOOTSTRAP_SERVERS": NOWHERE})
    conf = kafka.producer_config(s.kafka)
    assert conf["logger"] is kafka.client_log
    kafka.client_log.setLevel(logging.DEBUG)
    try:
        assert kafka.producer_config(s.kafka)["log_level"] == 7
    finally:
        kafka.client_log.setLevel(logging.NOTSET)
    # The settings can still choose librdkafka's level.
    s = load_settings(
        env={"STREAMER_KAFKA__BOOTSTRAP_SERVERS": NOWHERE},
        overrides={"kafka": {"client": {"log_level": 3}}},
    )
    assert kafka.consumer_config(s.kafka)["log_level"] == 3


def test_librdkafka_errors_do_not_show_secrets():
    # A password typed into the wrong variable too: librdkafka quotes the refused value.
    s = load_settings(
        env={
            "STREAMER_KAFKA__BOOTSTRAP_SERVERS": NOWHERE,
            "STREAMER_KAFKA__CLIENT__SECURITY_PROTOCOL": "hunter2",
            "STREAMER_KAFKA__CLIENT__SASL_PASSWORD": "hunter2",
        }
    )
    with pytest.raises(ConfigError) as info:
        kafka.make_producer(s.kafka)
    assert "hunter2" not in str(info.value) and "******" in str(info.value)


def test_message_max_bytes_follows_the_settings():
    s = load_settings(env={"STREAMER_KAFKA__BOOTSTRAP_SERVERS": NOWHERE})
    assert kafka.message_max_bytes(s.kafka) == 1_000_000
    s = load_settings(
        env={
            "STREAMER_KAFKA__BOOTSTRAP_SERVERS": NOWHERE,
            "STREAMER_KAFKA__PRODUCER__MESSAGE_MAX_BYTES": "4000",
            # Checkpoint and model chunks must fit too.
            "STREAMER_CHECKPOINT__CHUNK_BYTES": "2048",
            "STREAMER_MODELS__CHUNK_BYTES": "2048",
        }
    )
    assert kafka.message_max_bytes(s.kafka) == 4000


def test_bootstrap_lists_are_read_as_librdkafka_reads_them():
    assert kafka._bootstrap("a:1, SASL_SSL://b:9093,[::1]:9094,c") == [
        ("a", 1),
        ("b", 9093),
        ("::1", 9094),
        ("c", 9092),
    ]
