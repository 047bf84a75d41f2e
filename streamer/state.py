"""A partition's state, and its checkpoints in the changelog topic.

State is sharded by input partition, as in Kafka Streams. :class:`PartitionState` is all that
one partition owns: its model slots (the champion; challengers and the previous champion when
the lifecycle runs them), each with its model, version, metrics and model-level drift signals;
the partition-level drift monitor (features, labels, schema); the next offset to read. It
pickles as one object, without settings inside, so one checkpoint saves all of it.

A checkpoint is the pickled state with the next offset it was taken at, compressed, hashed and
signed (:mod:`streamer.signing`), written to a compacted changelog topic as:

* one or more **chunk** records, keyed ``<topic>/<partition>#<a|b>-<index>``, whose values are
  consecutive slices of the payload (a state larger than ``checkpoint.chunk_bytes`` is split,
  never dropped); consecutive checkpoints alternate between the ``a`` and ``b`` key sets, so
  compaction never removes the chunks of the newest complete checkpoint while the next one is
  being written;
* then one **manifest** record, keyed ``<topic>/<partition>``, a JSON document (readable with
  any Kafka client) holding the next offset, the sequence number, the payload's size, SHA-256
  and HMAC-SHA256 signature, the settings digest and the library versions.

Restoring reads the changelog partition to its end and keeps the newest manifest whose chunks
are all there and whose signature and hash verify; a checkpoint that fails verification is
refused with the reason, and the one before it (or a fresh state) is used instead.

Examples
--------
>>> from streamer.signing import Signer
>>> from streamer.settings import load_settings
>>> state = new_state(load_settings(env={}), "events", 0)
>>> state.champion
ModelSlot(champion v1, Pipeline, learned 0)
>>> state.next_offset = 42
>>> signer = Signer(b"0123456789abcdef")
>>> records = checkpoint_records(state, signer=signer, chunk_bytes=4096, writer="w1")
>>> [key for key, _, _ in records][-1], len(records) > 1
('events/0', True)
>>> found = Restorer("events", 0, signer=signer)
>>> for key, value, headers in records:
...     found.add(key.encode(), value, headers)
>>> restored = found.best()
>>> restored.state.next_offset, restored.state.checkpoint_seq
(42, 1)
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import orjson

from streamer.drift.monitor import DriftMonitor, load_reference
from streamer.errors import PayloadError
from streamer.models import model_from_settings
from streamer.prequential import ModelSlot
from streamer.records import Headers
from streamer.settings import Settings
from streamer.signing import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    Chunks,
    Signer,
    chunk_records,
    dumps,
    loads,
    sha256,
)
from streamer.validate import Admitted

__all__ = [
    "CHECKPOINT_FORMAT",
    "REFUSAL_REASONS",
    "PartitionState",
    "Restored",
    "Restorer",
    "checkpoint_records",
    "library_versions",
    "new_drift",
    "new_slot",
    "new_state",
    "restore_all",
]

log = logging.getLogger(__name__)

#: Version of the checkpoint layout; a restore refuses others.
CHECKPOINT_FORMAT = 1
#: Why a restore refuses a checkpoint (the ``reason`` of :attr:`Restorer.refused`).
REFUSAL_REASONS = (
    "format",
    "unsigned",
    "foreign_key",
    "truncated",
    "bad_signature",
    "bad_hash",
    "settings_changed",
    "unpickle",
)
_KIND = "streamer.checkpoint"
_KIND_HEADER = "streamer.kind"
_ID_HEADER = "streamer.checkpoint.id"


@dataclass(slots=True)
class PartitionState:
    """Everything one input partition owns.

    ``slots[0]`` is the champion; ``next_offset`` the offset of the next record to read (the
    state reflects every record before it); ``events`` the records processed (dead letters
    included); ``checkpoint_seq`` the sequence number of the last checkpoint written or
    restored; ``versions`` the highest model version minted for this partition; ``lifecycle``
    the lifecycle policy's bookkeeping; ``published`` the (version, revision) of the last model
    update published; ``admitted`` the feature names and classes taken from the data (they go
    with the models).
    """

    topic: str
    partition: int
    slots: list[ModelSlot]
    drift: DriftMonitor | None = None
    next_offset: int | None = None
    events: int = 0
    checkpoint_seq: int = 0
    versions: int = 1
    lifecycle: Any = None
    published: tuple[int, int] | None = None
    admitted: Admitted = field(default_factory=Admitted)

    @property
    def champion(self) -> ModelSlot:
        return self.slots[0]

    @property
    def key(self) -> tuple[str, int]:
        return (self.topic, self.partition)


def new_slot(settings: Settings, **kwargs: Any) -> ModelSlot:
    """A fresh, seeded model with its metrics, as ``[model]`` and ``[evaluation]`` say."""
    e = settings.evaluation
    kwargs.setdefault("name", settings.model.name)
    return ModelSlot(
        model_from_settings(settings),
        metrics=e.metrics,
        window=e.window,
        positive_label=e.positive_label,
        classes=e.classes,
        **kwargs,
    )


def new_drift(
    settings: Settings, topic: str, partition: int, *, task: str, pinned: Any = None
) -> DriftMonitor | None:
    """The partition's drift monitor as ``[drift]`` says, or None when drift is off."""
    s = settings
    if not s.drift.enabled:
        return None
    w = s.drift.windows
    if pinned is None and w.reference == "pinned":
        pinned = load_reference(s.resolve_path(w.reference_file))
    return DriftMonitor(
        s.drift,
        fields=s.fields,
        task=task,
        topic=topic,
        partition=partition,
        model=s.model.name,
        seed=s.model.seed,
        pinned=pinned,
    )


