"""Score, then learn: the prequential (test-then-train) loop over one partition's events.

For each event, in offset order, the model predicts first; when the event carries its label, it
learns right after, and the prediction is scored against the label. This is exactly what
``river.evaluate.progressive_val_score`` does, so for the same model, data and order the
metrics here equal River's to the last bit: classifiers are asked ``predict_proba_one`` once and
the label is its arg-max (River's default ``predict_one``); an empty probability dict (a model
that has seen nothing) is not scored, as in River.

A model that raises is not allowed to stop the partition: the event goes to the dead-letter
topic (stage ``score`` or ``learn``) and the loop carries on with the next one.

Examples
--------
>>> from river import datasets
>>> from streamer.models import build_model
>>> from streamer.testing import events_from
>>> p = Prequential(build_model("logistic_regression"), metrics=["Accuracy"], window=100)
>>> out = p.run(list(events_from(datasets.Phishing())))
>>> len(out.scored), out.dead, p.n_learned
(1250, [], 1250)
>>> round(p.running["Accuracy"].get(), 4)
0.8928
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from river import metrics as river_metrics
from river import utils

from streamer.errors import ConfigError
from streamer.models import build_model, task_kind, task_of
from streamer.records import DeadLetter, Event
from streamer.settings import Settings

__all__ = ["DEFAULT_METRICS", "Outcome", "Prequential", "make_metric"]

log = logging.getLogger(__name__)

#: Metrics of each task kind (:func:`streamer.models.task_kind`) when the settings name none.
#: Binary ones (F1, LogLoss) on a multi-class stream read 0.0 and 34.5: never a default there.
DEFAULT_METRICS = {
    "binary": ["Accuracy", "F1", "LogLoss"],
    "multiclass": ["Accuracy", "MacroF1", "CrossEntropy"],
    "regression": ["MAE", "RMSE"],
}


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


def _binarised(metric: Any, positive_label: Any) -> Callable[[Any, Any], None]:
    """The metric's update; binary metrics get booleans when the positive class is not True.

    Binary metrics are built with River's default ``pos_val=True``. River 0.26.1's
    BinaryMetric stores ``y == pos_val`` in its confusion matrix but reads it back under
    ``pos_val``, so an F1 built with ``pos_val="yes"`` is always 0; comparing with the positive
    class here gives the intended figure (and, for True, exactly River's own).
    """
    update: Callable[[Any, Any], None] = metric.update
    if positive_label is True or not hasattr(metric, "pos_val"):
        return update

    def binary(y_true: Any, y_pred: Any) -> None:
        update(y_true == positive_label, y_pred == positive_label)

    return binary


@dataclass(slots=True)
class Outcome:
    """What one run over a batch of events produced.

    ``scored`` holds ``(event, y_pred, proba)`` for every event the model scored (``proba`` is
    None for regressors, ``y_pred`` None when the model could not predict yet). ``errors``
    holds, for each scored labelled event, the model's error: 0/1 for classifiers, the absolute
    error for regressors; ``error_offsets`` their offsets.
    """

    scored: list[tuple[Event, Any, dict[Any, float] | None]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)
    error_offsets: list[int] = field(default_factory=list)
    labelled: int = 0
    learned: int = 0


class Prequential:
    """Predict, then learn, one event at a time, keeping running and rolling metrics.

    Parameters
    ----------
    model
        A River classifier or regressor; it learns in place.
    metrics
        River metric class names; empty for the task's defaults (:data:`DEFAULT_METRICS`).
    window
        Size of the rolling window, in scored labelled events.
    positive_label
        Positive class of binary metrics (F1, Precision, …).
    classes
        Declared classes (``evaluation.classes``): with the model, they say whether the task
        is binary or multi-class, hence the default metrics.
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
        self.model = model
        self.task = task_of(model)
        self.kind = task_kind(model, classes)
        self.window = window
        names = list(metrics) or DEFAULT_METRICS[self.kind]
        self.running = {n: make_metric(n, model=model) for n in names}
        _check_binary_metrics(names, self.kind, classes)
        self.rolling: dict[str, Any] = {
            n: utils.Rolling(type(m), window_size=window) for n, m in self.running.items()
        }
        # Metrics that want a label get the arg-max; the others (LogLoss…) the probabilities.
        # (Regression metrics have no requires_labels: they take the predicted value.)
        every: list[Any] = [*self.running.values(), *self.rolling.values()]
        self._on_label = [
            _binarised(m, positive_label) for m in every if getattr(m, "requires_labels", True)
        ]
        self._on_proba = [m.update for m in every if not getattr(m, "requires_labels", True)]
        self.n_scored = 0
        self.n_learned = 0
        self.first_offset_learned: int | None = None
        self.last_offset_learned: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Prequential:
        """A fresh, seeded model with its metrics, as ``[model]``, ``[fields]`` and
        ``[evaluation]`` say: what every partition starts with."""
        m, e = settings.model, settings.evaluation
        model = build_model(
            m.preset, m.params, seed=m.seed, categorical=bool(settings.fields.categorical)
        )
        return cls(
            model,
            metrics=e.metrics,
            window=e.window,
            positive_label=e.positive_label,
            classes=e.classes,
        )

    def run(self, events: Sequence[Event]) -> Outcome:
        """Score and learn from ``events`` (one partition, offset order)."""
        out = Outcome()
        scored, errors, error_offsets, dead = out.scored, out.errors, out.error_offsets, out.dead
        on_label, on_proba = self._on_label, self._on_proba
        model = self.model
        learn = model.learn_one
        classifier = self.task == "classification"
        predict = model.predict_proba_one if classifier else model.predict_one
        learned = 0
        labelled = 0
        first_learned = last_learned = None
        for ev in events:
            x = ev.x
            try:
                p = predict(x)
            except Exception as exc:
                dead.append(_model_error(ev, "score", exc))
                continue
            if classifier:
                proba = p
                y_pred = max(p, key=p.get) if p else None
            else:
                proba = None
                y_pred = p
            scored.append((ev, y_pred, proba))
            y = ev.y
            if y is None:
                continue
            labelled += 1
            if y_pred is not None:
                for update in on_label:
                    update(y, y_pred)
                for update in on_proba:
                    update(y, proba)
                errors.append(float(y_pred != y) if classifier else abs(y - y_pred))
                error_offsets.append(ev.offset)
            try:
                learn(x, y)
            except Exception as exc:
                dead.append(_model_error(ev, "learn", exc))
                continue
            learned += 1
            if first_learned is None:
                first_learned = ev.offset
            last_learned = ev.offset
        self.n_scored += len(scored)
        out.labelled = labelled
        out.learned = learned
        if learned:
            self.n_learned += learned
            if self.first_offset_learned is None:
                self.first_offset_learned = first_learned
            self.last_offset_learned = last_learned
        return out

    def metric_values(self) -> dict[tuple[str, str], float]:
        """``(metric, "running"|"rolling") -> value`` for every metric."""
        values = {(n, "running"): float(m.get()) for n, m in self.running.items()}
        values.update({(n, "rolling"): float(m.get()) for n, m in self.rolling.items()})
        return values


def _model_error(ev: Event, stage: str, exc: Exception) -> DeadLetter:
    return DeadLetter(ev.record, stage, "model_error", type(exc).__name__, str(exc)[:1000])
