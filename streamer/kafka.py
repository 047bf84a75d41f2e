"""The Kafka edge: client factories, topic provisioning, delivery-tracked output, commits.

This is the only module that imports confluent_kafka. Client properties are assembled from
``kafka.client`` (every client: security goes here), then ``kafka.consumer`` or
``kafka.producer``, over streamer's defaults; streamer owns only the properties its guarantees
depend on (``enable.auto.commit``, ``enable.auto.offset.store``, ``group.id``).

librdkafka's own log lines go through Python logging, to the ``streamer.librdkafka`` logger,
at the level it is configured for (librdkafka's ``log_level`` follows it unless
``kafka.client`` sets one); a line repeated within a minute is held back and counted, so an
unreachable broker is not twenty lines a second. :func:`wait_for_cluster` says instead, once
per attempt, which bootstrap servers do not answer.
"""

from __future__ import annotations

import functools
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streamer.errors import BrokerError, ConfigError, DeliveryError
from streamer.records import Headers, Refused, record_size
from streamer.settings import KafkaSettings, secret_values

__all__ = [
    "OFFSET_BEGINNING",
    "RECORD_ERRORS",
    "KafkaSink",
    "KafkaSource",
    "check_configs",
    "commit",
    "committed",
    "consumer_config",
    "ensure_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "make_reader",
    "message_max_bytes",
    "partition_count",
    "producer_config",
    "read_to_end",
    "records_only",
    "wait_for_cluster",
    "watermarks",
]

log = logging.getLogger(__name__)
#: Where librdkafka's log lines go.
client_log = logging.getLogger("streamer.librdkafka")

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


class _Repeats(logging.Filter):
    """Holds back a librdkafka line seen in the last ``interval`` seconds, and counts it.

    Lines are compared without their numbers (timings, counts, ports), per client and
    facility; the next line that passes says how many like it were held back.
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[Any, ...], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not (isinstance(args, tuple) and len(args) == 3):
            return True
        fac, client, text = args
        key = (client, fac, re.sub(r"\d+", "#", str(text)))
        now = time.monotonic()
        seen = self._last.get(key)
        if seen is not None and now - seen[0] < self.interval:
            self._last[key] = (seen[0], seen[1] + 1)
            return False
        if len(self._last) > 1000:  # lines with ever-new words: forget, rather than grow
            self._last.clear()
        self._last[key] = (now, 0)
        if seen is not None and seen[1]:
            record.args = (fac, client, f"{text} ({seen[1]} similar line(s) held back)")
        return True


client_log.addFilter(_Repeats())

# Python level -> librdkafka's syslog level, so librdkafka does not format lines nobody reads.
_SYSLOG_LEVELS = ((logging.DEBUG, 7), (logging.INFO, 6), (logging.WARNING, 4), (logging.ERROR, 3))


def _log_level() -> int:
    level = client_log.getEffectiveLevel()
    return next((sys for py, sys in _SYSLOG_LEVELS if level <= py), 2)


def _base(kafka: KafkaSettings) -> dict[str, Any]:
    if not kafka.bootstrap_servers:
        raise ConfigError(
            "kafka.bootstrap_servers",
            "no brokers configured: set host:port[,host:port…] (or run `streamer demo`, "
            "which starts an embedded broker)",
        )
    return {
        "bootstrap.servers": kafka.bootstrap_servers,
        "logger": client_log,
        "log_level": _log_level(),
        **kafka.client,
    }


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


def message_max_bytes(kafka: KafkaSettings) -> int:
    """The producer's ``message.max.bytes``: the largest record it sends (librdkafka's
    default, 1,000,000, unless the settings change it)."""
    try:
        return int(producer_config(kafka).get("message.max.bytes", 1_000_000))
    except (TypeError, ValueError) as exc:
        raise ConfigError("kafka.producer", f"message.max.bytes is not a number: {exc}") from exc


def _checked(make: Callable[[dict[str, Any]], Any], conf: dict[str, Any], section: str) -> Any:
    try:
        return make(conf)
    except KafkaException as exc:
        detail = str(exc)
        for secret in secret_values(conf):  # librdkafka quotes refused values
            detail = detail.replace(secret, "******")
        raise ConfigError(
            f"kafka.{section}", f"librdkafka refused the configuration: {detail}"
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


def make_reader(
    kafka: KafkaSettings, topic: str, *, timeout: float = 30.0, from_end: bool = False
) -> Consumer:
    """A consumer outside any group, assigned every partition of ``topic`` from the start
    (or, ``from_end``, from the end: only what is written from now on).

    For tools and tests that read a whole topic: no group join, so no rebalance delay.
    """
    conf = {
        **_base(kafka),
        **kafka.consumer,
        "group.id": "streamer-reader",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    consumer: Consumer = _checked(Consumer, conf, "consumer")
    md = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    if md is None or md.error is not None or not md.partitions:
        consumer.close()
        raise BrokerError(f"topic {topic!r} does not exist")
    start = OFFSET_END if from_end else OFFSET_BEGINNING
    consumer.assign([TopicPartition(topic, p, start) for p in sorted(md.partitions)])
    return consumer


def make_producer(
    kafka: KafkaSettings,
    *,
    extra: Mapping[str, Any] | None = None,
    on_error: Callable[[KafkaError], None] | None = None,
) -> Producer:
    """A producer with streamer's defaults; ``extra`` properties win (transactional.id…)."""
    conf = {**producer_config(kafka), **(extra or {})}
    if on_error is not None:
        conf["error_cb"] = on_error
    return _checked(Producer, conf, "producer")  # type: ignore[no-any-return]


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
        # The shared [kafka.client] properties first, so that an error there names them.
        ("client", _base(probe), Producer),
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


