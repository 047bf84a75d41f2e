"""The Kafka edge: client factories, topic provisioning, delivery-tracked output, commits.

This is the only module that imports confluent_kafka. Client properties are assembled from
``kafka.client`` (every client: security goes here), then ``kafka.consumer`` or
``kafka.producer``, over streamer's defaults; streamer owns only the properties its guarantees
depend on (``enable.auto.commit``, ``enable.auto.offset.store``, ``group.id``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streamer.errors import BrokerError, ConfigError, DeliveryError
from streamer.records import Headers
from streamer.settings import KafkaSettings

__all__ = [
    "KafkaSink",
    "check_configs",
    "commit",
    "committed",
    "consumer_config",
    "ensure_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "make_reader",
    "producer_config",
    "records_only",
    "topic_partitions",
    "watermarks",
]

log = logging.getLogger(__name__)

Assignment = Callable[[Consumer, list[TopicPartition]], None]

_CONSUMER_DEFAULTS: dict[str, Any] = {
    "auto.offset.reset": "earliest",
    # Only committed transactions are visible; a no-op for non-transactional producers.
    "isolation.level": "read_committed",
}
_PRODUCER_DEFAULTS: dict[str, Any] = {
    # acks=all + idempotence: a retried send is neither lost nor duplicated by the broker.
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    # Same key -> same partition as the Java client (murmur2), so keyed streams agree.
    "partitioner": "murmur2_random",
}


def _base(kafka: KafkaSettings) -> dict[str, Any]:
    if not kafka.bootstrap_servers:
        raise ConfigError(
            "kafka.bootstrap_servers",
            "no brokers configured: set host:port[,host:port…] (or run `streamer demo`, "
            "which starts an embedded broker)",
        )
    return {"bootstrap.servers": kafka.bootstrap_servers, **kafka.client}


def consumer_config(kafka: KafkaSettings) -> dict[str, Any]:
    return {
        **_CONSUMER_DEFAULTS,
        **_base(kafka),
        **kafka.consumer,
        "group.id": kafka.group_id,
        # Offsets are committed by the worker, explicitly, after the batch's outputs are
        # delivered: that is what makes the pipeline at-least-once.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
    }


def producer_config(kafka: KafkaSettings) -> dict[str, Any]:
    return {**_PRODUCER_DEFAULTS, **_base(kafka), **kafka.producer}


def _checked(make: Callable[[dict[str, Any]], Any], conf: dict[str, Any], section: str) -> Any:
    try:
        return make(conf)
    except KafkaException as exc:
        raise ConfigError(
            f"kafka.{section}", f"librdkafka refused the configuration: {exc}"
        ) from exc


def make_consumer(
    kafka: KafkaSettings,
    topics: Iterable[str],
    *,
    on_assign: Assignment | None = None,
    on_revoke: Assignment | None = None,
    on_lost: Assignment | None = None,
) -> Consumer:
    """A consumer in ``kafka.group_id`` subscribed to ``topics``."""
    consumer: Consumer = _checked(Consumer, consumer_config(kafka), "consumer")
    callbacks: dict[str, Assignment] = {}
    if on_assign:
        callbacks["on_assign"] = on_assign
    if on_revoke:
        callbacks["on_revoke"] = on_revoke
    if on_lost:
        callbacks["on_lost"] = on_lost
    consumer.subscribe(list(topics), **callbacks)
    return consumer


def make_reader(kafka: KafkaSettings, topic: str, *, timeout: float = 30.0) -> Consumer:
    """A consumer outside any group, assigned every partition of ``topic`` from the start.

    For tools and tests that read a whole topic: no group join, so no rebalance delay.
    """
    conf = {
        **_base(kafka),
        **kafka.consumer,
        "group.id": "streamer-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    consumer: Consumer = _checked(Consumer, conf, "consumer")
    md = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if md is None or md.error is not None or not md.partitions:
        consumer.close()
        raise BrokerError(f"topic {topic!r} does not exist")
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(md.partitions)])
    return consumer


def make_producer(kafka: KafkaSettings) -> Producer:
    return _checked(Producer, producer_config(kafka), "producer")  # type: ignore[no-any-return]


def make_admin(kafka: KafkaSettings) -> AdminClient:
    return _checked(AdminClient, _base(kafka), "client")  # type: ignore[no-any-return]


def check_configs(kafka: KafkaSettings) -> list[str]:
    """Let librdkafka check the consumer and producer configurations, without connecting.

    The properties are assembled exactly as :func:`make_consumer` and :func:`make_producer`
    assemble them, so what ``streamer run`` would refuse is refused here (a
    :class:`ConfigError` naming the section). Only ``bootstrap.servers`` is left out, so that
    no connection is tried. Returns librdkafka's configuration warnings (``CONFWARN``), such as
    a SASL mechanism without a SASL security protocol.
    """
    probe = kafka.model_copy(update={"bootstrap_servers": kafka.bootstrap_servers or "-"})
    captured = _Captured()
    logger = logging.getLogger("streamer.kafka.check")
    logger.propagate = False
    logger.handlers = [captured]
    for section, conf, cls in (
        ("consumer", consumer_config(probe), Consumer),
        ("producer", producer_config(probe), Producer),
    ):
        conf = {**conf, "bootstrap.servers": "", "logger": logger}
        captured.client = section
        client = _checked(cls, conf, section)
        client.poll(0)  # serves the queued log lines
        if section == "consumer":
            client.close()
        del client
    seen: dict[str, str] = {}
    for client, text in captured.lines:
        if "bootstrap.servers" not in text:  # left out on purpose, above
            seen.setdefault(text, client)
    return [f"kafka.{client}: {text}" for text, client in seen.items()]


class _Captured(logging.Handler):
    """Keeps librdkafka's warnings, with the client they came from."""

    def __init__(self) -> None:
        super().__init__()
        self.client = ""
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            # librdkafka's lines read "[thrd:app]: text"; keep the text.
            self.lines.append((self.client, record.getMessage().split("]: ", 1)[-1]))


