"""Model updates: signed model snapshots on a compacted topic, and the services that follow them.

The model-update topic is the registry. Each update of a partition's champion is written as

* its payload (the River model pickled and compressed) in one or more **chunk** records keyed
  ``<model>/<topic>/<partition>#<a|b>-<index>`` (alternate updates alternate key sets, so that
  compaction never removes the chunks of the newest complete update), then
* one **manifest** record keyed ``<model>/<topic>/<partition>``: a JSON document (or Avro,
  ``schemas/model_update.avsc``, with ``output.format = "avro"``) with the model's name,
  version and parent version, the reason (``initial``, ``periodic``, ``promotion``,
  ``rollback``, ``manual``), when, its lineage (source topic and partition, first and last
  offset learned, events learned, the drift event that started it), its metrics, the settings
  hash, the Python, River and streamer versions, and the payload's size, SHA-256 and
  HMAC-SHA256 signature over all of that.

``(version, revision)`` orders the updates of one key: the version changes when the champion
is replaced (a promotion, a rollback), the revision (events the model has learned) as it keeps
learning. Any Kafka client can read the manifests (``kcat -C -t model-updates``).

:class:`ModelSubscriber` follows the topic: it verifies the signature and the hash before it
unpickles anything (with :func:`streamer.signing.loads`' restricted unpickler), and refuses
unsigned, tampered, oversized, foreign-key or older-version updates, keeping the last good
model of each key.

Examples
--------
>>> from river import linear_model
>>> from streamer.signing import Signer
>>> signer = Signer(b"0123456789abcdef")
>>> update = ModelUpdate(name="champion", topic="events", partition=0, version=2, revision=500,
...                      parent_version=1, reason="promotion")
>>> records = update_records(update, linear_model.LogisticRegression(), signer=signer,
...                          chunk_bytes=1024)
>>> [key for key, _, _ in records][-1]
'champion/events/0'
>>> assembler = Assembler(signer)
>>> for key, value, headers in records:
...     got = assembler.add(key.encode(), value, headers)
>>> got.update.version, type(got.model).__name__
(2, 'LogisticRegression')
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from streamer.errors import PayloadError
from streamer.records import Headers
from streamer.resources import load_avsc
from streamer.signing import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    Chunks,
    Signer,
    chunk_records,
    dumps,
    loads,
    sha256,
)
from streamer.state import library_versions

__all__ = [
    "MODEL_UPDATE_SCHEMA",
    "REASONS",
    "Accepted",
    "Assembler",
    "ModelSubscriber",
    "ModelUpdate",
    "Refused",
    "read_registry",
    "update_records",
]

log = logging.getLogger(__name__)

#: Why an update was published (a bounded set: it becomes a metric label).
REASONS = ("initial", "periodic", "promotion", "rollback", "manual")
_KIND = "streamer.model_update"
_ID_HEADER = "streamer.update"
_FORMAT = 1

#: Avro schema of the manifest (``output.format = "avro"``), from the shipped
#: ``streamer/schemas/model_update.avsc``. JSON manifests carry the same fields.
MODEL_UPDATE_SCHEMA: dict[str, Any] = load_avsc("model_update")


@dataclass(slots=True)
class ModelUpdate:
    """What a model-update manifest says (everything but the model itself)."""

    name: str
    topic: str
    partition: int
    version: int
    revision: int
    parent_version: int | None = None
    reason: str = "periodic"
    created_at: float = 0.0
    model_class: str = ""
    first_offset: int = -1
    last_offset: int = -1
    events_learned: int = 0
    trigger: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    settings_hash: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    payload_format: str = "pickle+zlib"
    payload_bytes: int = 0
    payload_sha256: str = ""
    chunks: int = 0
    chunk_keys: str = ""
    key_id: str = ""
    signature: str = ""

    @property
    def key(self) -> str:
        return f"{self.name}/{self.topic}/{self.partition}"

    @property
    def order(self) -> tuple[int, int]:
        return (self.version, self.revision)

    def header(self) -> dict[str, Any]:
        """The signed fields: everything but the signature."""
        doc = asdict(self)
        doc.pop("signature")
        return {"kind": _KIND, "format": _FORMAT, **doc}


def update_records(
    update: ModelUpdate,
    model: Any,
    *,
    signer: Signer,
    chunk_bytes: int,
    max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    encode: Callable[[Mapping[str, Any]], bytes] | None = None,
    payload: bytes | None = None,
) -> list[tuple[str, bytes, Headers]]:
    """The records of one model update: the payload's chunks, then the signed manifest.

    Fills in the payload fields, the versions, the creation time and the signature of
    ``update``. ``encode`` writes the manifest (JSON by default); ``payload`` is the already
    pickled model, if the caller has it (see :func:`streamer.signing.dumps`).

    Raises
    ------
    PayloadError
        If the compressed model is larger than ``max_bytes``.
    """
    if payload is None:
        payload = dumps(model)
    if len(payload) > max_bytes:
        raise PayloadError(
            f"model {update.key} v{update.version} is {len(payload)} bytes compressed, "
            f"over models.max_bytes ({max_bytes}): not published"
        )
    half = "ab"[update.revision % 2]
    base = update.key
    ident = f"{update.version}.{update.revision}".encode()
    records: list[tuple[str, bytes, Headers]] = chunk_records(
        base, payload, chunk_bytes, half=half, ident=ident, header=_ID_HEADER
    )
    update.created_at = update.created_at or time.time()
    update.model_class = update.model_class or _describe(model)
    update.versions = update.versions or library_versions()
    update.payload_bytes = len(payload)
    update.payload_sha256 = sha256(payload)
    update.chunks = len(records)
    update.chunk_keys = f"{base}#{half}"
    update.key_id = signer.key_id
    update.signature = signer.sign(update.header(), payload)
    doc = {"kind": _KIND, "format": _FORMAT, **asdict(update)}
    value = encode(doc) if encode is not None else orjson.dumps(doc)
    records.append((base, value, [("streamer.kind", b"manifest")]))
    return records


def _describe(model: Any) -> str:
    steps = getattr(model, "steps", None)
    if isinstance(steps, Mapping):
        return " | ".join(type(s).__name__ for s in steps.values())
    return type(model).__name__


@dataclass(slots=True)
class Accepted:
    """A verified update and its model, ready to use."""

    update: ModelUpdate
    model: Any


@dataclass(slots=True)
class Refused:
    """An update that was turned down, and why (``reason`` is a short word)."""

    key: str
    reason: str
    detail: str
    update: ModelUpdate | None = None


def decode_manifest(value: bytes) -> dict[str, Any]:
    """A manifest's fields from JSON or Avro (told apart by the first byte)."""
    if value[:1] == b"{":
        doc = orjson.loads(value)
    else:
        import io

        import fastavro

        doc = fastavro.schemaless_reader(
            io.BytesIO(value), fastavro.parse_schema(MODEL_UPDATE_SCHEMA), None
        )
    if not isinstance(doc, dict):
        raise ValueError("a manifest is an object")
    return doc


