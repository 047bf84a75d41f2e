"""Settings: one frozen, validated tree, built once at start-up.

Sources, later ones win:

1. defaults (this module);
2. a TOML file (``streamer run -c streamer.toml``);
3. environment variables ``STREAMER_<SECTION>__<KEY>``, e.g. ``STREAMER_KAFKA__BOOTSTRAP_SERVERS``
   or ``STREAMER_WORKER__BATCH_SIZE=1000``. Double underscores separate levels. Under
   ``kafka.client``, ``kafka.consumer`` and ``kafka.producer`` (librdkafka properties, which
   use dots) single underscores become dots: ``STREAMER_KAFKA__CLIENT__SASL_PASSWORD`` sets
   ``sasl.password``. Values are read as the setting's type asks: a list or table setting
   (``fields.features``, ``drift.thresholds``…) takes JSON (``'["a", "b"]'``; an empty value
   is the empty list or table); a free-form value (``model.params.*``, ``drift.concept.params.*``)
   is JSON when it parses as JSON (numbers, ``true``, ``null``…) and a string otherwise; every
   other setting takes the text as it is, so an empty value is the empty string and a password
   may start with ``{`` or ``[``.

Any problem raises :class:`~streamer.errors.ConfigError` naming the setting (and the
environment variable, when one set it) and what it accepts.

Examples
--------
>>> s = load_settings(env={"STREAMER_WORKER__BATCH_SIZE": "250"})
>>> s.worker.batch_size, s.kafka.group_id
(250, 'streamer')
>>> load_settings(env={"STREAMER_WORKER__BATCH_SIZE": "zero"})
Traceback (most recent call last):
...
streamer.errors.ConfigError: worker.batch_size (from STREAMER_WORKER__BATCH_SIZE): Input should be
a valid integer, unable to parse string as an integer (got 'zero')
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from streamer.drift import defaults as drift_defaults
from streamer.errors import ConfigError

__all__ = [
    "ChallengerSettings",
    "CheckpointSettings",
    "ConceptDriftSettings",
    "DriftSettings",
    "EvaluationSettings",
    "FieldSettings",
    "InputSettings",
    "KafkaSettings",
    "LifecycleSettings",
    "ModelSettings",
    "ModelUpdateSettings",
    "OutputSettings",
    "PrometheusSettings",
    "SecuritySettings",
    "Settings",
    "TopicSettings",
    "WindowDriftSettings",
    "WorkerSettings",
    "load_settings",
    "masked",
    "secret_values",
]

ENV_PREFIX = "STREAMER_"
# librdkafka property maps: their keys use dots, so env keys map "_" to ".".
_CLIENT_MAPS = {("kafka", "client"), ("kafka", "consumer"), ("kafka", "producer")}
# Names of settings whose values are secrets: masked by check-config, never echoed in errors.
# sasl.oauthbearer.config carries clientSecret=…; private keys and their passphrases too.
_SECRET = re.compile(
    r"password|secret|token|credential|passphrase|private\.key|oauthbearer\.config|\.pem$"
    r"|hmac|signing",
    re.IGNORECASE,
)


class _Section(BaseModel):
    # Frozen so that a stage cannot change a setting behind the others' backs; extra="forbid"
    # so that a typo in the file is an error, not a silently ignored line.
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Section):
    """Where the cluster is and how to talk to it."""

    bootstrap_servers: str = ""
    """Comma-separated host:port list. Empty means the embedded broker (``streamer demo``)."""
    group_id: str = "streamer"
    client: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """librdkafka properties for every client (security goes here: ``security.protocol``,
    ``sasl.mechanism``, ``sasl.username``, ``sasl.password``, ``ssl.ca.location``…)."""
    consumer: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Extra librdkafka properties for the consumer only (``session.timeout.ms``…)."""
    producer: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Extra librdkafka properties for the producer only (``linger.ms``, ``compression.type``…)."""

    @field_validator("client", "consumer", "producer")
    @classmethod
    def _no_managed_keys(cls, v: dict[str, Any]) -> dict[str, Any]:
        managed = {
            "bootstrap.servers",
            "group.id",
            "enable.auto.commit",
            "enable.auto.offset.store",
        }
        bad = sorted(managed & set(v))
        if bad:
            raise ValueError(
                f"{', '.join(bad)} is managed by streamer: use kafka.bootstrap_servers and "
                "kafka.group_id; offsets are always committed by the worker after delivery"
            )
        return v


class TopicSettings(_Section):
    """Topic names, and how to create them when missing."""

    events: str = "events"
    predictions: str = "predictions"
    dead_letters: str = "events.dead-letters"
    drift_events: str = "drift-events"
    changelog: str = ""
    """Compacted topic of partition checkpoints. Empty: ``<kafka.group_id>-changelog`` (one
    changelog per consumer group, as Kafka Streams names its changelogs)."""
    model_updates: str = "model-updates"
    """Compacted topic of signed model snapshots that downstream services subscribe to."""
    lifecycle_events: str = "lifecycle-events"
    """Decisions of the model lifecycle: challengers started and dropped, promotions,
    rollbacks."""
    create: bool = True
    """Create missing topics at start-up (never alters existing ones)."""
    partitions: int = Field(3, ge=1)
    replication_factor: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _distinct(self) -> TopicSettings:
        names = [self.events, self.predictions, self.dead_letters, self.drift_events]
        for n in names:
            if not n:
                raise ValueError("topic names must not be empty")
        names += [n for n in (self.changelog, self.model_updates, self.lifecycle_events) if n]
        if len(set(names)) != len(names):
            raise ValueError(f"topics must be distinct, got {names}")
        return self


class AvroSettings(_Section):
    schema_file: str = Field("", alias="schema")
    """The .avsc of plain (schemaless) payloads."""
    framing: Literal["auto", "plain", "confluent"] = "auto"
    """``confluent``: magic byte 0 + 4-byte schema id; ``plain``: bare Avro binary; ``auto``:
    Confluent framing when the payload starts with 0 and a known id, plain otherwise."""
    schema_ids: dict[int, str] = Field(default_factory=dict)
    """Confluent schema id -> local .avsc file."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class InputSettings(_Section):
    format: Literal["json", "avro"] = "json"
    max_record_bytes: int = Field(1_048_576, ge=1)
    """Records with a larger value go to the dead-letter topic (reason ``oversized``)."""
    max_abs_value: float = Field(1e12, gt=0)
    """Numeric features (and regression targets) whose magnitude is larger go to the
    dead-letter topic (reason ``out_of_range``) before they reach the model: one finite 1e308
    turns a StandardScaler's statistics, and every later prediction, into NaN for good."""
    max_abs_value_by_feature: dict[str, float] = Field(default_factory=dict)
    """Per-feature overrides of ``max_abs_value``, e.g. ``{ amount_cents = 1e15 }``."""
    avro: AvroSettings = AvroSettings()

    @field_validator("max_abs_value_by_feature")
    @classmethod
    def _positive_limits(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, limit in v.items() if not limit > 0)
        if bad:
            raise ValueError(f"limits must be > 0 (see {', '.join(bad)})")
        return v


