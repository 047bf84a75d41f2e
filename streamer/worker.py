"""The worker loop: consume a batch, run the stages in order, deliver outputs, checkpoint, commit.

One worker is one member of the consumer group. It holds the state of the partitions assigned
to it (:class:`~streamer.state.PartitionState`) and, per consumed batch, per partition, runs::

    parse (decode + validate) -> prequential (score every slot, then learn) -> drift -> emit

then, for the whole batch: deliver the outputs, checkpoint the partitions that are due
(every ``checkpoint.every_events`` events or ``every_seconds``), and commit the offsets. With
``worker.processing_guarantee = "exactly_once"`` the outputs, checkpoints and offsets of a batch
are one Kafka transaction.

Recovery: on assignment a partition's state is the most advanced of the one this worker kept in
memory (after a revoke or a lost session) and the newest good checkpoint in the changelog; the
worker seeks to that state's next offset, so no event is learned twice and none is skipped,
whatever the committed offset says. Records below the committed offset are replayed to rebuild
the state without emitting their outputs again (they were delivered before the commit).
Processing is deterministic, so a worker killed at any point ends with the model of one never
killed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter as Tally
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from typing import Any, cast

import orjson

from streamer import kafka
from streamer.decode import AvroEncoder
from streamer.errors import ConfigError, DeliveryError, PayloadError, StreamerError
from streamer.lifecycle import Decision
from streamer.metrics import Metrics
from streamer.outputs import Emitter
from streamer.pipeline import Pipeline, Processed
from streamer.records import DriftEvent, Record
from streamer.registry import MODEL_UPDATE_SCHEMA, ModelUpdate, update_records
from streamer.settings import Settings
from streamer.signing import Signer, dumps, loads
from streamer.state import REFUSAL_REASONS, PartitionState, checkpoint_records, restore_all

__all__ = ["Worker"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]

# librdkafka's own retries for a produced record (delivery.timeout.ms) last 300 s by default;
# a flush waits that long, and a little more, before it calls the outputs lost.
_DELIVERY_WAIT = 330.0
# How long without a turn of the loop before /healthz says the worker is stuck.
_LIVENESS_SECONDS = 120.0


class Health:
    """What /healthz and /readyz report: is the loop turning, can the worker do its job."""

    def __init__(self) -> None:
        self.turned = time.monotonic()
        self.started = False
        self.broker_error: str | None = None
        self.broker_error_at = 0.0
        self.broker_ok_at = 0.0
        self.waiting_since: float | None = None

    def turn(self) -> None:
        self.turned = time.monotonic()

    def ok(self) -> None:
        self.broker_ok_at = time.monotonic()

    def error(self, message: str) -> None:
        self.broker_error = message
        self.broker_error_at = time.monotonic()

    def live(self) -> bool:
        return time.monotonic() - self.turned < _LIVENESS_SECONDS

    def ready(self) -> tuple[bool, str]:
        """``(ready, why not)``: started, broker reachable, outputs flowing."""
        if not self.started:
            return False, "starting"
        if self.broker_error_at > self.broker_ok_at:
            return False, f"broker unreachable: {self.broker_error}"
        if self.waiting_since is not None and time.monotonic() - self.waiting_since > 10.0:
            return False, "outputs are not being delivered"
        return True, "ok"


class Worker:
    """Consume the events topic and run the pipeline until stopped.

    Parameters
    ----------
    settings
        The validated settings tree.
    metrics
        Where to export metrics (a fresh registry by default; tests pass their own).
    on_batch
        Called after each committed batch with the worker (the demo prints progress from it).
    instance
        Distinguishes worker processes of one host (``streamer run --workers N``): it goes into
        the transactional id.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        on_batch: Callable[[Worker], None] | None = None,
        instance: int | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.on_batch = on_batch
        s = settings
        self.pipeline = Pipeline(settings)
        self.task = self.pipeline.task
        probe = self.pipeline.new_state("", -1)
        key = s.signing_key()
        self.signer = Signer(key) if key else None
        self.checkpoints = s.checkpoint.enabled
        if self.checkpoints and self.signer is None:
            raise ConfigError(
                "security.signing_key",
                "checkpoints are signed: set a key of at least 16 characters "
                "(STREAMER_SECURITY__SIGNING_KEY=$(openssl rand -hex 32), the same for every "
                "worker), or turn checkpoints off with checkpoint.enabled = false",
            )
        self.trusted = tuple(s.security.trusted_modules)
        if self.checkpoints:
            _check_round_trip(probe, self.trusted)
        self.exactly_once = s.worker.processing_guarantee == "exactly_once"
        if self.exactly_once and not self.checkpoints:
            raise ConfigError(
                "worker.processing_guarantee",
                "exactly_once needs checkpoint.enabled = true (the state commits with the offsets)",
            )
        host = socket.gethostname()
        self.writer = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        suffix = "" if instance is None else f"-{instance}"
        self.transactional_id = (
            f"{s.worker.transactional_id or f'{s.kafka.group_id}-{host}'}{suffix}"
        )
        self.state_digest = s.state_digest()
        self.states: dict[TopicPartition, PartitionState] = {}
        self._parked: dict[TopicPartition, PartitionState] = {}
        # Per partition: the committed offset when it was assigned (outputs below it were
        # delivered already), and (events, time) at its last checkpoint.
        self._committed: dict[TopicPartition, int] = {}
        self._last_checkpoint: dict[TopicPartition, tuple[int, float]] = {}
        # Offsets processed and not committed yet, and how often to commit them.
        self._uncommitted: dict[TopicPartition, int] = {}
        interval = s.worker.commit_interval
        if interval is None:
            interval = 0.1 if s.worker.processing_guarantee == "exactly_once" else 1.0
        self._commit_every = interval
        self._committed_at = time.monotonic()
        self._stop = threading.Event()
        self._closing = False
        self.processed = 0
        self.dead_total = 0
        self.drift_total = 0
        # The latest drift events, for people watching (the demo prints them).
        self.recent_drift: deque[DriftEvent] = deque(maxlen=50)
        self.recent_decisions: deque[Decision] = deque(maxlen=50)
        self._published_at: dict[TopicPartition, float] = {}
        self._publishing = s.models.publish and self.signer is not None
        self.metrics.declare_failures(
            checkpoint=("write", *REFUSAL_REASONS) if self.checkpoints else (),
            model=s.model.name if self._publishing else None,
            model_update=("too_large", "pickle"),
        )
        self.settings_hash = s.digest()
        self._manifest_encoder = (
            AvroEncoder(MODEL_UPDATE_SCHEMA).encode if s.output.format == "avro" else None
        )
        self.started = time.monotonic()
        self.health = Health()
        self._source: kafka.KafkaSource | None = None
        self._sink: kafka.KafkaSink | None = None
        self._outage_logged = 0.0
        self.metrics.info.info(_versions())

    # -- construction -------------------------------------------------------------------------

    def provision_topics(self) -> list[str]:
        """Create the topics the worker reads and writes, if ``topics.create`` is on.

        The changelog and the model-update topic are compacted (``cleanup.policy=compact``);
        the changelog gets as many partitions as the events topic, so that each input
        partition's checkpoints sit in a changelog partition of their own.
        """
        t = self.settings.topics
        if not t.create:
            return []
        admin = kafka.make_admin(self.settings.kafka)
        created = kafka.ensure_topics(
            admin,
            [t.events, t.predictions, t.dead_letters, t.drift_events, t.lifecycle_events],
            partitions=t.partitions,
            replication_factor=t.replication_factor,
        )
        compacted = {"cleanup.policy": "compact"}
        if self.settings.models.publish:
            created += kafka.ensure_topics(
                admin,
                [t.model_updates],
                partitions=t.partitions,
                replication_factor=t.replication_factor,
                configs={t.model_updates: compacted},
            )
        partitions = kafka.partition_count(admin, t.events) or t.partitions
        if self.checkpoints:
            created += kafka.ensure_topics(
                admin,
                [self.settings.changelog_topic],
                partitions=partitions,
                replication_factor=t.replication_factor,
                configs={self.settings.changelog_topic: compacted},
            )
        return created

    # -- group membership ---------------------------------------------------------------------

    def _on_assign(self, keys: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        """Take on ``keys``: the most advanced of the kept and checkpointed states of each."""
        assert self._source is not None
        committed = self._source.committed(keys)
        for key in keys:
            self._committed[key] = committed.get(key, -1001)
        starts = self._take_on(keys, parked=self._parked)
        self.metrics.set_assigned(len(self.states))
        log.info("assigned %s", sorted(keys))
        return starts

    def _take_on(
        self, keys: list[TopicPartition], *, parked: dict[TopicPartition, PartitionState]
    ) -> dict[TopicPartition, int | None]:
        restorers = self._read_changelog(keys)
        starts: dict[TopicPartition, int | None] = {}
        m = self.metrics
        for key in keys:
            kept = parked.pop(key, None)
            restorer = restorers.get(key)
            for reason, detail in restorer.refused if restorer is not None else []:
                log.warning("%s[%d]: checkpoint refused (%s): %s", *key, reason, detail)
                m.checkpoint_failed(reason)
            saved = restorer.newest_offset if restorer is not None else None
            kept_at = kept.next_offset if kept is not None else None
            state: PartitionState | None = None
            source = "fresh"
            restored = None
            if restorer is not None and saved is not None and (kept_at is None or saved > kept_at):
                restored = restorer.best()  # unpickled only when it is the better candidate
            if restored is not None and (
                kept_at is None or (restored.state.next_offset or 0) > kept_at
            ):
                state, source = restored.state, "changelog"
                self._last_checkpoint[key] = (state.events, time.monotonic())
                m.checkpoint_restored(*key, size=restored.bytes, at=restored.manifest["created_at"])
            elif kept is not None and kept_at is not None:
                state, source = kept, "memory"
            start: int | None
            if state is None:
                state = self.pipeline.new_state(*key)
                committed = self._committed.get(key, -1001)
                if self.checkpoints and committed > 0:
                    # A new model belongs at the start of the partition: it learns what was
                    # processed before (killed before a first checkpoint, or checkpoints
                    # refused) again, without emitting its outputs again.
                    start = kafka.OFFSET_BEGINNING
                    log.info(
                        "%s[%d]: no checkpoint to restore: a new model, learning from the "
                        "start of the partition (outputs resume at the committed offset %d)",
                        *key,
                        committed,
                    )
                else:
                    start = None
                    log.info(
                        "%s[%d]: no checkpoint to restore: a new model, from %s",
                        *key,
                        f"committed offset {committed}" if committed >= 0 else "the start",
                    )
            else:
                start = state.next_offset
                log.info(
                    "%s[%d]: restored from %s at offset %d (model v%d, %d events learned)",
                    *key,
                    "this worker's memory" if source == "memory" else "the changelog",
                    state.next_offset,
                    state.champion.version,
                    state.champion.n_learned,
                )
            m.restored(*key, source=source)
            self._last_checkpoint.setdefault(key, (state.events, time.monotonic()))
            self.states[key] = state
            starts[key] = start
        return starts

    def _read_changelog(self, keys: list[TopicPartition]) -> dict[TopicPartition, Any]:
        if not self.checkpoints or not keys:
            return {}
        assert self.signer is not None
        topic = self.settings.changelog_topic
        admin = kafka.make_admin(self.settings.kafka)
        n = kafka.partition_count(admin, topic)
        if not n:
            log.warning("changelog topic %r does not exist: no state to restore", topic)
            return {}
        records = kafka.read_to_end(self.settings.kafka, topic, {p % n for _, p in keys})
        return restore_all(
            records,
            keys,
            signer=self.signer,
            state_digest=self.state_digest,
            max_bytes=self.settings.checkpoint.max_state_bytes,
            trusted=self.trusted,
        )

    def _on_revoke(self, keys: list[TopicPartition]) -> None:
        # This runs inside consume() (or close()), between batches: every processed record's
        # outputs are delivered and its offset committed, or in the current transaction.
        # Checkpoint what moved since the last checkpoint, so the next owner starts there.
        mine = [k for k in keys if k in self.states]
        saved = False
        if mine and self._sink is not None:
            try:
                # Everything processed so far is delivered and committed here, the revoked
                # partitions checkpointed: the next owner starts where this one stopped.
                offsets = {k: o for k, o in self._uncommitted.items() if k in self.states}
                offsets.update(self._positions(mine))
                self._deliver(offsets, mine, force=True)
                self._uncommitted.clear()
                saved = self.checkpoints
            except StreamerError as exc:
                log.warning("could not checkpoint revoked partitions %s: %s", mine, exc)
        if self._closing:
            return  # the final revoke: keep the states readable after run() returns
        for key in mine:
            state = self.states.pop(key)
            if not saved:
                # Not in the changelog: kept, in case the partition comes back to us.
                self._parked[key] = state
        for key in keys:
            self.metrics.forget_partition(*key)
        self.metrics.set_assigned(len(self.states))
        log.info("revoked %s", sorted(keys))

    def _on_lost(self, keys: list[TopicPartition]) -> None:
        # The group moved on without us (a session that expired during an outage): nothing
        # can be committed, but the states stay in memory; if the partitions come back, the
        # most advanced state wins.
        for key in keys:
            state = self.states.pop(key, None)
            if state is not None:
                self._parked[key] = state
            self.metrics.forget_partition(*key)
        self.metrics.set_assigned(len(self.states))
        log.warning("lost %s (kept in memory in case they come back)", sorted(keys))

    def _on_error(self, err: Any) -> None:
        # librdkafka's error callback: transport errors, all brokers down, fatal errors.
        self.health.error(str(err))
        if err.fatal():
            log.error("fatal Kafka client error: %s", err)

    # -- the loop -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop after the batch in progress (safe from signal handlers)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, *, max_events: int | None = None) -> None:
        """Process batches until :meth:`stop` or until ``max_events`` records were processed."""
        s = self.settings
        # An unreachable cluster is one clear line per attempt until it answers (or stop()).
        if not kafka.wait_for_cluster(s.kafka, should_stop=self._stop.is_set):
            return
        conf_producer = None
        if self.exactly_once:
            conf_producer = {"transactional.id": self.transactional_id}
        self._sink = kafka.KafkaSink(
            kafka.make_producer(s.kafka, extra=conf_producer, on_error=self._on_error),
            transactional=self.exactly_once,
        )
        self.emitter = Emitter(
            self._sink,
            predictions_topic=s.topics.predictions,
            dead_letters_topic=s.topics.dead_letters,
            drift_events_topic=s.topics.drift_events,
            lifecycle_topic=s.topics.lifecycle_events,
            fmt=s.output.format,
            model=s.model.name,
            max_message_bytes=kafka.message_max_bytes(s.kafka),
        )
        self._source = kafka.KafkaSource(
            s.kafka,
            [s.topics.events],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
            on_error=self._on_error,
        )
        self.health.started = True
        batch_size, timeout = s.worker.batch_size, s.worker.poll_timeout
        try:
            self._loop(max_events, batch_size, timeout)
        except BaseException:
            # Mid-batch, a partition's state may hold records its offset does not cover yet:
            # it must not be checkpointed. The last checkpoint and a replay rebuild it.
            self._failed = True
            raise
        finally:
            self._close()

    def _loop(self, max_events: int | None, batch_size: int, timeout: float) -> None:
        assert self._source is not None
        while not self._stop.is_set():
            self.health.turn()
            if max_events is not None and self.processed >= max_events:
                break
            n = batch_size if max_events is None else min(batch_size, max_events - self.processed)
            msgs = self._source.consume(n, timeout)
            if msgs:
                self.health.ok()
                self._handle(cast(list[Record], msgs))
            else:
                self._idle()

    def _idle(self) -> None:
        assert self._sink is not None and self._source is not None
        self._sink.poll()
        self._checkpoint_due_by_time()
        # A quiet topic says nothing about the broker: ask it, now and then.
        h = self.health
        now = time.monotonic()
        if now - max(h.broker_ok_at, h.broker_error_at) > 5.0:
            if self._source.reachable(timeout=1.0):
                h.ok()
            else:
                h.error("no answer to a metadata request")

    def _close(self) -> None:
        self._closing = True
        try:
            if self._sink is not None and self.states and not self._failed:
                ready = self._positions(list(self.states))
                self._deliver(
                    ready, list(ready), force=True, deadline=self.settings.worker.shutdown_timeout
                )
        finally:
            try:
                if self._source is not None:
                    self._source.close()
                    self._source = None
            finally:
                if self._sink is not None:
                    try:
                        self._sink.close(self.settings.worker.shutdown_timeout)
                    finally:
                        self._sink = None
                log.info("worker stopped after %d records", self.processed)

    _failed = False

    def _handle(self, records: Sequence[Record]) -> None:
        """One batch: the stages in order for each partition, then deliver, then commit."""
        started = time.perf_counter()
        emitter, metrics = self.emitter, self.metrics
        next_offsets: dict[TopicPartition, int] = {}
        dead_tally: Tally[tuple[str, str, str]] = Tally()
        for key, recs in _by_partition(records).items():
            state = self.states.get(key)
            if state is None:  # a record from a partition revoked mid-batch: replayed elsewhere
                continue
            first = recs[0].offset()
            assert first is not None
            if state.next_offset is not None and first < state.next_offset:
                # Already in the state (fetched before a seek): never learn a record twice.
                recs = [r for r in recs if r.offset() >= state.next_offset]  # type: ignore[operator]
                if not recs:
                    continue
                first = state.next_offset
            topic, partition = key
            result = self.pipeline.process(state, recs)
            replayed = self._committed.get(key, -1)
            if replayed > first:
                # Replaying to rebuild the state: outputs below the committed offset were
                # delivered before it was committed.
                result.suppress_below(replayed)
            self._emit_predictions(topic, partition, result)
            emitter.dead_letters(result.dead)
            if result.decisions:
                self._decided(state, result)
            if result.drift_events:
                emitter.drift_events(result.drift_events)
                self.drift_total += len(result.drift_events)
                self.recent_drift.extend(result.drift_events)
            next_offsets[key] = state.next_offset  # type: ignore[assignment]
            for d in result.dead:
                dead_tally[(topic, d.stage, d.reason)] += 1
            self.dead_total += len(result.dead)
            self._export(state, result)
            self._publish_if_due(state)
        self._uncommitted.update(next_offsets)
        if not self._commit_if_due(self._due(next_offsets)):
            return
        metrics.export_batch(started=started, records=len(records), dead_letters=dead_tally)
        self.processed += len(records)
        if self.on_batch is not None:
            self.on_batch(self)

    def _emit_predictions(self, topic: str, partition: int, result: Processed) -> None:
        shadows = self.settings.output.shadow_predictions
        for segment in result.predictions:
            self.emitter.predictions(topic, partition, segment.scored, segment.version)
            if shadows:
                for (role, name, version), out in zip(
                    segment.slots[1:], segment.outcome.slots[1:], strict=True
                ):
                    self.emitter.predictions(
                        topic, partition, out.scored, version, model=name, role=role
                    )

    def _decided(self, state: PartitionState, result: Processed) -> None:
        """Lifecycle decisions: on their topic, in a metric, in the log; and a model update
        when the champion changed."""
        self.emitter.lifecycle(result.decisions, time=time.time())
        topic, partition = state.key
        for d in result.decisions:
            self.metrics.lifecycle_decision(topic, partition, model=d.model, decision=d.decision)
            self.recent_decisions.append(d)
            test = (
                f" ({d.test} p={d.statistic:.2g}, {d.gain:+.3f} over {d.compared} events)"
                if d.statistic is not None and d.gain is not None
                else ""
            )
            log.info(
                "%s[%d] at offset %d: %s %s v%d (%s)%s",
                topic,
                state.partition,
                d.offset,
                d.decision,
                d.role,
                d.version,
                d.reason,
                test,
            )
        changed = [d for d in result.decisions if d.decision in ("promoted", "rolled_back")]
        if changed:
            last = changed[-1]
            trigger = last.trigger.as_dict() if last.trigger is not None else None
            self._publish(
                state, "promotion" if last.decision == "promoted" else "rollback", trigger
            )

    def _publish_if_due(self, state: PartitionState) -> None:
        if not self._publishing:
            return
        champion = state.champion
        if champion.n_learned == 0:
            return
        m = self.settings.models
        last = state.published
        if last is None:
            self._publish(state, "initial")
            return
        version, revision = last
        since = self._published_at.get(state.key, self.started)
        if version != champion.version or (
            champion.n_learned > revision
            and (
                champion.n_learned - revision >= m.every_events
                or time.monotonic() - since >= m.every_seconds
            )
        ):
            self._publish(state, "periodic")

    def _publish(
        self, state: PartitionState, reason: str, trigger: dict[str, Any] | None = None
    ) -> None:
        """Publish the partition's champion on the model-update topic (chunks, manifest)."""
        if not self._publishing or self._sink is None:
            return
        assert self.signer is not None
        champion = state.champion
        name = self.settings.model.name
        update = ModelUpdate(
            name=name,
            topic=state.topic,
            partition=state.partition,
            version=champion.version,
            revision=champion.n_learned,
            parent_version=champion.parent,
            reason=reason,
            first_offset=champion.first_offset_learned
            if champion.first_offset_learned is not None
            else -1,
            last_offset=champion.last_offset_learned
            if champion.last_offset_learned is not None
            else -1,
            events_learned=champion.n_learned,
            trigger=orjson.dumps(trigger).decode() if trigger is not None else None,
            metrics={
                f"{metric}.{window}": value
                for (metric, window), value in champion.evaluation.values().items()
            },
            settings_hash=self.settings_hash,
        )
        m = self.settings.models
        try:
            records = update_records(
                update,
                champion.model,
                signer=self.signer,
                chunk_bytes=m.chunk_bytes,
                max_bytes=m.max_bytes,
                encode=self._manifest_encoder,
            )
        except PayloadError as exc:
            log.error("%s", exc)
            self.metrics.model_update_failed(model=name, reason="too_large")
            state.published = (champion.version, champion.n_learned)  # do not retry each batch
            return
        except Exception as exc:
            log.error(
                "model %s could not be published: %s: %s", update.key, type(exc).__name__, exc
            )
            self.metrics.model_update_failed(model=name, reason="pickle")
            state.published = (champion.version, champion.n_learned)
            return
        topic = self.settings.topics.model_updates
        for key, value, headers in records:
            self._sink.produce(topic, value, key.encode(), headers)
        state.published = update.order
        self._published_at[state.key] = time.monotonic()
        self.metrics.model_update_published(model=name, reason=reason)

    # -- delivery, checkpoints, commits --------------------------------------------------------

    def _positions(self, keys: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The next offset of each partition in ``keys`` that has processed anything."""
        out = {}
        for key in keys:
            offset = self.states[key].next_offset
            if offset is not None:
                out[key] = offset
        return out

    def _due(self, keys: Iterable[TopicPartition]) -> list[TopicPartition]:
        """Partitions whose checkpoint is due (events or time since the last one)."""
        if not self.checkpoints:
            return []
        c = self.settings.checkpoint
        now = time.monotonic()
        due = []
        for key in keys:
            state = self.states.get(key)
            if state is None:
                continue
            events, at = self._last_checkpoint.get(key, (0, now))
            moved = state.events - events
            if moved >= c.every_events or (moved > 0 and now - at >= c.every_seconds):
                due.append(key)
        return due

    def _checkpoint_due_by_time(self) -> None:
        self._commit_if_due(self._due(list(self.states)))

    def _commit_if_due(self, due: list[TopicPartition]) -> bool:
        """Deliver, checkpoint ``due`` and commit, when checkpoints are due or the commit
        interval has passed (else only serve delivery reports); False after a rewind."""
        now = time.monotonic()
        if not due and (not self._uncommitted or now - self._committed_at < self._commit_every):
            self._sink.poll()  # type: ignore[union-attr]
            return True
        offsets = {k: o for k, o in self._uncommitted.items() if k in self.states}
        offsets.update(self._positions(due))
        try:
            self._deliver(offsets, due)
        except DeliveryError as exc:
            self._rewind(str(exc))
            return False
        self._uncommitted.clear()
        self._committed_at = now
        positions: dict[TopicPartition, tuple[int, int | None]] = {}
        for key, offset in offsets.items():
            marks = self._source.watermarks(*key)  # type: ignore[union-attr]
            positions[key] = (offset, None if marks is None else marks[1])
        self.metrics.export_commit(positions)
        return True

    def _deliver(
        self,
        next_offsets: dict[TopicPartition, int],
        checkpoint: list[TopicPartition],
        *,
        force: bool = False,
        deadline: float = _DELIVERY_WAIT,
    ) -> None:
        """Outputs delivered, then checkpoints written, then offsets committed.

        In that order, so a checkpoint never gets ahead of delivered outputs (a restore from it
        would skip outputs that were lost), and offsets are committed only for records whose
        outputs and state are safe. With exactly-once, all three are one transaction.
        ``force``: checkpoint the partitions that moved since their last checkpoint, due or not.
        """
        sink, source = self._sink, self._source
        assert sink is not None and source is not None
        if force:
            checkpoint = [
                k
                for k in checkpoint
                if k in self.states
                and self.states[k].events > self._last_checkpoint.get(k, (-1, 0.0))[0]
            ]
        checkpoint = [k for k in checkpoint if self.checkpoints]
        if self.exactly_once:
            self._flush(deadline)  # outputs Kafka refuses become dead letters, in the transaction
            written = [w for k in checkpoint if (w := self._write_checkpoint(k))]
            try:
                sink.commit_transaction(next_offsets, source.group_metadata())
            except DeliveryError:
                sink.abort()
                raise
        else:
            self._flush(deadline)
            written = [w for k in checkpoint if (w := self._write_checkpoint(k))]
            if written:
                self._flush(deadline)
            self._commit(next_offsets)
        now_wall = time.time()
        for key, size, seconds in written:
            state = self.states.get(key) or self._parked.get(key)
            if state is not None:
                self._last_checkpoint[key] = (state.events, time.monotonic())
            self.metrics.checkpoint_written(*key, size=size, seconds=seconds, at=now_wall)

    def _write_checkpoint(self, key: TopicPartition) -> tuple[TopicPartition, int, float] | None:
        """Produce one partition's checkpoint records; return (key, bytes, seconds).

        A state that cannot be pickled (a model that grew something unpicklable) is logged and
        counted, and the partition goes on without this checkpoint: its previous one and a
        longer replay still restore it.
        """
        assert self.signer is not None and self._sink is not None
        started = time.perf_counter()
        state = self.states[key]
        try:
            payload = dumps(state)
        except Exception as exc:
            log.error("%s[%d]: checkpoint failed: %s: %s", *key, type(exc).__name__, exc)
            self.metrics.checkpoint_failed("write")
            return None
        records = checkpoint_records(
            state,
            signer=self.signer,
            chunk_bytes=self.settings.checkpoint.chunk_bytes,
            writer=self.writer,
            state_digest=self.state_digest,
            payload=payload,
        )
        topic = self.settings.changelog_topic
        n = self._changelog_partitions()
        for k, value, headers in records:
            self._sink.produce(topic, value, k.encode(), headers, partition=key[1] % n)
        return key, len(payload), time.perf_counter() - started

    _changelog_n: int | None = None

    def _changelog_partitions(self) -> int:
        if self._changelog_n is None:
            admin = kafka.make_admin(self.settings.kafka)
            n = kafka.partition_count(admin, self.settings.changelog_topic)
            if not n:
                raise StreamerError(
                    f"changelog topic {self.settings.changelog_topic!r} does not exist: create "
                    "it (compacted), or set topics.create = true"
                )
            self._changelog_n = n
        return self._changelog_n

    def _flush(self, deadline: float) -> None:
        assert self._sink is not None
        h = self.health

        def waiting(undelivered: int, waited: float) -> None:
            h.turn()  # waiting on the brokers is not being stuck
            if h.waiting_since is None:
                h.waiting_since = time.monotonic() - waited
            now = time.monotonic()
            if now - self._outage_logged >= 10.0:
                self._outage_logged = now
                log.warning(
                    "%d output record(s) not delivered after %.0fs: waiting for the brokers",
                    undelivered,
                    waited,
                )

        try:
            # Outputs Kafka refused for their own reasons come back as dead letters of their
            # inputs, made and delivered here: counted here.
            for d in self.emitter.flush(deadline, waiting=waiting):
                topic = d.record.topic() or self.settings.topics.events
                self.metrics.count_dead_letters({(topic, d.stage, d.reason): 1})
                self.dead_total += 1
        finally:
            if h.waiting_since is not None:
                log.info("outputs delivered again")
            h.waiting_since = None

    def _commit(self, next_offsets: dict[TopicPartition, int]) -> None:
        assert self._source is not None
        if not next_offsets:
            return
        try:
            self._source.commit(next_offsets)
        except StreamerError as exc:
            # The outputs are delivered and the state holds the records; a later commit (or
            # the next owner replaying them) covers these offsets. Nothing is lost.
            log.warning("%s; will commit again with the next batch", exc)
            self.health.error(str(exc))
        else:
            self.health.ok()

    def _rewind(self, why: str) -> None:
        """Outputs were lost: go back to the newest checkpoint of each partition and replay.

        The records from the committed offset on are processed again and their outputs
        re-emitted; the state is rebuilt from the checkpoint, so nothing is learned twice.
        """
        assert self._source is not None
        log.error("%s: rewinding to the last checkpoints", why)
        keys = list(self.states)
        self.states.clear()
        self._uncommitted.clear()
        committed = self._source.committed(keys)
        for key in keys:
            self._committed[key] = committed.get(key, -1001)
        starts = self._take_on(keys, parked={})
        for key, start in starts.items():
            if start is None:
                c = self._committed.get(key, -1001)
                start = c if c >= 0 else kafka.OFFSET_BEGINNING
            self._source.seek(key[0], key[1], start)

    def _export(self, state: PartitionState, result: Processed) -> None:
        """Per-batch metric updates of one partition (never per event)."""
        m = self.metrics
        topic, partition = state.key
        m.export_partition(
            topic,
            partition,
            records=result.records,
            predictions=sum(len(seg.scored) for seg in result.predictions),
            labelled=result.labelled,
            learned=result.learned,
            event_times=[ev.time for seg in result.predictions for ev, _, _ in seg.scored],
        )
        m.export_models(
            topic,
            partition,
            [
                (slot.name, slot.role, slot.version, slot.evaluation.values())
                for slot in state.slots
            ],
        )
        if state.drift is not None:
            m.export_drift(
                topic,
                partition,
                statistics=result.statistics,
                events=result.drift_events,
                concept_states=result.concept_states,
                alarming=state.drift.alarming(),
                levels=state.drift.levels(),
                exported=state.drift.exported_features(),
            )


def _check_round_trip(state: PartitionState, trusted: tuple[str, ...]) -> None:
    """A new partition's state must survive a checkpoint: pickle it and read it back."""
    try:
        loads(dumps(state), trusted=trusted)
    except PayloadError as exc:
        raise ConfigError(
            "security.trusted_modules", f"a checkpoint of the model would be refused: {exc}"
        ) from exc
    except Exception as exc:
        raise ConfigError(
            "model.preset",
            f"the model cannot be checkpointed ({type(exc).__name__}: {exc}); make it "
            "picklable (no lambdas or local classes), or set checkpoint.enabled = false",
        ) from exc


def _by_partition(records: Sequence[Record]) -> dict[TopicPartition, list[Record]]:
    groups: dict[TopicPartition, list[Record]] = {}
    for r in records:
        key = (r.topic(), r.partition())
        group = groups.get(key)  # type: ignore[arg-type]
        if group is None:
            groups[key] = [r]  # type: ignore[index]
        else:
            group.append(r)
    return groups


def _versions() -> dict[str, str]:
    from streamer._version import __version__

    out = {"streamer": __version__}
    for dist in ("river", "confluent-kafka", "fastavro", "prometheus-client"):
        try:
            out[dist.replace("-", "_")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist.replace("-", "_")] = "unknown"
    return out