class Assembler:
    """Puts model updates back together from the topic's records, verifying each one.

    Feed it records in order (:meth:`add`); a manifest completes an update and returns an
    :class:`Accepted` (with the unpickled model), a :class:`Refused`, or None for chunks and
    records that are not model updates. ``verify_only`` skips unpickling (``models list``).
    """

    def __init__(
        self,
        signer: Signer | None,
        *,
        max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        trusted: tuple[str, ...] = (),
        verify_only: bool = False,
    ) -> None:
        self.signer = signer
        self.max_bytes = max_bytes
        self.trusted = trusted
        self.verify_only = verify_only
        self._chunks = Chunks()
        #: The newest accepted update of each key.
        self.latest: dict[str, ModelUpdate] = {}

    def add(
        self, key: bytes | None, value: bytes | None, headers: Headers | None
    ) -> Accepted | Refused | None:
        if key is None or value is None:
            return None
        k = key.decode("utf-8", "replace")
        if self._chunks.add(k, value, dict(headers or []).get(_ID_HEADER) or b""):
            return None
        return self._manifest(k, value)

    def _manifest(self, key: str, value: bytes) -> Accepted | Refused | None:
        try:
            doc = decode_manifest(value)
        except Exception:
            return None  # not a model update (someone else's record on the topic)
        if doc.get("kind") != _KIND:
            return None
        if doc.get("format") != _FORMAT:
            return Refused(key, "format", f"manifest format {doc.get('format')!r}")
        doc.pop("kind", None)
        doc.pop("format", None)
        try:
            update = ModelUpdate(**doc)
        except TypeError as exc:
            return Refused(key, "format", f"unexpected manifest fields: {exc}")
        where = f"{key} v{update.version} (revision {update.revision})"
        if not update.signature:
            return Refused(key, "unsigned", f"{where} is not signed", update)
        if self.signer is None:
            return Refused(key, "no_key", f"{where}: no signing key to verify it with", update)
        if update.key_id != self.signer.key_id:
            return Refused(
                key,
                "foreign_key",
                f"{where} is signed with another key (key id {update.key_id}, ours "
                f"{self.signer.key_id})",
                update,
            )
        if update.payload_bytes > self.max_bytes:
            return Refused(
                key,
                "oversized",
                f"{where}: {update.payload_bytes} bytes > {self.max_bytes}",
                update,
            )
        ident = f"{update.version}.{update.revision}".encode()
        payload, found = self._chunks.take(update.chunk_keys, ident, update.chunks)
        if payload is None:
            return Refused(key, "truncated", f"{where}: {found} of {update.chunks} chunks", update)
        if not self.signer.verify(update.header(), payload, update.signature):
            return Refused(key, "bad_signature", f"{where}: signature does not match", update)
        if sha256(payload) != update.payload_sha256:
            return Refused(key, "bad_hash", f"{where}: SHA-256 does not match", update)
        last = self.latest.get(key)
        if (
            last is not None
            and update.order == last.order
            and (update.payload_sha256 == last.payload_sha256)
        ):
            return None  # the same update again (a worker replayed after a crash)
        if last is not None and update.order <= last.order:
            return Refused(
                key,
                "older",
                f"{where} is not newer than v{last.version} (revision {last.revision})",
                update,
            )
        model = None
        if not self.verify_only:
            try:
                model = loads(payload, max_bytes=self.max_bytes * 64, trusted=self.trusted)
            except PayloadError as exc:
                return Refused(key, "unpickle", f"{where}: {exc}", update)
        self.latest[key] = update
        return Accepted(update, model)