class FieldSettings(_Section):
    """How a decoded record maps onto an event."""

    id: str = "id"
    """Field holding the event id (required in every record)."""
    time: str = ""
    """Field holding the event time (epoch seconds or milliseconds, or ISO-8601). Empty: the
    Kafka record timestamp."""
    time_unit: Literal["s", "ms"] = "s"
    label: str = "label"
    """Field holding the label, when the event carries it. Empty: events never carry labels."""
    features: list[str] = Field(default_factory=list)
    """Feature names. Empty: every field but id, time and label."""
    categorical: list[str] = Field(default_factory=list)
    """Features whose values are categories (strings); the others are numbers."""
    optional: list[str] = Field(default_factory=list)
    """Features that may be missing or null; any other listed feature is required."""
    max_id_length: int = Field(1024, ge=1)
    """Longest event id, in characters; a longer one is a validation error (reason
    ``id_too_long``): the id is the key and part of the value of every prediction."""
    max_features: int = Field(1000, ge=1)
    """With ``features`` empty, a partition's model takes at most this many features: the
    first names seen. Fields seen after that are schema drift (``new_field_rate``), not new
    model inputs."""
    max_name_length: int = Field(128, ge=1)
    """Longest name taken from the data, in characters: an inferred feature or a field of the
    learned schema (longer ones are schema drift, counted under ``(other)``) and a class label
    (longer ones are a validation error, ``bad_label``). Feature names become Prometheus label
    values and drift-event fields: this bounds their length."""

    @model_validator(mode="after")
    def _consistent(self) -> FieldSettings:
        if not self.id:
            raise ValueError("fields.id must name the event id field")
        reserved = {self.id, self.time, self.label} - {""}
        clash = sorted(reserved & set(self.features))
        if clash:
            raise ValueError(f"features {clash} are also the id, time or label field")
        if self.features:
            unknown = sorted((set(self.categorical) | set(self.optional)) - set(self.features))
            if unknown:
                raise ValueError(f"categorical/optional names {unknown} are not in fields.features")
        long = [n for n in [*self.features, *self.categorical] if len(n) > self.max_name_length]
        if long:
            raise ValueError(
                f"feature name {long[0][:40]!r}… is longer than fields.max_name_length "
                f"({self.max_name_length}): raise it"
            )
        return self


