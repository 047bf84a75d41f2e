"""Concept drift on the champion's per-event error.

The worker feeds every labelled event's error to a :class:`ConceptDriftMonitor`: 0 or 1 for a
classifier (wrong or right), ``|y - ŷ|`` for a regressor. The monitor wraps one detector, chosen
by name in the settings: any of River's ``drift`` detectors, or one of the two defined here.

* :class:`OneSidedADWIN` is River's ADWIN reporting only *increases* of the error. Most of plain
  ADWIN's false alarms on an error stream are the model getting better (its learning curve) or
  recovering after a change; an error monitor should not call those drifts.
* :class:`DualADWIN`, the default, runs two one-sided ADWINs: a sensitive one that reacts fast and
  a conservative one whose window is not shortened by the sensitive one's false alarms, plus a
  third, looser one that raises warnings. When both members alarm on the same change, it is
  reported once. The choice and its figures are in ``docs/drift.md``, measured by
  ``benchmarks/concept_drift_quality.py``.

Each detector's input convention is handled here, so callers always pass the error: FHDDM counts
correct predictions, so it gets ``1 - error``; DDM, EDDM, HDDM_A and HDDM_W get the error itself.
Detectors that only accept bits are refused for regression.

"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from river import base, drift
from river.drift import binary

from streamer.drift import defaults

__all__ = [
    "DEFAULT_DETECTOR",
    "DETECTORS",
    "DRIFT",
    "STABLE",
    "WARNING",
    "ConceptDriftMonitor",
    "DualADWIN",
    "OneSidedADWIN",
    "effective_detector",
    "make_detector",
]

#: Per-event states returned by :meth:`ConceptDriftMonitor.update`.
STABLE, WARNING, DRIFT = 0, 1, 2


class Detector(Protocol):
    """What the monitor needs from a detector: River's drift detector interface."""

    @property
    def drift_detected(self) -> bool: ...

    def update(self, x: Any) -> Any: ...


TASKS = ("classification", "regression")


def _check_adwin(delta: float, clock: int, name: str = "delta", clock_name: str = "clock") -> None:
    if not _is_probability(delta):
        raise ValueError(f"{name} must be in (0, 1), got {delta!r}")
    if not _is_positive_int(clock):
        raise ValueError(f"{clock_name} must be a positive integer, got {clock!r}")


def _adwin(delta: float, clock: int) -> drift.ADWIN:
    return drift.ADWIN(delta=delta, clock=clock)  # type: ignore[no-untyped-call]