def topic_partitions(admin: AdminClient, topic: str, *, timeout: float = 30.0) -> int | None:
    """Partitions of ``topic``, or None if it does not exist.

    Lists every topic rather than asking for this one: a metadata request naming a missing
    topic can make a broker with ``auto.create.topics.enable`` create it.
    """
    try:
        md = admin.list_topics(timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics: {exc}") from exc
    return None if md is None or md.error is not None else len(md.partitions)


def ensure_topics(
    admin: AdminClient,
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    timeout: float = 30.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Existing topics are left as they are (their partition count is the operator's choice).
    ``configs`` gives per-topic settings, e.g. ``{"changelog": {"cleanup.policy": "compact"}}``.
    """
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics: {exc}") from exc
    wanted = [n for n in dict.fromkeys(names) if n not in existing]
    if not wanted:
        return []
    configs = configs or {}
    futures = admin.create_topics(
        [
            NewTopic(n, partitions, replication_factor, config=dict(configs.get(n, {})))
            for n in wanted
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"cannot create topic {name!r}: {exc}") from exc
    _wait_for_metadata(admin, wanted, timeout)
    return created


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=timeout).topics
        if all(n in md and md[n].partitions and md[n].error is None for n in names):
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"topics {names} not visible in metadata after {timeout}s")
        time.sleep(0.05)


class KafkaSink:
    """A producer that knows whether everything it sent was delivered.

    ``produce`` never blocks for long: when librdkafka's local queue is full it serves
    delivery reports and retries. ``flush`` waits for every outstanding record and raises
    :class:`DeliveryError` if any was refused, so the caller does not commit offsets for a
    batch whose outputs are not all safely in Kafka.
    """

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self._failures: list[str] = []
        # Bound once: librdkafka calls it for every record.
        self._on_delivery = self._delivered

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}: {err}")

    def produce(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers | None = None
    ) -> None:
        while True:
            try:
                self.producer.produce(
                    topic,
                    value,
                    key,
                    headers=headers,  # type: ignore[arg-type]
                    on_delivery=self._on_delivery,
                )
                return
            except BufferError:
                # Queue full: serve delivery reports to make room, then try again.
                self.producer.poll(0.05)

    def close(self, timeout: float = 30.0) -> None:
        """Flush, then let go of the producer (librdkafka destroys it with the last reference)."""
        try:
            self.flush(timeout)
        finally:
            self.producer = None  # type: ignore[assignment]

    def poll(self) -> None:
        """Serve delivery reports without waiting."""
        self.producer.poll(0)

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self.producer.flush(timeout)
        if self._failures or remaining:
            failures, self._failures = self._failures, []
            detail = "; ".join(failures[:5])
            raise DeliveryError(
                f"{len(failures)} output record(s) refused and {remaining} undelivered after "
                f"{timeout}s: {detail}"
            )


def commit(consumer: Consumer, next_offsets: Mapping[tuple[str, int], int]) -> None:
    """Synchronously commit ``(topic, partition) -> next offset to read``."""
    if not next_offsets:
        return
    tps = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
    try:
        result = consumer.commit(offsets=tps, asynchronous=False)
    except KafkaException as exc:
        raise BrokerError(f"commit of {_fmt(next_offsets)} failed: {exc}") from exc
    bad = [tp for tp in result or [] if tp.error is not None]
    if bad:
        raise BrokerError(f"commit failed for {[(tp.topic, tp.partition, tp.error) for tp in bad]}")


def committed(
    consumer: Consumer, keys: Iterable[tuple[str, int]], timeout: float = 30.0
) -> dict[tuple[str, int], int]:
    """The group's committed next offset of each ``(topic, partition)``; -1001 if none."""
    tps = [TopicPartition(t, p) for t, p in keys]
    if not tps:
        return {}
    try:
        return {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, timeout)}
    except KafkaException as exc:
        raise BrokerError(f"cannot read committed offsets: {exc}") from exc


def watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int] | None:
    """Low and high watermark from the consumer's cached fetch state, or None if unknown."""
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
    except KafkaException:
        return None
    return None if high < 0 else (low, high)


def _fmt(offsets: Mapping[tuple[str, int], int]) -> str:
    return ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(offsets.items()))


def records_only(msgs: list[Message]) -> list[Message]:
    """The records of a consume() result; errors are logged, and fatal ones raised.

    End-of-partition events (``enable.partition.eof``) are dropped: they carry no record.
    """
    if all(m.error() is None for m in msgs):
        return msgs
    records = []
    for m in msgs:
        err = m.error()
        if err is None:
            records.append(m)
        elif err.fatal():
            raise BrokerError(f"fatal consumer error: {err}")
        elif err.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error on %s[%s]: %s", m.topic(), m.partition(), err)
    return records
