"""Score, then learn: the prequential (test-then-train) stage over a partition's model slots.

A partition holds one or more :class:`ModelSlot`: the champion, whose predictions are the
outputs, and models in shadow (challengers, the previous champion). For each event, in offset
order, every slot predicts first (:meth:`ModelSlot.score`); when the event carries its label, every
slot's prediction is then scored against it (:meth:`ModelSlot.evaluate`) and the slot learns
from it (:meth:`ModelSlot.learn`). The three are separate steps, so a label that arrives later
can be scored and learned from a stored prediction.

For one slot this is exactly what ``river.evaluate.progressive_val_score`` does, so for the same
model, data and order the metrics here equal River's to the last bit: classifiers are asked
``predict_proba_one`` once and the label is its arg-max (River's default ``predict_one``); an
empty probability dict (a model that has seen nothing) is not scored, as in River.

A champion that raises, or whose output is not finite (a poisoned model), does not stop the
partition: the event goes to the dead-letter topic (stage ``score`` or ``learn``) and the loop
carries on. A model in shadow that raises is marked failed, for the lifecycle to retire.

Examples
--------
>>> from river import datasets
>>> from streamer.models import build_model
>>> from streamer.testing import events_from
>>> champion = ModelSlot(build_model("logistic_regression"), metrics=["Accuracy"], window=100)
>>> out = prequential([champion], list(events_from(datasets.Phishing())))
>>> len(out.scored), out.dead, champion.n_learned
(1250, [], 1250)
>>> round(champion.evaluation.running["Accuracy"].get(), 4)
0.8928
"""

from __future__ import annotations

import inspect
import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from river import metrics as river_metrics
from river import utils

from streamer.errors import ConfigError
from streamer.models import task_kind, task_of
from streamer.records import DeadLetter, Event

__all__ = [
    "DEFAULT_METRICS",
    "ROLES",
    "Evaluation",
    "ModelSlot",
    "Outcome",
    "SlotOutcome",
    "make_metric",
    "prequential",
]

log = logging.getLogger(__name__)

#: Metrics of each task kind (:func:`streamer.models.task_kind`) when the settings name none.
#: Binary ones (F1, LogLoss) on a multi-class stream read 0.0 and 34.5: never a default there.
DEFAULT_METRICS = {
    "binary": ["Accuracy", "F1", "LogLoss"],
    "multiclass": ["Accuracy", "MacroF1", "CrossEntropy"],
    "regression": ["MAE", "RMSE"],
}

#: What a slot is to its partition: the champion makes the outputs; the others run in shadow.
ROLES = ("champion", "challenger", "previous")


def make_metric(name: str, *, model: Any) -> river_metrics.base.Metric:
    """A fresh River metric by class name, checked against the model's task."""
    cls = getattr(river_metrics, name, None)
    if not (isinstance(cls, type) and issubclass(cls, river_metrics.base.Metric)):
        known = sorted(
            n
            for n in dir(river_metrics)
            if isinstance(getattr(river_metrics, n), type)
            and issubclass(getattr(river_metrics, n), river_metrics.base.Metric)
            and not n.startswith("_")
        )
        raise ConfigError(
            "evaluation.metrics", f"unknown River metric {name!r}; known: {', '.join(known)}"
        )
    try:
        metric = cls()
    except TypeError as exc:
        raise ConfigError(
            "evaluation.metrics", f"{name} cannot be built without arguments: {exc}"
        ) from exc
    if not metric.works_with(model):
        raise ConfigError(
            "evaluation.metrics", f"{name} does not work with a {task_of(model)} model"
        )
    return metric


def _check_binary_metrics(names: Sequence[str], kind: str, classes: Sequence[Any]) -> None:
    """A binary metric on a multi-class task: refused when the classes say so, else a warning
    (a multi-class model may well be given a binary stream)."""
    binary = [
        n for n in names if issubclass(getattr(river_metrics, n), river_metrics.base.BinaryMetric)
    ]
    if kind != "multiclass" or not binary:
        return
    if len(classes) > 2:
        raise ConfigError(
            "evaluation.metrics",
            f"{', '.join(binary)} only score two classes, and evaluation.classes declares "
            f"{len(classes)}: use MacroF1, MicroF1, WeightedF1, CrossEntropy…",
        )
    log.warning(
        "evaluation.metrics: %s only score two classes and the model is multi-class; on a "
        "multi-class stream they read 0 (declare 2 evaluation.classes to silence this)",
        ", ".join(binary),
    )