class OneSidedADWIN(base.DriftDetector):
    """ADWIN that reports a drift only when the mean of its input goes up.

    River's :class:`~river.drift.ADWIN` keeps a window whose mean it trusts and drops the older
    part whenever the two parts of the window differ, in either direction. On an error stream a
    drop in the mean is the model improving, not a concept drift; this wrapper still lets ADWIN
    shrink its window then, but reports a drift only when the kept, recent part has a higher mean
    than the whole window had before the event. Costs one ADWIN update per event.

    Parameters
    ----------
    delta
        ADWIN's confidence: the larger, the more sensitive (and the more false alarms).
    clock
        ADWIN checks for a change every ``clock`` events; smaller means shorter delays.
    max_buckets
        ADWIN's buckets per level.
    min_window_length
        Smallest sub-window ADWIN compares.
    grace_period
        Events before ADWIN starts testing.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(7)
    >>> detector = OneSidedADWIN()
    >>> errors = [int(rng.random() < 0.3) for _ in range(1000)]   # improving: 0.3 ...
    >>> errors += [int(rng.random() < 0.05) for _ in range(1000)]  # ... then 0.05 ...
    >>> errors += [int(rng.random() < 0.3) for _ in range(1000)]   # ... then worse again
    >>> for i, e in enumerate(errors):
    ...     detector.update(e)
    ...     if detector.drift_detected:
    ...         print(f"error went up at index {i}")
    error went up at index 2031

    """

    def __init__(
        self,
        delta: float = 0.05,
        clock: int = 8,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        super().__init__()
        _check_adwin(delta, clock)
        self.delta = delta
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        self._adwin = drift.ADWIN(  # type: ignore[no-untyped-call]
            delta=self.delta,
            clock=self.clock,
            max_buckets=self.max_buckets,
            min_window_length=self.min_window_length,
            grace_period=self.grace_period,
        )

    @property
    def estimation(self) -> float:
        """Mean of the current window."""
        return float(self._adwin.estimation)

    @property
    def width(self) -> int:
        """Length of the current window."""
        return int(self._adwin.width)

    def update(self, x: int | float) -> None:
        before = self._adwin.estimation
        self._adwin.update(x)  # type: ignore[no-untyped-call]
        # ADWIN keeps the recent part of the window when it cuts: a higher mean means "worse".
        self._drift_detected = self._adwin.drift_detected and self._adwin.estimation > before


class DualADWIN(base.DriftAndWarningDetector):
    """Two one-sided ADWINs for drifts, a third for warnings; the default error-stream detector.

    * The **fast** member (large ``fast_delta``, short ``fast_clock``) catches a rise in the error
      within a few dozen events.
    * The **slow** member (``slow_delta``, ADWIN's own default) covers what the fast one handles
      badly: a false alarm shortly before a real drift makes ADWIN keep only the recent, already
      elevated part of its window, so the real rise that follows looks small to it. The slow
      member's window is independent and still remembers the long stable stretch.
    * Both often see the same change; an alarm within ``merge_window`` events of the other
      member's last alarm is merged into it instead of being reported again.
    * The **warning** member (largest ``warning_delta``) opens a warning zone when it sees the
      error rise. The zone ends at the next drift, when the warning member sees the error fall
      again, or after ``warning_span`` events, whichever comes first.

    Each member is one River ADWIN update, so the cost per event is about three ADWIN updates.
    The defaults were chosen by a stated rule on the benchmark's reference and exploration
    seeds and then checked on 20 held-out seeds (``docs/drift.md``).

    Parameters
    ----------
    fast_delta
        Confidence of the fast member.
    fast_clock
        The fast member checks for a change every ``fast_clock`` events.
    slow_delta
        Confidence of the slow member; ``None`` drops it.
    slow_clock
        Check interval of the slow member.
    warning_delta
        Confidence of the warning member; ``None`` disables warnings.
    warning_clock
        Check interval of the warning member.
    merge_window
        A member's alarm this many events or fewer after the other member's last alarm is
        merged into it: one change, one report.
    warning_span
        Longest warning zone, in events.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(42)
    >>> detector = DualADWIN()
    >>> errors = [int(rng.random() < 0.1) for _ in range(2000)]
    >>> errors += [int(rng.random() < 0.3) for _ in range(1000)]
    >>> warned = False
    >>> for i, e in enumerate(errors):
    ...     detector.update(e)
    ...     if detector.warning_detected and not warned:
    ...         print(f"warning at index {i}")
    ...     warned = detector.warning_detected
    ...     if detector.drift_detected:
    ...         print(f"drift at index {i}")
    warning at index 2059
    drift at index 2095

    """

    def __init__(
        self,
        fast_delta: float = 0.1,
        fast_clock: int = 8,
        slow_delta: float | None = 0.002,
        slow_clock: int = 32,
        warning_delta: float | None = 0.5,
        warning_clock: int = 2,
        merge_window: int = 300,
        warning_span: int = 1000,
    ) -> None:
        super().__init__()
        _check_adwin(fast_delta, fast_clock, "fast_delta", "fast_clock")
        if slow_delta is not None:
            _check_adwin(slow_delta, slow_clock, "slow_delta", "slow_clock")
        if warning_delta is not None:
            _check_adwin(warning_delta, warning_clock, "warning_delta", "warning_clock")
        if not (isinstance(merge_window, int) and not isinstance(merge_window, bool)) or (
            merge_window < 0
        ):
            raise ValueError(f"merge_window must be an integer >= 0, got {merge_window!r}")
        if not _is_positive_int(warning_span):
            raise ValueError(f"warning_span must be a positive integer, got {warning_span!r}")
        self.fast_delta = fast_delta
        self.fast_clock = fast_clock
        self.slow_delta = slow_delta
        self.slow_clock = slow_clock
        self.warning_delta = warning_delta
        self.warning_clock = warning_clock
        self.merge_window = merge_window
        self.warning_span = warning_span
        self._reset()

    def _reset(self) -> None:
        super()._reset()
        # Plain ADWINs with the one-sided test inlined in update: this is the hot path.
        members = [_adwin(self.fast_delta, self.fast_clock)]
        if self.slow_delta is not None:
            members.append(_adwin(self.slow_delta, self.slow_clock))
        self._members = tuple(members)
        self._warner = (
            _adwin(self.warning_delta, self.warning_clock)
            if self.warning_delta is not None
            else None
        )
        self._n = 0
        self._last_alarms = [-self.merge_window - 1] * len(self._members)
        self._warning_until = 0

    def update(self, x: int | float) -> None:
        self._n += 1
        n = self._n
        report = False
        last = self._last_alarms
        for i, member in enumerate(self._members):
            before = member.estimation
            member.update(x)  # type: ignore[no-untyped-call]
            # As in OneSidedADWIN: only a cut that leaves a higher mean is a rise of the error.
            if member.drift_detected and member.estimation > before:
                # Merged when another member raised the alarm for this change a moment ago.
                if all(n - t > self.merge_window for j, t in enumerate(last) if j != i):
                    report = True
                last[i] = n
        self._drift_detected = report
        warner = self._warner
        if warner is not None:
            before = warner.estimation
            warner.update(x)  # type: ignore[no-untyped-call]
            if warner.drift_detected:
                rising = warner.estimation > before
                self._warning_until = n + self.warning_span if rising else n
        if report:
            self._warning_until = n
        self._warning_detected = n < self._warning_until


# ---------------------------------------------------------------------------------------------
# Registry: name -> how to build the detector and feed it.


def _is_probability(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0.0 < v < 1.0


def _is_positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _is_nonneg_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_positive(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _is_nonneg(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_optional_probability(v: Any) -> bool:
    return v is None or _is_probability(v)


def _is_optional_positive_int(v: Any) -> bool:
    return v is None or _is_positive_int(v)


def _is_seed(v: Any) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool))


def _anything(v: Any) -> bool:
    return True


_PROBABILITY = (_is_probability, "a number in (0, 1)")
_POS_INT = (_is_positive_int, "a positive integer")
_NONNEG_INT = (_is_nonneg_int, "an integer >= 0")
_POSITIVE = (_is_positive, "a finite number > 0")
_NONNEG = (_is_nonneg, "a finite number >= 0")
_BOOL = (_is_bool, "True or False")
_SEED = (_is_seed, "an integer or None")

Check = tuple[Callable[[Any], bool], str]

_ADWIN_CHECKS: dict[str, Check] = {
    "delta": _PROBABILITY,
    "clock": _POS_INT,
    "max_buckets": _POS_INT,
    "min_window_length": _POS_INT,
    "grace_period": _POS_INT,
}


@dataclass(frozen=True)
class _Spec:
    """How to build one named detector and what it expects as input."""

    factory: Callable[..., Detector]
    checks: Mapping[str, Check]
    binary: bool = False  # fed 0/1 only: classification only
    counts_successes: bool = False  # fed 1 - error
    seeded: bool = False  # takes a ``seed``
    warns: bool = False  # has a warning zone


_SPECS: dict[str, _Spec] = {
    "DualADWIN": _Spec(
        DualADWIN,
        {
            "fast_delta": _PROBABILITY,
            "fast_clock": _POS_INT,
            "slow_delta": (_is_optional_probability, "a number in (0, 1) or None"),
            "slow_clock": _POS_INT,
            "warning_delta": (_is_optional_probability, "a number in (0, 1) or None"),
            "warning_clock": _POS_INT,
            "merge_window": _NONNEG_INT,
            "warning_span": _POS_INT,
        },
        warns=True,
    ),
    "OneSidedADWIN": _Spec(OneSidedADWIN, _ADWIN_CHECKS),
    "ADWIN": _Spec(drift.ADWIN, _ADWIN_CHECKS),
    "KSWIN": _Spec(
        drift.KSWIN,
        {
            "alpha": _PROBABILITY,
            "window_size": _POS_INT,
            "stat_size": _POS_INT,
            "seed": _SEED,
            "window": (_anything, "an iterable of numbers"),
        },
        seeded=True,
    ),
    "PageHinkley": _Spec(
        drift.PageHinkley,
        {
            "min_instances": _POS_INT,
            "delta": _NONNEG,
            "threshold": _POSITIVE,
            "alpha": (lambda v: _is_positive(v) and v <= 1, "a number in (0, 1]"),
            "mode": (lambda v: v in ("up", "down", "both"), "'up', 'down' or 'both'"),
        },
    ),
    "DDM": _Spec(
        binary.DDM,
        {"warm_start": _NONNEG_INT, "warning_threshold": _POSITIVE, "drift_threshold": _POSITIVE},
        binary=True,
        warns=True,
    ),
    "EDDM": _Spec(
        binary.EDDM,
        {"warm_start": _NONNEG_INT, "alpha": _PROBABILITY, "beta": _PROBABILITY},
        binary=True,
        warns=True,
    ),
    "HDDM_A": _Spec(
        binary.HDDMA,
        {
            "drift_confidence": _PROBABILITY,
            "warning_confidence": _PROBABILITY,
            "two_sided_test": _BOOL,
        },
        binary=True,
        warns=True,
    ),
    "HDDM_W": _Spec(
        binary.HDDMW,
        {
            "drift_confidence": _PROBABILITY,
            "warning_confidence": _PROBABILITY,
            "lambda_val": (lambda v: _is_positive(v) and v <= 1, "a number in (0, 1]"),
            "two_sided_test": _BOOL,
        },
        binary=True,
        warns=True,
    ),
    "FHDDM": _Spec(
        binary.FHDDM,
        {
            "sliding_window_size": _POS_INT,
            "confidence_level": _PROBABILITY,
            "short_window_size": (_is_optional_positive_int, "a positive integer or None"),
        },
        binary=True,
        counts_successes=True,
        # River's FHDDM has a warning_detected attribute but never sets it: no warning zone.
    ),
    "NoDrift": _Spec(drift.NoDrift, {}),
}

# Other spellings people will type: River's class names and module paths.
_ALIASES = {
    "HDDMA": "HDDM_A",
    "HDDMW": "HDDM_W",
    "binary.DDM": "DDM",
    "binary.EDDM": "EDDM",
    "binary.HDDMA": "HDDM_A",
    "binary.HDDMW": "HDDM_W",
    "binary.FHDDM": "FHDDM",
}
_ALIASES.update({f"drift.{n}": _ALIASES.get(n, n) for n in [*_SPECS, *_ALIASES]})
_LOWER = {n.lower(): n for n in list(_SPECS) + list(_ALIASES)}

#: Detector names accepted by :func:`make_detector` (canonical names first, then aliases).
DETECTORS: tuple[str, ...] = tuple(_SPECS) + tuple(_ALIASES)

#: The detector used when the settings name none (see ``docs/drift.md`` for why).
DEFAULT_DETECTOR = defaults.DETECTOR


def _canonical(name: str) -> str:
    if not isinstance(name, str):
        raise ValueError(f"detector name must be a string, got {name!r}")
    resolved = _LOWER.get(name.strip().lower())
    if resolved is None:
        raise ValueError(
            f"unknown concept drift detector {name!r}; expected one of {', '.join(_SPECS)} "
            f"(aliases: {', '.join(a for a in _ALIASES if not a.startswith('drift.'))})"
        )
    return _ALIASES.get(resolved, resolved)


def _spec(name: str, task: str) -> tuple[str, _Spec]:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    canonical = _canonical(name)
    spec = _SPECS[canonical]
    if spec.binary and task == "regression":
        real = ", ".join(n for n, s in _SPECS.items() if not s.binary)
        raise ValueError(
            f"detector {canonical!r} only accepts 0/1 errors and cannot monitor a regressor's "
            f"absolute error; use one of {real}"
        )
    return canonical, spec


def make_detector(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    task: str = "classification",
    seed: int | None = None,
) -> Detector:
    """Build a concept drift detector from its settings.

    Parameters
    ----------
    name
        One of :data:`DETECTORS`, case-insensitive.
    params
        Constructor keywords of the detector; unknown names and out-of-range values are refused.
    task
        ``"classification"`` or ``"regression"``; detectors that only take bits are refused for
        regression.
    seed
        Seed for detectors that draw random numbers (KSWIN); ignored by the others. A ``seed`` in
        ``params`` wins.

    Returns
    -------
    The detector. It expects the detector's own input convention: prefer
    :class:`ConceptDriftMonitor`, which converts the error for you.

    Raises
    ------
    ValueError
        With a message naming the detector, the parameter and what it accepts.

    Examples
    --------
    >>> make_detector("HDDM_A", {"drift_confidence": 0.005})
    HDDMA (
      drift_confidence=0.005
      warning_confidence=0.005
      two_sided_test=False
    )
    >>> make_detector("DDM", task="regression")
    Traceback (most recent call last):
    ...
    ValueError: detector 'DDM' only accepts 0/1 errors and cannot monitor a regressor's \
absolute error; use one of DualADWIN, OneSidedADWIN, ADWIN, KSWIN, PageHinkley, NoDrift

    """
    canonical, spec = _spec(name, task)
    kwargs: dict[str, Any] = {}
    if params is not None:
        if not isinstance(params, Mapping):
            raise ValueError(f"params of detector {canonical!r} must be a mapping, got {params!r}")
        for key, value in params.items():
            if key not in spec.checks:
                accepted = ", ".join(spec.checks) or "none"
                raise ValueError(
                    f"detector {canonical!r} has no parameter {key!r}; accepted: {accepted}"
                )
            ok, what = spec.checks[key]
            if not ok(value):
                raise ValueError(
                    f"parameter {key!r} of detector {canonical!r} must be {what}, got {value!r}"
                )
            kwargs[key] = value
    if spec.seeded and "seed" not in kwargs:
        kwargs["seed"] = seed
    try:
        return spec.factory(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid parameters for detector {canonical!r}: {exc}") from exc


def effective_detector(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    task: str = "classification",
    seed: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """The canonical name of a detector and every parameter that applies to it.

    Unset parameters take the detector's own defaults, so ``streamer check-config`` can show
    what runs rather than an empty table. Values are checked as :func:`make_detector` checks
    them; ``seed`` is what a seeded detector gets when ``params`` has none.

    Examples
    --------
    >>> name, params = effective_detector("adwin", {"delta": 0.01})
    >>> name, params["delta"], params["clock"]
    ('ADWIN', 0.01, 32)
    """
    import inspect

    make_detector(name, params, task=task)  # refuses what the worker would refuse
    canonical, spec = _spec(name, task)
    signature = inspect.signature(spec.factory)
    out = {
        key: p.default
        for key, p in signature.parameters.items()
        if key in spec.checks and p.default is not inspect.Parameter.empty
    }
    if spec.seeded:
        out["seed"] = seed
    out.update(params or {})
    return canonical, out


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
        self.detector_name, spec = _spec(detector, task)
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