def read_registry(settings: Any, *, verify_only: bool = False) -> list[Accepted | Refused]:
    """Every update on the model-update topic, verified, from the start to the end."""
    from streamer import kafka

    key = settings.signing_key()
    assembler = Assembler(
        Signer(key) if key else None,
        max_bytes=settings.models.max_bytes,
        trusted=tuple(settings.security.trusted_modules),
        verify_only=verify_only,
    )
    topic = settings.topics.model_updates
    admin = kafka.make_admin(settings.kafka)
    n = kafka.partition_count(admin, topic)
    if not n:
        from streamer.errors import BrokerError

        raise BrokerError(f"topic {topic!r} does not exist")
    out: list[Accepted | Refused] = []
    for m in kafka.read_to_end(settings.kafka, topic, range(n)):
        got = assembler.add(m.key(), m.value(), m.headers())  # type: ignore[arg-type]
        if got is not None:
            out.append(got)
    return out


class ModelSubscriber:
    """Follow the model-update topic: verified, ready River models as they are published.

    Parameters
    ----------
    settings
        Settings with the brokers (``kafka``), the topic (``topics.model_updates``) and the
        signing key (``security``); ``security.trusted_modules`` for models of your own.
    name
        Only this model's updates (default: every model).
    from_beginning
        Replay the topic from the start (the registry's history), or follow only new updates.

    Iterate it (blocks until an update arrives; ends when :meth:`close` is called), or pass
    a callback to :meth:`run`. Refused updates are logged, kept in :attr:`refused`, and passed
    to ``on_refused``; the last good model of each key stays in :attr:`models`.

    Examples
    --------
    ::

        from streamer import ModelSubscriber
        from streamer.settings import load_settings

        with ModelSubscriber(load_settings("streamer.toml")) as updates:
            for accepted in updates:
                scorer.model = accepted.model   # hot swap
    """

    def __init__(
        self,
        settings: Any,
        *,
        name: str | None = None,
        from_beginning: bool = True,
        on_refused: Callable[[Refused], None] | None = None,
    ) -> None:
        from streamer import kafka

        key = settings.signing_key()
        self.signer = Signer(key) if key else None
        self.name = name
        self.on_refused = on_refused
        m = settings.models
        self._assembler = Assembler(
            self.signer, max_bytes=m.max_bytes, trusted=tuple(settings.security.trusted_modules)
        )
        self.topic = settings.topics.model_updates
        self._consumer = kafka.make_reader(settings.kafka, self.topic, from_end=not from_beginning)
        # Following from the end, the first update of a partition may have begun before the
        # subscription did (its first chunks before the start; some brokers also place the
        # end inside the last record batch): incomplete, it is skipped, not refused.
        self._started: set[int] | None = None if from_beginning else set()
        self.refused: list[Refused] = []
        #: The last good model of each key (``<model>/<topic>/<partition>``).
        self.models: dict[str, Any] = {}
        self._closed = False

    def __enter__(self) -> ModelSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._consumer.close()

    def poll(self, timeout: float = 1.0) -> list[Accepted]:
        """The updates verified among the records that arrive within ``timeout`` seconds."""
        out: list[Accepted] = []
        for m in self._consumer.consume(500, timeout):
            if m.error() is not None:
                continue
            key = m.key()
            if (
                self.name is not None
                and key is not None
                and not key.startswith(f"{self.name}/".encode())
            ):
                continue
            got = self._assembler.add(key, m.value(), m.headers())  # type: ignore[arg-type]
            if got is not None and self._started is not None:
                partition = m.partition() or 0
                first = partition not in self._started
                self._started.add(partition)
                if first and isinstance(got, Refused) and got.reason == "truncated":
                    log.info("skipped an update that began before this subscriber: %s", got.detail)
                    continue
            if isinstance(got, Accepted):
                self.models[got.update.key] = got.model
                out.append(got)
            elif isinstance(got, Refused):
                log.warning("model update refused (%s): %s", got.reason, got.detail)
                self.refused.append(got)
                if self.on_refused is not None:
                    self.on_refused(got)
        return out

    def __iter__(self) -> Iterator[Accepted]:
        while not self._closed:
            yield from self.poll(0.5)

    def run(self, callback: Callable[[Accepted], None], *, stop: Callable[[], bool]) -> None:
        """Call ``callback`` with each verified update until ``stop()`` returns true."""
        while not stop() and not self._closed:
            for accepted in self.poll(0.5):
                callback(accepted)