def partition_count(admin: AdminClient, topic: str, timeout: float = 30.0) -> int:
    """How many partitions ``topic`` has; 0 when it does not exist.

    Lists every topic rather than asking for this one: a metadata request naming a missing
    topic can make a broker with ``auto.create.topics.enable`` create it.
    """
    try:
        md = admin.list_topics(timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise BrokerError(f"cannot read the metadata of topic {topic!r}: {exc}") from exc
    if md is None or md.error is not None:
        return 0
    return len(md.partitions)


def _wait_for_metadata(admin: AdminClient, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        md = admin.list_topics(timeout=timeout).topics
        if all(n in md and md[n].partitions and md[n].error is None for n in names):
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"topics {names} not visible in metadata after {timeout}s")
        time.sleep(0.05)


#: librdkafka errors that are a record's own: the record, not the cluster, is at fault, so the
#: record is refused and everything else carries on (the emitter turns it into a dead letter).
RECORD_ERRORS = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,  # over message.max.bytes: the producer's or the topic's
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,  # e.g. no key on a compacted topic
        KafkaError.INVALID_MSG,  # CORRUPT_MESSAGE (2): the broker could not read the record
        KafkaError.INVALID_TIMESTAMP,
    }
)


class KafkaSink:
    """A producer that knows whether everything it sent was delivered.

    ``produce`` never blocks for long: when librdkafka's local queue is full it serves
    delivery reports and retries. ``flush`` waits for every outstanding record and raises
    :class:`DeliveryError` if any was refused, so the caller does not commit offsets for a
    batch whose outputs are not all safely in Kafka. A broker outage is ridden out: ``flush``
    keeps waiting (librdkafka keeps retrying for ``delivery.timeout.ms``) until the records
    are delivered or refused, or until the caller's deadline.

    With a ``transactional.id`` in its configuration the sink is transactional: outputs,
    checkpoints and consumer offsets are committed together by :meth:`commit_transaction`.

    A record refused for a reason of its own (:data:`RECORD_ERRORS`: too large, invalid),
    whether librdkafka refuses it at once or the broker in its delivery report, is not a
    failure of the batch when it was produced with an ``origin``: ``flush`` returns it as a
    :class:`~streamer.records.Refused` carrying that origin, for the caller to deal with (the
    emitter dead-letters the input it came from). Without an origin nobody can, so it fails the
    flush like any other error. (In a transaction, a record the *broker* refuses makes the
    transaction fail: keep the output topics' ``max.message.bytes`` at least the producer's
    ``message.max.bytes``, which librdkafka checks before sending.)
    """

    def __init__(self, producer: Producer, *, transactional: bool = False) -> None:
        self.producer = producer
        self.transactional = transactional
        self._failures: list[str] = []
        self._refused: list[Refused] = []
        self._in_transaction = False
        # Bound once: librdkafka calls it for every record produced without an origin.
        self._on_delivery = functools.partial(self._delivered, None)
        if transactional:
            try:
                producer.init_transactions(60)
            except KafkaException as exc:
                raise BrokerError(f"cannot initialise the transactional producer: {exc}") from exc

    def _delivered(self, origin: Any, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            size = record_size(msg.key(), msg.value(), msg.headers())  # type: ignore[arg-type]
            self._refuse(msg.topic() or "", origin, err, size)

    def _refuse(self, topic: str, origin: Any, err: KafkaError, size: int) -> None:
        if origin is not None and err.code() in RECORD_ERRORS:
            self._refused.append(Refused(topic, origin, err.name(), err.str(), size))
        else:
            self._failures.append(f"{topic}: {err}")

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
        *,
        origin: Any = None,
    ) -> None:
        """Send one record. ``origin`` (anything but None) comes back with a refusal."""
        if self.transactional and not self._in_transaction:
            self.begin()
        extra: dict[str, Any] = {} if partition is None else {"partition": partition}
        on_delivery = (
            self._on_delivery if origin is None else functools.partial(self._delivered, origin)
        )
        while True:
            try:
                self.producer.produce(
                    topic,
                    value,
                    key,
                    headers=headers,  # type: ignore[arg-type]
                    on_delivery=on_delivery,
                    **extra,
                )
                return
            except BufferError:
                # Queue full: serve delivery reports to make room, then try again.
                self.producer.poll(0.05)
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() not in RECORD_ERRORS:
                    raise DeliveryError(f"cannot produce to {topic!r}: {err}") from exc
                self._refuse(topic, origin, err, record_size(key, value, headers))
                return

    def close(self, timeout: float = 30.0) -> None:
        """Flush, then let go of the producer (librdkafka destroys it with the last reference)."""
        try:
            if self._in_transaction:
                self.abort()
            else:
                for r in self.flush(timeout):
                    log.error(
                        "output refused at close, not retried: %s %s (%r)", r.topic, r.error, r
                    )
        finally:
            self.producer = None  # type: ignore[assignment]

    def poll(self) -> None:
        """Serve delivery reports without waiting."""
        self.producer.poll(0)

    def pending(self) -> int:
        """Records handed to librdkafka and not yet delivered or refused."""
        return len(self.producer)

    def flush(
        self,
        timeout: float = 30.0,
        *,
        waiting: Callable[[int, float], None] | None = None,
    ) -> list[Refused]:
        """Wait until every record is delivered; raise :class:`DeliveryError` if any was
        refused, or if some are still undelivered after ``timeout`` seconds. Return the records
        refused for their own reasons (see the class): they are not failures.

        ``waiting(undelivered, seconds waited)`` is called about once a second while records
        are outstanding (the worker uses it to stay live and to log an outage once).
        """
        started = time.monotonic()
        deadline = started + timeout
        remaining = len(self.producer)
        while True:
            step = min(1.0, max(deadline - time.monotonic(), 0.0))
            remaining = self.producer.flush(step)
            if remaining == 0 or self._failures or time.monotonic() >= deadline:
                break
            if waiting is not None:
                waiting(remaining, time.monotonic() - started)
        refused, self._refused = self._refused, []
        if self._failures or remaining:
            failures, self._failures = self._failures, []
            detail = "; ".join(failures[:5]) or "the brokers did not acknowledge them in time"
            raise DeliveryError(
                f"{len(failures)} output record(s) refused and {remaining} undelivered after "
                f"{time.monotonic() - started:.1f}s: {detail}"
            )
        return refused

    # -- transactions (exactly-once) ---------------------------------------------------------

    def begin(self) -> None:
        self.producer.begin_transaction()
        self._in_transaction = True

    def commit_transaction(
        self,
        offsets: Mapping[tuple[str, int], int],
        group_metadata: Any,
        timeout: float = 60.0,
    ) -> None:
        """Commit the open transaction with the consumer offsets ``offsets`` in it."""
        if not self._in_transaction:
            self.begin()
        try:
            if offsets:
                tps = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
                self.producer.send_offsets_to_transaction(tps, group_metadata, timeout)
            self.producer.commit_transaction(timeout)
        except KafkaException as exc:
            self._failures.clear()
            self._refused.clear()
            raise DeliveryError(f"transaction of {_fmt(offsets)} failed: {exc}") from exc
        finally:
            self._in_transaction = False
        if self._failures:
            failures, self._failures = self._failures, []
            raise DeliveryError(f"transaction committed with refused records: {failures[:5]}")

    def abort(self, timeout: float = 30.0) -> None:
        """Abort the open transaction: none of its records become visible to readers."""
        self._failures.clear()
        self._refused.clear()
        if not self._in_transaction:
            return
        self._in_transaction = False
        try:
            self.producer.abort_transaction(timeout)
        except KafkaException as exc:
            log.warning("aborting the transaction failed: %s", exc)