def new_state(
    settings: Settings, topic: str, partition: int, *, pinned: Any = None
) -> PartitionState:
    """What a partition starts with when no checkpoint of it exists."""
    champion = new_slot(settings)
    drift = new_drift(settings, topic, partition, task=champion.task, pinned=pinned)
    if drift is not None:
        champion.drift = drift.model_drift()
    return PartitionState(topic, partition, [champion], drift)


def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a pickled model depends on."""
    from streamer._version import __version__

    # streamer's distribution is streamer-drift: its version comes from there.
    out = {"python": platform.python_version(), "streamer": __version__}
    for dist in ("river", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def _key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def checkpoint_records(
    state: PartitionState,
    *,
    signer: Signer,
    chunk_bytes: int,
    writer: str,
    state_digest: str = "",
    payload: bytes | None = None,
) -> list[tuple[str, bytes, Headers]]:
    """The changelog records of a checkpoint of ``state``: chunks first, the manifest last.

    Increments ``state.checkpoint_seq``. ``payload`` is the already pickled state, if the
    caller has it (see :func:`streamer.signing.dumps`).
    """
    if state.next_offset is None:
        raise ValueError(f"{_key(state.topic, state.partition)}: no offset to checkpoint yet")
    state.checkpoint_seq += 1
    seq = state.checkpoint_seq
    try:
        data = payload if payload is not None else dumps(state)
    except Exception:
        state.checkpoint_seq -= 1
        raise
    base = _key(state.topic, state.partition)
    half = "ab"[seq % 2]
    records: list[tuple[str, bytes, Headers]] = chunk_records(
        base,
        data,
        chunk_bytes,
        half=half,
        ident=f"{writer}:{seq}".encode(),
        header=_ID_HEADER,
    )
    header = {
        "kind": _KIND,
        "format": CHECKPOINT_FORMAT,
        "topic": state.topic,
        "partition": state.partition,
        "next_offset": state.next_offset,
        "events": state.events,
        "seq": seq,
        "writer": writer,
        "created_at": time.time(),
        "chunk_keys": f"{base}#{half}",
        "chunks": len(records),
        "payload_bytes": len(data),
        "payload_sha256": sha256(data),
        "state_digest": state_digest,
        "versions": library_versions(),
        "key_id": signer.key_id,
    }
    manifest = {**header, "signature": signer.sign(header, data)}
    records.append((base, orjson.dumps(manifest), [(_KIND_HEADER, b"manifest")]))
    return records


@dataclass(slots=True)
class Restored:
    """A verified checkpoint: the state and what its manifest said."""

    state: PartitionState
    manifest: dict[str, Any]
    bytes: int


@dataclass(slots=True)
class _Candidate:
    manifest: dict[str, Any]
    payload: bytes


class Restorer:
    """Finds the newest good checkpoint of one partition among changelog records.

    Feed it every record of the changelog partition, in order (:meth:`add`); :meth:`best`
    returns the newest checkpoint that is complete, verifies and unpickles, or None.
    ``refused`` lists ``(reason, detail)`` for every checkpoint turned down on the way; a
    reason is one of ``unsigned``, ``foreign_key``, ``bad_signature``, ``bad_hash``,
    ``truncated``, ``format``, ``settings_changed`` or ``unpickle``.
    """

    def __init__(
        self,
        topic: str,
        partition: int,
        *,
        signer: Signer,
        state_digest: str = "",
        max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        trusted: tuple[str, ...] = (),
    ) -> None:
        self.trusted = trusted
        self.topic = topic
        self.partition = partition
        self.signer = signer
        self.state_digest = state_digest
        self.max_bytes = max_bytes
        self._base = _key(topic, partition)
        self._prefix = self._base + "#"
        self._chunks = Chunks()
        self._good: list[_Candidate] = []
        self.refused: list[tuple[str, str]] = []

    def add(self, key: bytes | None, value: bytes | None, headers: Headers | None) -> None:
        """One changelog record (any partition's: others are ignored)."""
        if key is None or value is None:
            return
        k = key.decode("utf-8", "replace")
        if k.startswith(self._prefix):
            self._chunks.add(k, value, dict(headers or []).get(_ID_HEADER) or b"")
        elif k == self._base:
            self._manifest(value)

    def _refuse(self, reason: str, detail: str) -> None:
        self.refused.append((reason, detail))

    def _manifest(self, value: bytes) -> None:
        try:
            manifest = orjson.loads(value)
        except orjson.JSONDecodeError:
            self._refuse("format", "manifest is not JSON")
            return
        if not isinstance(manifest, dict) or manifest.get("kind") != _KIND:
            self._refuse("format", "not a streamer checkpoint manifest")
            return
        where = f"checkpoint {manifest.get('seq')} of {self._base}"
        if manifest.get("format") != CHECKPOINT_FORMAT:
            self._refuse("format", f"{where}: format {manifest.get('format')!r}")
            return
        signature = manifest.pop("signature", None)
        if not signature:
            self._refuse("unsigned", f"{where} is not signed")
            return
        if manifest.get("key_id") != self.signer.key_id:
            self._refuse(
                "foreign_key",
                f"{where} is signed with another key (key id {manifest.get('key_id')}, "
                f"ours {self.signer.key_id})",
            )
            return
        ident = f"{manifest.get('writer')}:{manifest.get('seq')}".encode()
        n = manifest.get("chunks")
        payload, found = self._chunks.take(str(manifest.get("chunk_keys")), ident, n)
        if payload is None:
            self._refuse("truncated", f"{where}: {found} of {n} chunks found")
            return
        if not self.signer.verify(manifest, payload, signature):
            self._refuse("bad_signature", f"{where}: the signature does not match its contents")
            return
        if sha256(payload) != manifest.get("payload_sha256"):
            self._refuse("bad_hash", f"{where}: SHA-256 of the payload does not match")
            return
        if self.state_digest and manifest.get("state_digest") != self.state_digest:
            self._refuse(
                "settings_changed",
                f"{where} was made with other [model], [fields] or [evaluation] settings",
            )
            return
        self._good = [*self._good[-1:], _Candidate(manifest, payload)]

    @property
    def newest_offset(self) -> int | None:
        """The next offset of the newest verified checkpoint, without unpickling it."""
        return self._good[-1].manifest.get("next_offset") if self._good else None

    def best(self) -> Restored | None:
        """The newest verified checkpoint that unpickles (the one before it if it does not)."""
        for candidate in reversed(self._good):
            try:
                state = loads(candidate.payload, max_bytes=self.max_bytes, trusted=self.trusted)
            except PayloadError as exc:
                self._refuse("unpickle", f"checkpoint {candidate.manifest.get('seq')}: {exc}")
                continue
            if not isinstance(state, PartitionState) or state.key != (self.topic, self.partition):
                self._refuse("format", "the payload is not this partition's state")
                continue
            return Restored(state, candidate.manifest, len(candidate.payload))
        return None


def restore_all(
    records: Sequence[Any],
    keys: Sequence[tuple[str, int]],
    *,
    signer: Signer,
    state_digest: str = "",
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    trusted: tuple[str, ...] = (),
) -> dict[tuple[str, int], Restorer]:
    """Run a :class:`Restorer` per partition in ``keys`` over changelog ``records``."""
    restorers = {
        k: Restorer(
            k[0],
            k[1],
            signer=signer,
            state_digest=state_digest,
            max_bytes=max_bytes,
            trusted=trusted,
        )
        for k in keys
    }
    by_key = {_key(*k): r for k, r in restorers.items()}
    for m in records:
        key = m.key()
        if key is None:
            continue
        base = key.split(b"#", 1)[0].decode("utf-8", "replace")
        r = by_key.get(base)
        if r is not None:
            r.add(key, m.value(), m.headers())
    return restorers