class _WindowMean:
    """The mean of the last ``size`` values: what a rolling mean-type metric reports.

    Stands in for a River metric's running ``stats.Mean`` (``metric._mean``), so the metric's
    own ``get`` (a square root for RMSE) applies to the window.
    """

    __slots__ = ("_values", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: deque[float] = deque(maxlen=size)

    def add(self, x: float) -> None:
        self._values.append(x)

    def get(self) -> float:
        # Summed when read (once a batch), exactly: no drift from adding and removing.
        n = len(self._values)
        return math.fsum(self._values) / n if n else 0.0


def _matrix() -> Any:
    return river_metrics.ConfusionMatrix()  # type: ignore[no-untyped-call]


def _shares_matrix(metric: Any) -> bool:
    """A label metric computed from a confusion matrix it can be given (Accuracy, F1, …)."""
    return (
        isinstance(metric, river_metrics.base.ClassificationMetric)
        and not isinstance(metric, river_metrics.base.MeanMetric)
        and getattr(metric, "requires_labels", True)
        and "cm" in inspect.signature(type(metric)).parameters
    )


class Evaluation:
    """Running and rolling prequential metrics of one model.

    The running metrics are River's own, updated per event in the order
    ``progressive_val_score`` updates them, so their values are River's to the last bit; the
    rolling ones cover the last ``window`` scored labelled events. To keep this cheap (it runs
    for every labelled event of every model), metrics computed from a confusion matrix
    (Accuracy, F1, MacroF1, …) share one matrix, running and rolling (the rolling one reverts
    the event leaving the window), and mean-type metrics (LogLoss, CrossEntropy, MAE, RMSE…)
    evaluate each event once for both. Other metrics get River's ``utils.Rolling``.

    Parameters
    ----------
    model
        The model the metrics judge (for their task).
    metrics
        River metric class names; empty for the task's defaults (:data:`DEFAULT_METRICS`).
    window
        Size of the rolling window, in scored labelled events.
    positive_label
        Positive class of binary metrics (F1, Precision, …).
    classes
        Declared classes (``evaluation.classes``): with the model, they say whether the task
        is binary or multi-class (:func:`~streamer.models.task_kind`), hence the defaults.
    """

    def __init__(
        self,
        model: Any,
        *,
        metrics: Sequence[str] = (),
        window: int = 1000,
        positive_label: Any = True,
        classes: Sequence[Any] = (),
    ) -> None:
        kind = task_kind(model, classes)
        self.window = window
        names = list(metrics) or DEFAULT_METRICS[kind]
        built = {n: make_metric(n, model=model) for n in names}
        _check_binary_metrics(names, kind, classes)
        binarise = positive_label is not True
        self.positive = positive_label
        self.running: dict[str, Any] = {}
        self.rolling: dict[str, Any] = {}
        # Confusion matrices shared by the label metrics fed the same labels: raw labels, or
        # ``y == positive_label`` for binary metrics when the positive class is not True.
        cms: dict[bool, tuple[Any, Any]] = {}
        self._means: list[tuple[Any, _WindowMean, bool]] = []
        self._others: list[tuple[Any, Any, bool]] = []
        m: Any
        for n, m in built.items():
            cls: Any = type(m)
            binary = binarise and hasattr(m, "pos_val")
            if _shares_matrix(m):
                if binary not in cms:
                    cms[binary] = (_matrix(), _matrix())
                running_cm, rolling_cm = cms[binary]
                self.running[n] = cls(cm=running_cm)
                self.rolling[n] = cls(cm=rolling_cm)
            elif isinstance(m, river_metrics.base.MeanMetric) and not binary:
                rolling = cls()
                mean = _WindowMean(window)
                rolling._mean = mean  # the metric's get() now reads the window
                self.running[n], self.rolling[n] = m, rolling
                self._means.append((m, mean, getattr(m, "requires_labels", True)))
            else:
                self.running[n] = m
                self.rolling[n] = utils.Rolling(cls, window_size=window)
                self._others.append((m, self.rolling[n], binary))
        self._cms = [(binary, running, rolling) for binary, (running, rolling) in cms.items()]
        # The labels in the rolling window, to revert from the rolling matrices.
        self._window: deque[tuple[Any, Any]] = deque()

    def update(self, y: Any, y_pred: Any, proba: dict[Any, float] | None) -> None:
        """One scored labelled event."""
        if self._cms:
            window = self._window
            window.append((y, y_pred))
            old = window.popleft() if len(window) > self.window else None
            positive = self.positive
            for binary, running, rolling in self._cms:
                if binary:
                    yt, yp = y == positive, y_pred == positive
                else:
                    yt, yp = y, y_pred
                running.update(yt, yp)
                rolling.update(yt, yp)
                if old is not None:
                    if binary:
                        rolling.revert(old[0] == positive, old[1] == positive)
                    else:
                        rolling.revert(*old)
        for metric, mean, labels in self._means:
            # Evaluated once, for the running metric (as its own update would) and the window.
            x = metric._eval(y, y_pred if labels else proba)
            metric._mean.update(x)
            mean.add(x)
        for running, rolling, binary in self._others:
            if not getattr(running, "requires_labels", True):
                running.update(y, proba)
                rolling.update(y, proba)
            elif binary:
                running.update(y == self.positive, y_pred == self.positive)
                rolling.update(y == self.positive, y_pred == self.positive)
            else:
                running.update(y, y_pred)
                rolling.update(y, y_pred)

    def values(self) -> dict[tuple[str, str], float]:
        """``(metric, "running"|"rolling") -> value`` for every metric."""
        values = {(n, "running"): float(m.get()) for n, m in self.running.items()}
        values.update({(n, "rolling"): float(m.get()) for n, m in self.rolling.items()})
        return values


class ModelOutputError(ValueError):
    """A model produced a prediction that is not a finite number (it has been poisoned)."""


class ModelSlot:
    """One model of a partition, with its version, lineage and prequential metrics.

    Parameters
    ----------
    model
        A River classifier or regressor; it learns in place.
    role
        ``champion`` (its predictions are the outputs), ``challenger`` or ``previous``
        (in shadow).
    version
        Changes when the model is replaced (a promotion, a rollback), never when it learns or
        is restored from a checkpoint.
    parent
        The version this model replaced, if any.
    reason
        Why it exists: ``initial``, ``drift``, ``alternative``, ``promotion``, ``rollback``…
    metrics, window, positive_label, classes
        The prequential metrics (see :class:`Evaluation`).

    Attributes
    ----------
    drift
        The drift detectors that belong to the model (its error, its predictions): set by the
        partition for its champion, None for models in shadow.
    failure
        The error that stopped a model in shadow, or that poisoned the champion (a non-finite
        output), or None.
    """

    def __init__(
        self,
        model: Any,
        *,
        role: str = "champion",
        version: int = 1,
        parent: int | None = None,
        reason: str = "initial",
        name: str = "",
        metrics: Sequence[str] = (),
        window: int = 1000,
        positive_label: Any = True,
        classes: Sequence[Any] = (),
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        self.model = model
        self.task = task_of(model)
        self.role = role
        self.version = version
        self.parent = parent
        self.reason = reason
        self.name = name
        self.evaluation = Evaluation(
            model, metrics=metrics, window=window, positive_label=positive_label, classes=classes
        )
        self.drift: Any = None
        self.failure: str | None = None
        self.n_scored = 0
        self.n_learned = 0
        self.first_offset_learned: int | None = None
        self.last_offset_learned: int | None = None
        self._classifier = self.task == "classification"

    def __repr__(self) -> str:
        return (
            f"ModelSlot({self.role} v{self.version}, {type(self.model).__name__}, "
            f"learned {self.n_learned})"
        )

    def score(self, x: dict[str, Any]) -> tuple[Any, dict[Any, float] | None]:
        """``(prediction, class probabilities)``; the prediction is None before any learning.

        Raises whatever the model raises, and :class:`ModelOutputError` for a non-finite output.
        """
        if self._classifier:
            proba: dict[Any, float] = self.model.predict_proba_one(x)
            if not proba:
                return None, proba
            # One sum catches a NaN or infinite probability anywhere.
            if not math.isfinite(sum(proba.values())):
                raise ModelOutputError(f"class probabilities are not finite: {proba}")
            return max(proba, key=proba.get), proba  # type: ignore[arg-type]
        y_pred = self.model.predict_one(x)
        if y_pred is not None and not math.isfinite(y_pred):
            raise ModelOutputError(f"prediction is not finite: {y_pred}")
        return y_pred, None

    def evaluate(self, y: Any, y_pred: Any, proba: dict[Any, float] | None) -> float | None:
        """Score a prediction against its label ``y``: update the metrics, return the error.

        The error is 0/1 for a classifier, the absolute error for a regressor; None when the
        model had no prediction (not scored, as in River).
        """
        if y_pred is None:
            return None
        self.evaluation.update(y, y_pred, proba)
        return float(y_pred != y) if self._classifier else abs(y - y_pred)

    def learn(self, ev: Event, y: Any) -> None:
        """Learn from ``(ev.x, y)``; raises whatever ``learn_one`` raises."""
        self.model.learn_one(ev.x, y)
        self.n_learned += 1
        if self.first_offset_learned is None:
            self.first_offset_learned = ev.offset
        self.last_offset_learned = ev.offset


@dataclass(slots=True)
class SlotOutcome:
    """What one slot did over a batch.

    ``scored`` holds ``(event, y_pred, proba)`` for every event it scored (``proba`` is None
    for regressors, ``y_pred`` None when it could not predict yet); ``errors`` its error on
    each scored labelled event, at ``error_offsets``.
    """

    scored: list[tuple[Event, Any, dict[Any, float] | None]] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    error_offsets: list[int] = field(default_factory=list)
    labelled: int = 0
    learned: int = 0


@dataclass(slots=True)
class Outcome:
    """A batch through every slot: ``slots[0]`` is the champion's; ``dead`` its refusals."""

    slots: list[SlotOutcome]
    dead: list[DeadLetter] = field(default_factory=list)

    @property
    def champion(self) -> SlotOutcome:
        return self.slots[0]

    # The champion's results, which are the partition's outputs.
    @property
    def scored(self) -> list[tuple[Event, Any, dict[Any, float] | None]]:
        return self.slots[0].scored

    @property
    def errors(self) -> list[float]:
        return self.slots[0].errors

    @property
    def error_offsets(self) -> list[int]:
        return self.slots[0].error_offsets

    @property
    def labelled(self) -> int:
        return self.slots[0].labelled

    @property
    def learned(self) -> int:
        return self.slots[0].learned


def prequential(slots: Sequence[ModelSlot], events: Sequence[Event]) -> Outcome:
    """Score every slot, then let every slot learn, one event at a time, in offset order.

    ``slots[0]`` is the champion: its failures dead-letter the event. A slot in shadow that
    fails gets ``failure`` set and sits out the rest of the batch.
    """
    outs = [SlotOutcome() for _ in slots]
    out = Outcome(outs)
    dead = out.dead
    champion, *shadows = slots
    shadow = [(s, o) for s, o in zip(shadows, outs[1:], strict=True) if s.failure is None]
    c_out = outs[0]
    c_scored, c_errors, c_offsets = c_out.scored, c_out.errors, c_out.error_offsets
    score, evaluate, learn = champion.score, champion.evaluate, champion.learn
    for ev in events:
        x = ev.x
        try:
            y_pred, proba = score(x)
        except Exception as exc:
            dead.append(_model_error(ev, "score", exc))
            if isinstance(exc, ModelOutputError) and champion.failure is None:
                # A poisoned model stays poisoned: the lifecycle replaces it.
                champion.failure = f"score at offset {ev.offset}: {exc}"[:500]
                log.error("champion v%d is poisoned: %s", champion.version, exc)
            continue
        c_scored.append((ev, y_pred, proba))
        shadow_preds = [_score_shadow(s, o, ev) for s, o in shadow] if shadow else ()
        y = ev.y
        if y is None:
            continue
        c_out.labelled += 1
        error = evaluate(y, y_pred, proba)
        if error is not None:
            c_errors.append(error)
            c_offsets.append(ev.offset)
        try:
            learn(ev, y)
        except Exception as exc:
            dead.append(_model_error(ev, "learn", exc))
        else:
            c_out.learned += 1
        for (s, o), pred in zip(shadow, shadow_preds, strict=True):
            if pred is not None and s.failure is None:
                _learn_shadow(s, o, ev, y, pred)
    for slot, o in zip(slots, outs, strict=True):
        slot.n_scored += len(o.scored)
    return out


def _score_shadow(slot: ModelSlot, out: SlotOutcome, ev: Event) -> tuple[Any, Any] | None:
    if slot.failure is not None:
        return None
    try:
        pred = slot.score(ev.x)
    except Exception as exc:
        slot.failure = f"score at offset {ev.offset}: {type(exc).__name__}: {exc}"[:500]
        return None
    out.scored.append((ev, *pred))
    return pred


def _learn_shadow(
    slot: ModelSlot, out: SlotOutcome, ev: Event, y: Any, pred: tuple[Any, Any]
) -> None:
    out.labelled += 1
    error = slot.evaluate(y, *pred)
    if error is not None:
        out.errors.append(error)
        out.error_offsets.append(ev.offset)
    try:
        slot.learn(ev, y)
    except Exception as exc:
        slot.failure = f"learn at offset {ev.offset}: {type(exc).__name__}: {exc}"[:500]
        return
    out.learned += 1


def _model_error(ev: Event, stage: str, exc: Exception) -> DeadLetter:
    reason = "non_finite_output" if isinstance(exc, ModelOutputError) else "model_error"
    return DeadLetter(ev.record, stage, reason, type(exc).__name__, str(exc)[:1000])