def _bootstrap(servers: str) -> list[tuple[str, int]]:
    """``host:port`` pairs of a bootstrap list (``[::1]:9092`` and ``SSL://h:9093`` too)."""
    out = []
    for item in servers.split(","):
        item = item.strip().rpartition("://")[2]
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            host, port = item, "9092"
        out.append((host.strip("[]"), int(port)))
    return out


def _unreachable(servers: str, timeout: float = 2.0) -> list[str]:
    """The bootstrap servers that refuse or drop a TCP connection, with why."""
    down = []
    for host, port in _bootstrap(servers):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            down.append(f"{host}:{port} ({why})")
    return down


def wait_for_cluster(
    kafka: KafkaSettings,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    timeout: float | None = None,
    backoff: tuple[float, float] = (1.0, 30.0),
    attempt_timeout: float = 5.0,
) -> bool:
    """Wait until the cluster answers a metadata request; say once per attempt why not.

    Each failed attempt is one warning naming the bootstrap servers that do not accept a
    connection (or, when all do, librdkafka's reason: security settings, say), then a pause
    that doubles from ``backoff[0]`` up to ``backoff[1]`` seconds. The probe's own librdkafka
    client is silent. Returns True once the cluster answers, False if ``should_stop()`` turned
    true first (a SIGTERM during start-up); raises :class:`BrokerError` after ``timeout``
    seconds (None: wait as long as it takes).
    """
    conf = {**_base(kafka), "log_level": 0, "error_cb": lambda err: None}
    admin = _checked(AdminClient, conf, "client")
    started = time.monotonic()
    delay, attempt = backoff[0], 0
    servers = _bootstrap(kafka.bootstrap_servers)
    while not should_stop():
        attempt += 1
        # When no bootstrap server takes a TCP connection, a metadata request cannot succeed:
        # say so at once rather than after attempt_timeout.
        down = _unreachable(kafka.bootstrap_servers)
        problems = []
        if down:
            problems.append(f"bootstrap server(s) not accepting connections: {', '.join(down)}")
        if len(down) < len(servers):
            try:
                brokers = admin.list_topics(timeout=attempt_timeout).brokers
            except KafkaException as exc:
                problems.append(f"metadata request to {kafka.bootstrap_servers} failed: {exc}")
            else:
                if attempt > 1:
                    log.info(
                        "Kafka cluster reachable after %d attempts (%.0fs): %d broker(s)",
                        attempt,
                        time.monotonic() - started,
                        len(brokers),
                    )
                return True
        what = "; ".join(problems)
        elapsed = time.monotonic() - started
        if timeout is not None and elapsed + delay > timeout:
            raise BrokerError(f"Kafka cluster unreachable after {elapsed:.0f}s: {what}")
        log.warning(
            "Kafka cluster unreachable (attempt %d, %.0fs): %s; retrying in %.0fs",
            attempt,
            elapsed,
            what,
            delay,
        )
        until = time.monotonic() + delay
        while time.monotonic() < until and not should_stop():
            time.sleep(0.1)
        delay = min(delay * 2, backoff[1])
    return False