class ModelSettings(_Section):
    name: str = "champion"
    """Model name carried by predictions (and, later, model updates)."""
    preset: str = "logistic_regression"
    """A preset name (see ``streamer.models.PRESETS``) or ``package.module:factory``. A
    factory is code named by the configuration: the worker imports and runs it (and
    ``streamer check-config`` only with ``--import-models``), so whoever can set this setting
    (the file, ``STREAMER_MODEL__PRESET``) can run code as the worker."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the preset or factory."""
    seed: int = 42


class EvaluationSettings(_Section):
    """Prequential (test-then-train) metrics, kept per partition."""

    metrics: list[str] = Field(default_factory=list)
    """River metric class names. Empty: the task's defaults: Accuracy, F1, LogLoss for a binary
    task; Accuracy, MacroF1, CrossEntropy for a multi-class one; MAE, RMSE for regression."""
    window: int = Field(1000, ge=1)
    """Size of the rolling window, in labelled events."""
    positive_label: str | int | bool = True
    """Positive class for binary metrics such as F1."""
    classes: list[str | int | bool] = Field(default_factory=list)
    """The classes of a classification task. Labels outside them are validation errors
    (reason ``unknown_class``). Empty: a binary model (``logistic_regression``…) takes the
    first 2 distinct labels it sees, a multi-class one the first ``max_classes``."""
    max_classes: int = Field(100, ge=2)
    """With ``classes`` empty, the most classes a multi-class model learns."""

    @model_validator(mode="after")
    def _positive_among_classes(self) -> EvaluationSettings:
        if len(self.classes) != len(set(self.classes)):
            raise ValueError(f"evaluation.classes has duplicates: {self.classes}")
        if len(self.classes) == 2 and self.positive_label not in self.classes:
            raise ValueError(
                f"positive_label {self.positive_label!r} is not one of the 2 classes "
                f"{self.classes}: binary metrics (F1, Precision…) would never see it"
            )
        return self


