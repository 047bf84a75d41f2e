"""All drift signals of one partition: concept, features, predictions, labels and schema.

Two kinds of signal, kept apart because they have different owners:

* :class:`ModelDrift` belongs to a model (it sits in the champion's slot): concept drift on the
  model's error (:class:`~streamer.drift.concept.ConceptDriftMonitor`, O(1) per event) and
  drift of its predictions (a :class:`~streamer.drift.window.WindowMonitor`). A new champion
  gets a new one: its references restart.
* :class:`DriftMonitor` belongs to the data (it sits in the partition's state): the window
  monitors of features and labels and the schema monitor
  (:class:`~streamer.drift.schema.SchemaMonitor`), plus the alarm levels of every signal.

Per batch the worker hands the partition's monitor the parsed batch, the prequential outcome
and the champion's :class:`ModelDrift`;
it returns a :class:`DriftReport`: the latest value of every statistic evaluated in the batch
(for gauges) and a :class:`~streamer.records.DriftEvent` for every change of alarm level (for
the drift-events topic). A statistic that stays in alarm does not repeat its event at each
evaluation; its return below the warning level is an event too (level ``ok``), so the topic
says since when and until when.

Everything is deterministic and independent of how records are split into batches, and
both classes hold plain data only (no settings objects), so they pickle into checkpoints.
"""

from __future__ import annotations

import inspect
import json
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamer.drift.concept import DEFAULT_DETECTOR, DRIFT, WARNING, ConceptDriftMonitor
from streamer.drift.schema import SchemaMonitor
from streamer.drift.window import Finding, WindowMonitor
from streamer.errors import ConfigError
from streamer.prequential import Outcome
from streamer.records import DriftEvent, Event
from streamer.settings import DriftSettings, FieldSettings
from streamer.validate import Parsed

__all__ = [
    "CLEAR_AFTER",
    "LEVELS",
    "SIGNALS",
    "DriftMonitor",
    "DriftReport",
    "ModelDrift",
    "by_offset",
    "label_rows",
    "load_reference",
    "prediction_rows",
]

SIGNALS = ("concept", "feature", "prediction", "label", "schema")
#: Evaluations in a row below its level before a statistic's level goes down.
CLEAR_AFTER = 3
LEVELS = ("ok", "warning", "alarm")
# Errors averaged for the "recent error" of a concept drift raised without a warning first.
_RECENT_ERRORS = 50
# WindowMonitor's own defaults, for the settings left unset (and for the schema monitor).
_WINDOW_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(WindowMonitor).parameters.items()
    if p.default is not inspect.Parameter.empty
}


@dataclass(slots=True)
class DriftReport:
    """What a batch changed: statistics to export and drift events to publish."""

    statistics: list[tuple[str, Finding]] = field(default_factory=list)
    events: list[DriftEvent] = field(default_factory=list)
    concept_states: list[int] = field(default_factory=list)


