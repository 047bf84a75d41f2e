"""Concept drift on the champion's per-event error.

The worker feeds every labelled event's error to a :class:`ConceptDriftMonitor`: 0 or 1 for a
classifier (wrong or right), ``|y - ŷ|`` for a regressor. The monitor wraps one detector, chosen
by name in the settings: any of River's ``drift`` detectors, or one of streamer's own
(:mod:`streamer.drift.detectors`, where the registry of names lives; its names are re-exported
here).

Each detector's input convention is handled here, so callers always pass the error: FHDDM counts
correct predictions, so it gets ``1 - error``; DDM, EDDM, HDDM_A and HDDM_W get the error itself.
Detectors that only accept bits are refused for regression.

"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from streamer.drift.detectors import (
    DEFAULT_DETECTOR,
    DETECTORS,
    TASKS,
    Detector,
    DualADWIN,
    OneSidedADWIN,
    make_detector,
    spec_of,
)

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "DRIFT",
    "STABLE",
    "TASKS",
    "WARNING",
    "ConceptDriftMonitor",
    "Detector",
    "DualADWIN",
    "OneSidedADWIN",
    "make_detector",
]

#: Per-event states returned by :meth:`ConceptDriftMonitor.update`.
STABLE, WARNING, DRIFT = 0, 1, 2


class ConceptDriftMonitor:
    """Watch a model's per-event error and say when its concept has drifted.

    Feed :meth:`update` the champion's error for each labelled event, in order: 0 or 1 for a
    classifier, the absolute error for a regressor. It returns :data:`STABLE`, :data:`WARNING`
    or :data:`DRIFT` for that event. Detectors without a warning zone never return
    :data:`WARNING`. After a drift the detector keeps going and can report the next one. Each
    update is one detector update plus a few comparisons: O(1) amortized.

    Parameters
    ----------
    detector
        Name of the detector, one of :data:`DETECTORS`.
    params
        Detector hyperparameters (see :func:`make_detector`).
    task
        ``"classification"`` (errors are 0 or 1) or ``"regression"`` (errors are >= 0).
    seed
        Seed for detectors that draw random numbers.

    Attributes
    ----------
    n
        Events seen.
    warnings
        How many times the monitor entered a warning zone.
    drifts
        Drifts reported.
    state
        State returned by the last update.
    last_drift_at
        The 1-based event count at which the last drift was reported, or None.
    has_warning
        Whether the detector has a warning zone.

    Examples
    --------
    A classifier that is wrong 10 % of the time, then 40 % of the time from event 3001 on:

    >>> import random
    >>> rng = random.Random(1)
    >>> monitor = ConceptDriftMonitor()
    >>> errors = [rng.random() < 0.1 for _ in range(3000)]
    >>> errors += [rng.random() < 0.4 for _ in range(500)]
    >>> states = [monitor.update(e) for e in errors]
    >>> monitor.drifts, monitor.last_drift_at
    (1, 3032)
    >>> states.index(WARNING) + 1 <= monitor.last_drift_at
    True

    A regressor's absolute error, watched with a River detector:

    >>> monitor = ConceptDriftMonitor("PageHinkley", {"mode": "up"}, task="regression")
    >>> for _ in range(500):
    ...     _ = monitor.update(abs(rng.gauss(0, 1)))
    >>> while monitor.update(abs(rng.gauss(0, 1)) + 3) != DRIFT:
    ...     pass
    >>> monitor.n
    515

    """

    def __init__(
        self,
        detector: str = DEFAULT_DETECTOR,
        params: Mapping[str, Any] | None = None,
        *,
        task: str = "classification",
        seed: int | None = None,
    ) -> None:
        self.detector_name, spec = spec_of(detector, task)
        self.params = dict(params or {})
        self.task = task
        self.seed = seed
        self._counts_successes = spec.counts_successes
        self._classification = task == "classification"
        self.detector = make_detector(detector, params, task=task, seed=seed)
        self.has_warning = spec.warns and getattr(self.detector, "warning_delta", 0) is not None
        self.n = 0
        self.warnings = 0
        self.drifts = 0
        self.state = STABLE
        self.last_drift_at: int | None = None

    @property
    def in_warning(self) -> bool:
        """Whether the last event left the monitor in a warning zone."""
        return self.state == WARNING

    def update(self, error: float) -> int:
        """Add one event's error; return the state of the stream after it.

        Parameters
        ----------
        error
            0 or 1 (or a bool) for classification, a finite number >= 0 for regression.

        Returns
        -------
        :data:`STABLE`, :data:`WARNING` or :data:`DRIFT`.

        Raises
        ------
        ValueError
            If the error does not follow the task's convention; the detector is left untouched.

        """
        if self._classification:
            if error == 1:
                x: int | float = 0 if self._counts_successes else 1
            elif error == 0:
                x = 1 if self._counts_successes else 0
            else:
                raise ValueError(f"a classifier's error must be 0 or 1, got {error!r}")
        else:
            if not (isinstance(error, int | float) and math.isfinite(error) and error >= 0):
                raise ValueError(f"a regressor's error must be a finite number >= 0, got {error!r}")
            x = float(error)
        detector = self.detector
        detector.update(x)
        self.n += 1
        if detector.drift_detected:
            state = DRIFT
            self.drifts += 1
            self.last_drift_at = self.n
        elif self.has_warning and detector.warning_detected:  # type: ignore[attr-defined]
            state = WARNING
            if self.state != WARNING:
                self.warnings += 1
        else:
            state = STABLE
        self.state = state
        return state

    def reset(self) -> None:
        """Forget everything: a fresh detector and zeroed counters."""
        self.detector = make_detector(
            self.detector_name, self.params, task=self.task, seed=self.seed
        )
        self.n = 0
        self.warnings = 0
        self.drifts = 0
        self.state = STABLE
        self.last_drift_at = None

    def __repr__(self) -> str:
        return (
            f"ConceptDriftMonitor(detector={self.detector_name!r}, task={self.task!r}, "
            f"n={self.n}, drifts={self.drifts}, warnings={self.warnings})"
        )