# What the worker's rebalance callbacks see: (topic, partition) pairs, never client objects.
Assigned = Callable[[list[tuple[str, int]]], Mapping[tuple[str, int], int | None]]
Revoked = Callable[[list[tuple[str, int]]], None]

# Commit errors that mean "this member's view of the group is stale": the group moved on
# (a rebalance, or a session that expired during an outage). The member rejoins on its next
# poll; what it had processed is re-read by whoever owns the partition then.
_STALE_MEMBER = {
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.FENCED_INSTANCE_ID,
}


class KafkaSource:
    """The consumer side of the worker: a member of ``kafka.group_id`` reading ``topics``.

    It owns the confluent-kafka consumer and speaks in ``(topic, partition)`` pairs:

    * ``on_assign(partitions)`` returns the offset each newly assigned partition must start
      from (a restored checkpoint's next offset), or None to start from the committed offset;
    * ``on_revoke(partitions)`` runs before partitions go to another member (checkpoint and
      commit them there); ``on_lost(partitions)`` when the membership was lost and nothing can
      be committed any more.

    Offsets are never committed automatically: :meth:`commit` is called after the outputs of
    the records are delivered (at-least-once), or offsets go into the producer's transaction.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topics: Iterable[str],
        *,
        on_assign: Assigned,
        on_revoke: Revoked,
        on_lost: Revoked,
        on_error: Callable[[KafkaError], None] | None = None,
    ) -> None:
        conf = consumer_config(kafka)
        if on_error is not None:
            conf["error_cb"] = on_error
        self._consumer: Consumer = _checked(Consumer, conf, "consumer")
        # cooperative-sticky hands out partitions incrementally; the eager strategies assign
        # the whole set at each rebalance.
        self._incremental = "cooperative" in str(conf.get("partition.assignment.strategy", ""))
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._on_lost = on_lost
        self.topics = list(topics)
        self._consumer.subscribe(
            self.topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )

    @staticmethod
    def _keys(partitions: list[TopicPartition]) -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in partitions]

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        starts = self._on_assign(self._keys(partitions))
        tps = []
        for tp in partitions:
            start = starts.get((tp.topic, tp.partition))
            tps.append(
                TopicPartition(tp.topic, tp.partition, OFFSET_INVALID if start is None else start)
            )
        # Assigning with explicit offsets is how a restored checkpoint decides where reading
        # resumes, whatever the committed offset says.
        if self._incremental:
            consumer.incremental_assign(tps)
        else:
            consumer.assign(tps)

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._on_revoke(self._keys(partitions))

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._on_lost(self._keys(partitions))

    def consume(self, n: int, timeout: float) -> list[Message]:
        """Up to ``n`` records (fewer after ``timeout`` seconds); rebalance callbacks run here."""
        return records_only(self._consumer.consume(n, timeout))

    def seek(self, topic: str, partition: int, offset: int) -> None:
        self._consumer.seek(TopicPartition(topic, partition, offset))

    def commit(
        self, next_offsets: Mapping[tuple[str, int], int], *, asynchronous: bool = False
    ) -> bool:
        """Commit ``(topic, partition) -> next offset to read``; False if the group moved on.

        A stale membership (a rebalance or an expired session) is not an error here: the
        member rejoins on its next :meth:`consume`. Other failures raise :class:`BrokerError`.
        """
        if not next_offsets:
            return True
        tps = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        try:
            if asynchronous:
                self._consumer.commit(offsets=tps, asynchronous=True)
                return True
            result = self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() in _STALE_MEMBER:
                log.warning("commit of %s skipped: %s", _fmt(next_offsets), exc.args[0].str())
                return False
            raise BrokerError(f"commit of {_fmt(next_offsets)} failed: {exc}") from exc
        bad = [tp for tp in result or [] if tp.error is not None]
        if bad:
            raise BrokerError(
                f"commit failed for {[(tp.topic, tp.partition, tp.error) for tp in bad]}"
            )
        return True

    def committed(
        self, keys: Iterable[tuple[str, int]], timeout: float = 30.0
    ) -> dict[tuple[str, int], int]:
        """The group's committed next offset of each ``(topic, partition)``; -1001 if none."""
        return committed(self._consumer, keys, timeout)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int] | None:
        return watermarks(self._consumer, topic, partition)

    def group_metadata(self) -> Any:
        """For :meth:`KafkaSink.commit_transaction`: offsets committed as this group member."""
        return self._consumer.consumer_group_metadata()

    def assignment(self) -> list[tuple[str, int]]:
        return self._keys(self._consumer.assignment())

    def reachable(self, timeout: float = 1.0) -> bool:
        """Whether a broker answers a metadata request within ``timeout`` seconds."""
        try:
            self._consumer.list_topics(self.topics[0], timeout=timeout)
        except KafkaException:
            return False
        return True

    def close(self) -> None:
        """Leave the group (the final revoke runs here) and close the consumer."""
        self._consumer.close()