class ConceptDriftSettings(_Section):
    """Drift detection on the champion's per-event error (0/1, or absolute error)."""

    enabled: bool = True
    detector: str = drift_defaults.DETECTOR
    """A detector name from ``streamer.drift.detectors.DETECTORS``: streamer's DualADWIN (the
    default), or River's ADWIN, DDM, EDDM, HDDM_A, HDDM_W, PageHinkley, FHDDM, KSWIN…"""
    params: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    """Keyword arguments of the detector; unset ones keep the detector's defaults (which
    ``streamer check-config`` prints)."""

    # The detector is checked once, here: a bad name or parameter is a configuration error at
    # start-up, not a traceback when the first partition is assigned. (Imported late: River is
    # heavy, and only settings that name a detector need it.)

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, v: str) -> str:
        if not v:
            return v
        from streamer.drift.detectors import canonical_name

        return canonical_name(v)

    @field_validator("params")
    @classmethod
    def _detector_accepts(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        if "detector" not in info.data:  # the name was refused already
            return v
        if not v and info.data["detector"] in ("", drift_defaults.DETECTOR):
            return v  # the default, as is: nothing to check
        from streamer.drift.detectors import DEFAULT_DETECTOR, check_detector

        check_detector(info.data["detector"] or DEFAULT_DETECTOR, v)
        return v


class WindowDriftSettings(_Section):
    """Reference window against a sliding current window, for features, predictions, labels.

    The defaults live in ``streamer.drift.defaults`` (docs/drift.md says how they were
    chosen)."""

    reference: Literal["first", "pinned"] = "first"
    """``first``: the first ``reference_size`` events after the model (re)starts. ``pinned``:
    the snapshots in ``reference_file`` (made by ``streamer drift-reference``)."""
    reference_file: str = ""
    reference_size: int = Field(drift_defaults.REFERENCE_SIZE, ge=1)
    window_size: int = Field(drift_defaults.WINDOW_SIZE, ge=1)
    every: int = Field(drift_defaults.EVERY, ge=1)
    """Statistics are evaluated every this many events (K); never per event."""
    bins: int = Field(drift_defaults.BINS, ge=2)
    top_k: int = Field(drift_defaults.TOP_K, ge=1)

    @model_validator(mode="after")
    def _pinned_needs_file(self) -> WindowDriftSettings:
        if self.reference == "pinned" and not self.reference_file:
            raise ValueError("reference = 'pinned' needs reference_file")
        return self


# Signal (as in [drift.thresholds]) -> its default (warning, alarm) per statistic.
_DEFAULT_THRESHOLDS = {
    "features": drift_defaults.WINDOW_THRESHOLDS,
    "predictions": drift_defaults.WINDOW_THRESHOLDS,
    "labels": drift_defaults.WINDOW_THRESHOLDS,
    "schema": drift_defaults.SCHEMA_THRESHOLDS,
}


class DriftSettings(_Section):
    """In-stream drift monitoring of every partition."""

    enabled: bool = True
    concept: ConceptDriftSettings = ConceptDriftSettings()
    windows: WindowDriftSettings = WindowDriftSettings()
    features: bool = True
    """Watch the features (data drift)."""
    predictions: bool = True
    """Watch predicted classes and confidence, or predicted values (prediction drift)."""
    labels: bool = True
    """Watch true classes or targets (label drift)."""
    schema_drift: bool = Field(True, alias="schema")
    """Count fields that are new, missing or of a changed type (schema drift)."""
    thresholds: dict[str, dict[str, tuple[float, float]]] = Field(
        default_factory=dict, validate_default=True
    )
    """Per signal (``features``, ``predictions``, ``labels``, ``schema``), statistic ->
    ``[warning, alarm]``, e.g. ``features.psi = [0.1, 0.25]``. Unset ones take the defaults
    of ``streamer.drift.defaults``: once loaded, every signal lists every statistic."""
    max_features: int = Field(100, ge=1)
    """Features watched when ``fields.features`` is empty (the first event's, in order)."""
    max_exported_features: int = Field(50, ge=0)
    """Features with their own Prometheus series (the first ones watched); bounds cardinality.
    Drift events are published for every watched feature."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("thresholds")
    @classmethod
    def _known_statistics(
        cls, v: dict[str, dict[str, tuple[float, float]]]
    ) -> dict[str, dict[str, tuple[float, float]]]:
        allowed = {signal: tuple(stats) for signal, stats in _DEFAULT_THRESHOLDS.items()}
        for signal, stats in v.items():
            if signal not in allowed:
                raise ValueError(f"unknown signal {signal!r}; expected one of {', '.join(allowed)}")
            for stat, (warn, alarm) in stats.items():
                if stat not in allowed[signal]:
                    raise ValueError(
                        f"{signal}: unknown statistic {stat!r}; expected one of "
                        f"{', '.join(allowed[signal])}"
                    )
                if not 0 <= warn <= alarm:
                    raise ValueError(
                        f"{signal}.{stat}: need 0 <= warning <= alarm, got {[warn, alarm]}"
                    )
        # The effective thresholds: what is set, over the defaults.
        return {
            signal: {**defaults, **v.get(signal, {})}
            for signal, defaults in _DEFAULT_THRESHOLDS.items()
        }

    def thresholds_for(self, signal: str) -> dict[str, tuple[float, float]]:
        return dict(self.thresholds.get(signal, {}))


class CheckpointSettings(_Section):
    """Partition state (models, metrics, drift monitors, next offset) saved to the changelog."""

    enabled: bool = True
    every_events: int = Field(10_000, ge=1)
    """Checkpoint a partition after this many events since its last checkpoint..."""
    every_seconds: float = Field(60.0, gt=0)
    """...or this many seconds, whichever comes first; also on revoke and at shutdown."""
    chunk_bytes: int = Field(512 * 1024, ge=1024, le=64 * 1024 * 1024)
    """A state larger than this is split into several changelog records of at most this size
    (keep it under the brokers' ``message.max.bytes``)."""
    max_state_bytes: int = Field(1 << 30, ge=1024)
    """Largest state (decompressed) a restore accepts."""


class ChallengerSettings(_Section):
    """An alternative model run in shadow beside the champion, as a permanent contender."""

    name: str
    """Its name in metrics, lifecycle events and (once promoted) model updates."""
    preset: str
    """A preset name or ``package.module:factory``, as ``model.preset``."""
    params: dict[str, Any] = Field(default_factory=dict)


def _both_levels() -> list[Literal["warning", "alarm"]]:
    return ["warning", "alarm"]


class LifecycleSettings(_Section):
    """Challengers in shadow, promotion on evidence, automatic rollback (see docs/lifecycle.md)."""

    enabled: bool = True
    retrain_on: list[Literal["warning", "alarm"]] = Field(default_factory=_both_levels)
    """Concept-drift levels of the champion that start a fresh challenger (empty: never)."""
    challengers: list[ChallengerSettings] = Field(default_factory=list)
    """Alternative models, in shadow from the start."""
    step: int = Field(20, ge=1, le=100_000)
    """Decisions are taken every this many offsets of a partition."""
    window: int = Field(300, ge=10)
    """Labelled events compared (paired, the most recent ones) when testing a model in shadow
    against the champion."""
    min_compared: int = Field(100, ge=1)
    """Fewest paired events before a test can promote or roll back."""
    margin: float = Field(0.03, ge=0)
    """Error a challenger must save per event over the window to win: accuracy points for a
    classifier, a share of the champion's mean absolute error for a regressor."""
    alpha: float = Field(0.01, gt=0, lt=1)
    """Significance of the paired test (McNemar for classifiers, paired t for regressors)."""
    challenger_events: int = Field(5000, ge=1)
    """A challenger started on drift that has not won after this many events is dropped."""
    keep_previous: int = Field(5000, ge=1)
    """Events the previous champion stays in shadow after a promotion, for a rollback."""

    @model_validator(mode="after")
    def _distinct_names(self) -> LifecycleSettings:
        names = [c.name for c in self.challengers]
        if len(set(names)) != len(names) or any(not n for n in names):
            raise ValueError(f"challenger names must be distinct and not empty, got {names}")
        if self.min_compared > self.window:
            raise ValueError(f"min_compared ({self.min_compared}) is above window ({self.window})")
        return self


class ModelUpdateSettings(_Section):
    """Signed model snapshots on the model-update topic, for downstream services."""

    publish: bool = True
    every_events: int = Field(10_000, ge=1)
    """Publish a partition's champion after this many events learned since its last update..."""
    every_seconds: float = Field(300.0, gt=0)
    """...or this many seconds; and at every promotion and rollback."""
    chunk_bytes: int = Field(512 * 1024, ge=1024, le=64 * 1024 * 1024)
    """A payload larger than this is split into several records (under message.max.bytes)."""
    max_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    """A model larger than this (compressed) is not published: an error and a metric."""


class SecuritySettings(_Section):
    """Signing of checkpoints and model updates (HMAC-SHA256)."""

    signing_key: str = ""
    """The shared secret (at least 16 characters; ``openssl rand -hex 32`` makes one). Every
    worker of a deployment and every model subscriber needs the same key. Better set from the
    environment: ``STREAMER_SECURITY__SIGNING_KEY``."""
    signing_key_file: str = ""
    """A file holding the key (a Kubernetes or Docker secret), instead of ``signing_key``."""
    trusted_modules: list[str] = Field(default_factory=list)
    """Modules whose classes a restored checkpoint or model update may contain, beyond River,
    NumPy and streamer (the modules of a ``module:factory`` model). Unpickling is restricted
    to these: a payload naming anything else is refused."""

    @model_validator(mode="after")
    def _one_key(self) -> SecuritySettings:
        if self.signing_key and self.signing_key_file:
            raise ValueError("set signing_key or signing_key_file, not both")
        if self.signing_key and len(self.signing_key) < 16:
            raise ValueError("signing_key needs at least 16 characters (openssl rand -hex 32)")
        return self


class WorkerSettings(_Section):
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    """``at_least_once``: outputs are delivered before offsets are committed, so a crash may
    re-emit some. ``exactly_once``: outputs, checkpoints and offsets commit in one Kafka
    transaction; readers with ``isolation.level=read_committed`` see each output once."""
    transactional_id: str = ""
    """``exactly_once`` only: the producer's transactional.id prefix. Empty:
    ``<group_id>-<hostname>``; ``streamer run --workers N`` appends the worker index. Two live
    processes must not share one (the older is fenced)."""
    commit_interval: float | None = Field(None, ge=0, le=3600)
    """Seconds between commits of the consumer offsets (with ``exactly_once``: of the
    transaction). Outputs are produced as each batch is processed and delivered in the
    background; a commit first waits for them. Empty: 1 s (``at_least_once``; a crash re-emits
    at most about that much), 0.1 s (``exactly_once``; readers see outputs at commits);
    0: after every batch."""
    batch_size: int = Field(500, ge=1, le=100_000)
    """Most records taken per consume call; outputs and offsets are committed per batch."""
    poll_timeout: float = Field(0.2, gt=0, le=60)
    """Seconds a consume call waits for a full batch on a quiet topic."""
    shutdown_timeout: float = Field(30.0, gt=0)
    """Seconds to wait for outputs to be delivered on shutdown."""


class OutputSettings(_Section):
    format: Literal["json", "avro"] = "json"
    """Encoding of predictions: JSON, or Avro with schemas/prediction.avsc."""
    shadow_predictions: bool = False
    """Also publish the predictions of the models in shadow (``role`` tells them apart)."""


class PrometheusSettings(_Section):
    port: int = Field(8000, ge=0, le=65535)
    """Port of the /metrics endpoint; 0 disables it."""
    host: str = "0.0.0.0"


class Settings(_Section):
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    input: InputSettings = InputSettings()
    fields: FieldSettings = FieldSettings()
    model: ModelSettings = ModelSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    drift: DriftSettings = DriftSettings()
    worker: WorkerSettings = WorkerSettings()
    output: OutputSettings = OutputSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    security: SecuritySettings = SecuritySettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    models: ModelUpdateSettings = ModelUpdateSettings()

    # The file the settings came from; relative paths in it are resolved against its folder.
    source: str = ""

    @model_validator(mode="after")
    def _chunks_fit(self) -> Settings:
        # Checkpoint and model-update chunks are records like any output: they must fit what
        # the producer sends. (Key, headers and framing take well under the 1 KiB allowed.)
        k = self.kafka
        limit = k.producer.get("message.max.bytes", k.client.get("message.max.bytes", 1_000_000))
        try:
            limit = int(limit)
        except (TypeError, ValueError):
            raise ValueError(
                f"kafka.producer message.max.bytes is not a number: {limit!r}"
            ) from None
        for name, on, chunk in (
            ("checkpoint.chunk_bytes", self.checkpoint.enabled, self.checkpoint.chunk_bytes),
            ("models.chunk_bytes", self.models.publish, self.models.chunk_bytes),
        ):
            if on and chunk + 1024 > limit:
                raise ValueError(
                    f"{name} ({chunk}) + 1 KiB for its key and headers must fit the "
                    f"producer's message.max.bytes ({limit}): lower it"
                )
        return self

    def resolve_path(self, path: str) -> Path:
        """A path from the settings, relative to the settings file's folder."""
        p = Path(path)
        if p.is_absolute() or not self.source:
            return p
        return Path(self.source).parent / p

    @property
    def changelog_topic(self) -> str:
        return self.topics.changelog or f"{self.kafka.group_id}-changelog"

    def signing_key(self) -> bytes | None:
        """The signing key as bytes, from ``security.signing_key`` or the file; None if unset."""
        sec = self.security
        if sec.signing_key:
            return sec.signing_key.encode()
        if sec.signing_key_file:
            path = self.resolve_path(sec.signing_key_file)
            try:
                key = path.read_bytes().strip()
            except OSError as exc:
                raise ConfigError(
                    "security.signing_key_file", f"cannot read {str(path)!r}: {exc.strerror}"
                ) from exc
            if len(key) < 16:
                raise ConfigError("security.signing_key_file", f"{path} holds fewer than 16 bytes")
            return key
        return None

    def state_digest(self) -> str:
        """SHA-256 of the settings that shape a partition's models and metrics: a checkpoint
        made under another digest holds models this configuration would not build."""
        parts = {
            k: getattr(self, k).model_dump(mode="json") for k in ("model", "fields", "evaluation")
        }
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def digest(self) -> str:
        """SHA-256 of the effective settings, secrets included: it identifies a configuration."""
        data = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()


def _env_overrides(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    tree: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if any(not p for p in parts):
            raise ConfigError(name, "empty level in environment variable name")
        if len(parts) == 3 and (parts[0], parts[1]) in _CLIENT_MAPS:
            parts[2] = parts[2].replace("_", ".")
        value = _env_value(name, raw, _expected_type(parts))
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(name, "conflicts with another STREAMER_ variable")
        node[parts[-1]] = value
        origin[tuple(parts)] = name
    return tree, origin


_UNKNOWN = object()


def _expected_type(parts: list[str]) -> Any:
    """The type the settings tree holds at ``parts`` (``_UNKNOWN`` where there is no setting)."""
    node: Any = Settings
    for part in parts:
        node = _without_none(node)
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = next(
                (f for n, f in node.model_fields.items() if part in (n, f.alias)),
                None,
            )
            if field is None:
                return _UNKNOWN
            node = field.annotation
        elif get_origin(node) is dict:
            node = get_args(node)[1]
        else:
            return _UNKNOWN
    return node


def _without_none(tp: Any) -> Any:
    if get_origin(tp) in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_container(tp: Any) -> bool:
    tp = _without_none(tp)
    return get_origin(tp) in (list, tuple, dict, set) or (
        isinstance(tp, type) and issubclass(tp, (BaseModel, list, tuple, dict, set))
    )


def _env_value(name: str, raw: str, expected: Any) -> Any:
    """An environment variable's text as the setting it sets expects it (see the module doc)."""
    if expected is Any:
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    if expected is _UNKNOWN or not _is_container(expected):
        return raw
    if not raw.strip():
        tp = _without_none(expected)
        tp = get_origin(tp) or tp
        return {} if tp is dict or (isinstance(tp, type) and issubclass(tp, BaseModel)) else []
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            name, f"expects JSON (a list or an object), which does not parse: {exc}"
        ) from exc


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _setting_name(loc: tuple[str | int, ...], origin: Mapping[tuple[str, ...], str]) -> str:
    # pydantic's loc may end in the function name of a model validator; drop non-field parts.
    parts = [str(p) for p in loc]
    name = ".".join(parts) or "settings"
    for n in range(len(parts), 0, -1):
        env = origin.get(tuple(parts[:n]))
        if env:
            return f"{name} (from {env})"
    below = sorted(v for k, v in origin.items() if k[: len(parts)] == tuple(parts))
    return f"{name} (from {below[0]})" if below else name


# pydantic's name for a union member in an error's location ("str", "list[str]"…).
_UNION_MEMBER = re.compile(r"^(str|int|float|bool|none|list\[.*\]|dict\[.*\]|tuple\[.*\])$")


def _setting_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """An error location without pydantic's validator names and union members."""
    parts = tuple(p for p in loc if not str(p).startswith("_"))
    while len(parts) > 1 and _UNION_MEMBER.match(str(parts[-1])):
        parts = parts[:-1]
    return parts


def _accepted(loc: tuple[str | int, ...]) -> list[str]:
    """The setting names accepted beside the unknown one at ``loc``."""
    model: Any = Settings
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", {})
        field = fields.get(str(part))
        model = field.annotation if field is not None else None
    fields = getattr(model, "model_fields", {})
    return sorted((f.alias or n) for n, f in fields.items() if n != "source")


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings tree from defaults, a TOML file, the environment and overrides.

    Parameters
    ----------
    path
        TOML file; None for defaults only.
    env
        Environment to read ``STREAMER_*`` variables from (default: ``os.environ``).
    overrides
        A nested dict applied last (command-line options use it).
    """
    data: dict[str, Any] = {}
    source = ""
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise ConfigError("--config", f"settings file {str(p)!r} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{p} is not valid TOML: {exc}") from exc
        source = str(p.resolve())
    env_tree, origin = _env_overrides(os.environ if env is None else env)
    data = _merge(data, env_tree)
    if overrides:
        data = _merge(data, overrides)
    data["source"] = source
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        loc = _setting_loc(err["loc"])
        # A value that fits no member of a union fails once per member: one setting, one error.
        same = [e["msg"] for e in errors if _setting_loc(e["loc"]) == loc]
        if len(same) > 1:
            wanted = " or ".join(dict.fromkeys(m.removeprefix("Input should be ") for m in same))
            err = {**err, "msg": f"Input should be {wanted}"}
        others = {_setting_loc(e["loc"]) for e in errors} - {loc}
        got = err.get("input")
        shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
        if any(_SECRET.search(str(p)) for p in loc):
            shown = " (value not shown: a secret)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown setting; accepted here: {', '.join(_accepted(loc))}"
            shown = ""
        more = f" [and {len(others)} more]" if others else ""
        raise ConfigError(_setting_name(loc, origin), f"{msg}{shown}{more}") from exc


def secret_values(properties: Mapping[str, Any]) -> list[str]:
    """The values of the secret-looking keys of a property map (to scrub them from messages).

    >>> secret_values({"sasl.password": "hunter2", "sasl.username": "me", "ssl.key.password": ""})
    ['hunter2']
    """
    return [str(v) for k, v in properties.items() if _SECRET.search(str(k)) and v not in ("", None)]


def masked(settings: Settings) -> dict[str, Any]:
    """The settings as plain data, with every secret-looking value replaced by ``******``."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: ("******" if _SECRET.search(str(k)) and v not in ("", None) else walk(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    result: dict[str, Any] = walk(settings.model_dump(mode="json", by_alias=True))
    return result


def effective(settings: Settings, *, task: str = "classification") -> dict[str, Any]:
    """The settings that apply, as plain data with secrets masked (``streamer check-config``).

    The tree already holds every default but one: the concept detector's parameters are the
    detector's own, so they are read from its signature here (this imports River).
    ``task`` is the model's (``classification`` or ``regression``): some detectors only take
    a classifier's 0/1 errors.
    """
    from streamer.drift.detectors import effective_detector

    data = masked(settings)
    c = settings.drift.concept
    try:
        name, params = effective_detector(c.detector, c.params, task=task, seed=settings.model.seed)
    except ValueError as exc:
        raise ConfigError("drift.concept", str(exc)) from exc
    data["drift"]["concept"].update(detector=name, params=params)
    return data