def load_reference(path: str | Path) -> dict[str, Any]:
    """A pinned reference file: ``{"features": snapshot, "predictions": …, "labels": …}``."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError("drift.windows.reference_file", f"{path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise ConfigError("drift.windows.reference_file", f"{path} is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError("drift.windows.reference_file", f"{path} must hold a JSON object")
    return data


class _ErrorBaseline:
    """The model's error since the change began vs before it, since the last drift: O(1).

    "Since the change began" is since the detector's warning, when it gave one; otherwise the
    last ``recent`` errors.
    """

    def __init__(self, recent: int = _RECENT_ERRORS) -> None:
        self._recent: deque[float] = deque(maxlen=recent)
        self._recent_sum = 0.0
        self._sum = 0.0
        self._n = 0
        self._warned: tuple[float, int] | None = None

    def add(self, error: float) -> None:
        recent = self._recent
        if len(recent) == recent.maxlen:
            self._recent_sum -= recent[0]
        recent.append(error)
        self._recent_sum += error
        self._sum += error
        self._n += 1

    def warning(self) -> None:
        """The detector entered its warning zone after the last error added."""
        self._warned = (self._sum, self._n - 1)

    def values(self) -> tuple[float, float]:
        """(error since the change began, error before it); NaN where there is none."""
        if self._warned is not None:
            before_sum, before_n = self._warned
        else:
            before_sum, before_n = self._sum - self._recent_sum, self._n - len(self._recent)
        after_n = self._n - before_n
        after = (self._sum - before_sum) / after_n if after_n else math.nan
        before = before_sum / before_n if before_n else math.nan
        return after, before

    def reset(self) -> None:
        self.__init__(self._recent.maxlen or _RECENT_ERRORS)  # type: ignore[misc]


def _window_kwargs(settings: DriftSettings) -> dict[str, Any]:
    """The WindowMonitor keywords the settings set (unset ones keep WindowMonitor's defaults)."""
    w = settings.windows
    return {
        k: v
        for k, v in {
            "reference_size": w.reference_size,
            "window_size": w.window_size,
            "every": w.every,
            "bins": w.bins,
            "top_k": w.top_k,
        }.items()
        if v is not None
    }


def _make_window(
    name: str,
    numeric: list[str],
    categorical: list[str],
    *,
    kwargs: Mapping[str, Any],
    thresholds: Mapping[str, tuple[float, float]],
    pinned: Mapping[str, Any] | None,
) -> WindowMonitor:
    kw = dict(kwargs)
    if pinned is not None:
        snap = pinned.get(name)
        if snap is None:
            raise ConfigError(
                "drift.windows.reference_file",
                f"the pinned reference has no {name!r} snapshot (make one with "
                "`streamer drift-reference`)",
            )
        kw.update(reference="pinned", pinned=snap)
    try:
        return WindowMonitor(numeric, categorical, thresholds=thresholds, **kw)
    except ValueError as exc:
        raise ConfigError(f"drift.windows ({name})", str(exc)) from exc


def label_rows(events: Sequence[Event], classifier: bool) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows of the ``label`` column of the labelled events: classes (as strings) or targets."""
    labelled = [e for e in events if e.y is not None]
    rows = [{"label": str(e.y) if classifier else e.y} for e in labelled]
    return rows, [e.offset for e in labelled]


def prediction_rows(
    scored: Sequence[tuple[Event, Any, Any]], classifier: bool
) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows of the ``prediction`` column of scored events: predicted classes or values.

    Predicted classes, not the model's confidence: an online learner's confidence keeps rising
    as it learns, which would read as drift at every start.
    """
    rows, offsets = [], []
    for ev, y_pred, _ in scored:
        if y_pred is not None:
            rows.append({"prediction": str(y_pred) if classifier else y_pred})
            offsets.append(ev.offset)
    return rows, offsets


class ModelDrift:
    """The drift signals of one model: concept drift on its error, drift of its predictions.

    Built by :meth:`DriftMonitor.model_drift` for a partition's champion; a new champion gets a
    new one, so its error baseline and prediction reference start from its own first events.
    """

    def __init__(
        self,
        concept: ConceptDriftMonitor | None,
        predictions: WindowMonitor | None,
    ) -> None:
        self.concept = concept
        self.predictions = predictions
        self.errors = _ErrorBaseline()
        self.concept_first: int | None = None

    def reset(self) -> None:
        """Forget everything learned from the stream (pinned references are kept)."""
        if self.concept is not None:
            self.concept.reset()
        if self.predictions is not None:
            self.predictions.reset()
        self.errors.reset()
        self.concept_first = None


class DriftMonitor:
    """Drift signals of one input partition.

    Parameters
    ----------
    settings
        The ``[drift]`` settings (read here, not kept: the monitor holds plain data only).
    fields
        The ``[fields]`` settings: which features to watch, which are categorical, which
        optional; the expected schema when features are listed.
    task
        ``classification`` or ``regression``.
    topic, partition
        The input partition, for drift events.
    model
        Model name, for drift events.
    seed
        Seed for detectors that draw random numbers.
    pinned
        A loaded reference file (see :func:`load_reference`) when
        ``drift.windows.reference = "pinned"``.
    """

    def __init__(
        self,
        settings: DriftSettings,
        *,
        fields: FieldSettings,
        task: str,
        topic: str,
        partition: int,
        model: str = "champion",
        seed: int | None = None,
        pinned: Mapping[str, Any] | None = None,
    ) -> None:
        enabled = settings.enabled
        self.task = task
        self.topic = topic
        self.partition = partition
        self.model = model
        self.max_features = settings.max_features
        self.max_exported_features = settings.max_exported_features
        self._categorical = tuple(fields.categorical)
        self._window_kwargs = _window_kwargs(settings)
        self._thresholds = {
            name: settings.thresholds_for(name) for name in ("features", "predictions", "labels")
        }
        self._pinned = (
            dict(pinned) if pinned is not None and settings.windows.reference == "pinned" else None
        )
        c = settings.concept
        self._detector: tuple[str, dict[str, Any], int | None] | None = (
            (c.detector or DEFAULT_DETECTOR, dict(c.params), seed)
            if enabled and c.enabled
            else None
        )
        self._watch_predictions = enabled and settings.predictions
        self._levels: dict[tuple[str, str, str], int] = {}
        self._lower: dict[tuple[str, str, str], int] = {}
        self._exported: frozenset[str] | None = None
        self._exported_key = (False, False)
        self._classifier = task == "classification"
        self.features: WindowMonitor | None = None
        # Features are watched from the start when listed, else from the first event's.
        self._watch_features = enabled and settings.features
        if self._watch_features and fields.features:
            numeric = [f for f in fields.features if f not in fields.categorical]
            self.features = self._window("features", numeric, list(fields.categorical))
        classifier = self._classifier
        self.labels = (
            self._window("labels", [] if classifier else ["label"], ["label"] if classifier else [])
            if enabled and settings.labels and fields.label
            else None
        )
        self.schema = (
            SchemaMonitor(
                _configured_schema(fields),
                optional=[*fields.optional, fields.label],
                # Names from the data: as long, and (with id, time, label) as many, as features.
                max_name_length=fields.max_name_length,
                max_fields=fields.max_features + 3,
                every=settings.windows.every or _WINDOW_DEFAULTS["every"],
                reference_size=settings.windows.reference_size
                or _WINDOW_DEFAULTS["reference_size"],
                thresholds=settings.thresholds_for("schema"),
            )
            if enabled and settings.schema_drift
            else None
        )
        # Built once here, so that a bad detector or window setting stops the worker at
        # start-up rather than at the first event.
        self.model_drift()

    # -- construction -------------------------------------------------------------------------

    def _window(self, name: str, numeric: list[str], categorical: list[str]) -> WindowMonitor:
        return _make_window(
            name,
            numeric,
            categorical,
            kwargs=self._window_kwargs,
            thresholds=self._thresholds[name],
            pinned=self._pinned,
        )

    def model_drift(self) -> ModelDrift:
        """Fresh drift signals for a (new) champion: its error and its predictions."""
        concept = None
        if self._detector is not None:
            name, params, seed = self._detector
            try:
                concept = ConceptDriftMonitor(name, params, task=self.task, seed=seed)
            except ValueError as exc:
                raise ConfigError("drift.concept", str(exc)) from exc
        classifier = self._classifier
        predictions = (
            self._window(
                "predictions",
                [] if classifier else ["prediction"],
                ["prediction"] if classifier else [],
            )
            if self._watch_predictions
            else None
        )
        return ModelDrift(concept, predictions)

    def _infer_features(self, events: Sequence[Event]) -> None:
        """With features not listed, watch those of the first event (at most max_features)."""
        x = events[0].x
        categorical = set(self._categorical)
        names = list(x)[: self.max_features]
        self.features = self._window(
            "features",
            [n for n in names if n not in categorical],
            [n for n in names if n in categorical],
        )

    # -- per batch ----------------------------------------------------------------------------

    def observe(
        self, parsed: Parsed, outcome: Outcome, model: ModelDrift | None, *, version: int
    ) -> DriftReport:
        """Update every signal with one batch of one partition, in offset order.

        ``model`` is the champion's :class:`ModelDrift` (None: no model-level signals).
        """
        report = self.observe_model(outcome, model, version=version, events=parsed.events)
        data = self.observe_data(parsed, version=version)
        report.statistics += data.statistics
        report.events = by_offset(report.events + data.events)
        return report

    def observe_model(
        self,
        outcome: Outcome,
        model: ModelDrift | None,
        *,
        version: int,
        events: Sequence[Event] = (),
    ) -> DriftReport:
        """The signals of the model that scored ``outcome``: its error and its predictions."""
        report = self.observe_concept(outcome, model, version=version)
        if model is not None:
            found = self.observe_predictions(outcome.scored, model, version=version, events=events)
            report.statistics += found.statistics
            report.events += found.events
        return report

    def observe_concept(
        self, outcome: Outcome, model: ModelDrift | None, *, version: int
    ) -> DriftReport:
        """Concept drift on the error of the model that scored ``outcome`` (per event)."""
        report = DriftReport()
        if model is not None and model.concept is not None and outcome.errors:
            self._concept(report, model, outcome, version)
        return report

    def observe_predictions(
        self,
        scored: Sequence[tuple[Event, Any, Any]],
        model: ModelDrift,
        *,
        version: int,
        events: Sequence[Event] = (),
    ) -> DriftReport:
        """Drift of the predictions of one model (window statistics: any split of its scored
        events into calls gives the same findings)."""
        report = DriftReport()
        if model.predictions is not None and scored:
            rows, offsets = prediction_rows(scored, self._classifier)
            if rows:
                found = model.predictions.observe(rows, offsets)
                self._findings(report, "prediction", found, version, events)
        return report

    def observe_data(self, parsed: Parsed, *, version: int | Callable[[int], int]) -> DriftReport:
        """The signals of the data: schema, features and labels.

        ``version`` is the champion's version, or a function of the offset when the champion
        changed within the batch (drift events carry the version in force at their offset).
        """
        report = DriftReport()
        events = parsed.events
        if self.schema is not None and parsed.decoded:
            found = self.schema.observe(parsed.decoded, parsed.decoded_offsets)
            self._findings(report, "schema", found, version)
        if events and self._watch_features:
            if self.features is None:
                self._infer_features(events)
            assert self.features is not None
            rows = [e.x for e in events]
            found = self.features.observe(rows, [e.offset for e in events])
            self._findings(report, "feature", found, version, events)
        if self.labels is not None and events:
            rows, offsets = label_rows(events, self._classifier)
            if rows:
                found = self.labels.observe(rows, offsets)
                self._findings(report, "label", found, version, events)
        return report

    def _concept(
        self, report: DriftReport, model: ModelDrift, outcome: Outcome, version: int
    ) -> None:
        monitor = model.concept
        assert monitor is not None
        update = monitor.update
        baseline = model.errors
        add = baseline.add
        previous = monitor.state
        states = report.concept_states
        for error, offset in zip(outcome.errors, outcome.error_offsets, strict=True):
            if model.concept_first is None:
                model.concept_first = offset
            add(error)
            state = update(error)
            entered_warning = state == WARNING and previous != WARNING
            if state == DRIFT or entered_warning:
                # A warning reports the last errors; a drift, the errors since the warning.
                recent, base = baseline.values()
                report.events.append(
                    DriftEvent(
                        signal="concept",
                        feature="",
                        statistic=monitor.detector_name,
                        value=recent,
                        threshold=base,
                        level="alarm" if state == DRIFT else "warning",
                        topic=self.topic,
                        partition=self.partition,
                        reference_offsets=(-1, -1),
                        current_offsets=(model.concept_first, offset),
                        model=self.model,
                        version=version,
                        time=_event_time(outcome, offset),
                        events=monitor.n,
                    )
                )
                if state == DRIFT:
                    # A new concept: the next error baseline starts here.
                    baseline.reset()
                    model.concept_first = None
                else:
                    baseline.warning()
            previous = state
            states.append(state)

    def _findings(
        self,
        report: DriftReport,
        signal: str,
        findings: list[Finding],
        version: int | Callable[[int], int],
        events: Sequence[Event] = (),
    ) -> None:
        levels, lower = self._levels, self._lower
        version_at = version if callable(version) else None
        for f in findings:
            report.statistics.append((signal, f))
            key = (signal, f.feature, f.statistic)
            before = levels.get(key, 0)
            if f.level >= before:
                lower.pop(key, None)
                if f.level == before:
                    continue
            else:
                # Going down takes CLEAR_AFTER evaluations in a row below the level, so that a
                # statistic hovering at a threshold does not flap between levels.
                lower[key] = lower.get(key, 0) + 1
                if lower[key] < CLEAR_AFTER:
                    continue
                del lower[key]
            if f.level:
                levels[key] = f.level
            else:  # back to ok: forget it, as names from the data come and go
                del levels[key]
            report.events.append(
                DriftEvent(
                    signal=signal,
                    feature=f.feature,
                    statistic=f.statistic,
                    value=f.value,
                    threshold=f.threshold,
                    level=LEVELS[f.level],
                    topic=self.topic,
                    partition=self.partition,
                    reference_offsets=f.reference_offsets,
                    current_offsets=f.current_offsets,
                    model=self.model,
                    version=version_at(f.current_offsets[1]) if version_at else version,  # type: ignore[arg-type]
                    time=_time_at(events, f.current_offsets[1]),
                    events=f.events,
                )
            )

    def exported_features(self) -> frozenset[str]:
        """Feature and field names that get their own metric series (bounded by settings)."""
        cap = self.max_exported_features
        # The watched names only change when the feature monitor or the schema appear.
        key = (self.features is not None, self.schema is not None and self.schema.ready)
        if self._exported is None or key != self._exported_key:
            self._exported_key = key
            names: list[str] = []
            if self.features is not None:
                names += [*self.features.numeric, *self.features.categorical]
            if self.schema is not None and self.schema.expected is not None:
                names += [n for n in self.schema.expected if n not in names]
            self._exported = frozenset(names[:cap]) | {"prediction", "label"}
        return self._exported

    def alarming(self) -> dict[str, int]:
        """Signal -> statistics currently at alarm level (for a gauge)."""
        out = dict.fromkeys(SIGNALS[1:], 0)
        for (signal, _, _), level in self._levels.items():
            if level == 2:
                out[signal] += 1
        return out

    def forget_model_levels(self) -> None:
        """A new champion: the levels of the signals that belonged to the old one are gone."""
        for key in [k for k in self._levels if k[0] in ("concept", "prediction")]:
            del self._levels[key]
        for key in [k for k in self._lower if k[0] in ("concept", "prediction")]:
            del self._lower[key]

    def reset_reference(self) -> None:
        """A restart of the data references: those collected from the first N events are
        collected again (pinned references are kept)."""
        for w in (self.features, self.labels):
            if w is not None:
                w.reset()
        if self.schema is not None:
            self.schema.reset()
        self._levels.clear()
        self._lower.clear()


def by_offset(events: list[DriftEvent]) -> list[DriftEvent]:
    """Drift events in the order of the offsets that raised them (stable within an offset),
    whatever order the signals were evaluated in: the same for any split into batches."""
    return sorted(events, key=lambda e: e.current_offsets[1])


def _configured_schema(fields: FieldSettings) -> dict[str, set[str]] | None:
    """The schema that ``[fields]`` implies, or None when features are not listed."""
    if not fields.features:
        return None
    schema: dict[str, set[str]] = {fields.id: {"string", "number"}}
    category = {"string", "number", "boolean"}
    for f in fields.features:
        schema[f] = category if f in fields.categorical else {"number", "boolean"}
    if fields.label:
        schema[fields.label] = {"string", "number", "boolean"}
    if fields.time:
        schema[fields.time] = {"string", "number"}
    return schema


def _event_time(outcome: Outcome, offset: int) -> float:
    for ev, _, _ in outcome.scored:
        if ev.offset == offset:
            return ev.time
    return math.nan


def _time_at(events: Sequence[Event], offset: int) -> float:
    """Event time of the event at ``offset`` in this batch (NaN if it is not in the batch)."""
    for ev in reversed(events):
        if ev.offset == offset:
            return ev.time
        if ev.offset < offset:
            break
    return math.nan