def read_to_end(
    kafka: KafkaSettings,
    topic: str,
    partitions: Iterable[int],
    *,
    idle: float = 0.3,
    timeout: float = 60.0,
) -> list[Message]:
    """Every committed record of ``topic``'s ``partitions``, from the start to the end.

    The end is the high watermark read first, then whatever arrives until a fetch of ``idle``
    seconds brings nothing: some Kafka-compatible brokers report the watermark as the start
    of the last record batch, and a restore must not miss the batch that holds the newest
    checkpoint.
    """
    conf = {
        **_base(kafka),
        **kafka.consumer,
        "group.id": "streamer-restore",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "enable.partition.eof": False,
    }
    consumer: Consumer = _checked(Consumer, conf, "consumer")
    parts = sorted(set(partitions))
    try:
        ends = {}
        for p in parts:
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=timeout
                )
            except KafkaException as exc:
                raise BrokerError(f"cannot read the watermarks of {topic}[{p}]: {exc}") from exc
            if high > low:
                ends[p] = high
        if not ends:
            return []
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        out: list[Message] = []
        tps = [TopicPartition(topic, p) for p in ends]
        deadline = time.monotonic() + timeout
        while True:
            # The position moves past transaction markers too, which are never delivered.
            at = {tp.partition: tp.offset for tp in consumer.position(tps)}
            behind = any(at.get(p, -1) < end for p, end in ends.items())
            batch = consumer.consume(1000, 0.2 if behind else idle)
            for m in batch:
                err = m.error()
                if err is None:
                    out.append(m)
                elif err.fatal() or err.code() != KafkaError._PARTITION_EOF:
                    log.warning("reading %s[%s]: %s", m.topic(), m.partition(), err)
            if not batch and not behind:
                return out
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"reading {topic} {parts} to the end took more than {timeout}s "
                    f"(at {at}, ends {ends})"
                )
    finally:
        consumer.close()


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


def group_committed(
    kafka: KafkaSettings, topic: str, partitions: Iterable[int], timeout: float = 10.0
) -> dict[int, int]:
    """The committed next offset of ``topic``'s ``partitions`` for ``kafka.group_id``, read by
    a consumer that does not join the group; -1001 where none."""
    conf = {**_base(kafka), "group.id": kafka.group_id, "enable.auto.commit": False}
    consumer: Consumer = _checked(Consumer, conf, "consumer")
    try:
        got = committed(consumer, [(topic, p) for p in partitions], timeout)
    finally:
        consumer.close()
    return {p: offset for (_, p), offset in got.items()}


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
