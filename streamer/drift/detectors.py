"""Concept drift detectors: streamer's own two, and the registry of every detector by name.

* :class:`OneSidedADWIN` is River's ADWIN reporting only *increases* of its input. Most of plain
  ADWIN's false alarms on an error stream are the model getting better (its learning curve) or
  recovering after a change; an error monitor should not call those drifts.
* :class:`DualADWIN`, the default, runs two one-sided ADWINs: a sensitive one that reacts fast and
  a conservative one whose window is not shortened by the sensitive one's false alarms, plus a
  third, looser one that raises warnings. When both members alarm on the same change, it is
  reported once. The choice and its figures are in ``docs/drift.md``, measured by
  ``benchmarks/concept_drift_quality.py``.

The registry (:data:`DETECTORS`, :func:`make_detector`, :func:`check_detector`) maps the names
people type (``ADWIN``, ``binary.DDM``, ``hddm_a``…) to a class and says how the class is fed.
The parameters a detector accepts are read from its constructor's signature, and their values
are the constructor's business: River raises for what it refuses, and :func:`check_detector`,
which the settings call once at start-up, also runs the new detector over a short stream, so a
value that River accepts but cannot run with (``HDDM_A`` with ``drift_confidence = 5``) stops
the worker at start-up rather than at its first labelled event. River's ``ADWIN`` checks none of
its arguments and its Rust core panics on a zero ``clock``, so it is registered through
:func:`checked_adwin`, which does.
"""

from __future__ import annotations

import inspect
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
    "TASKS",
    "Detector",
    "DualADWIN",
    "OneSidedADWIN",
    "accepted_params",
    "canonical_name",
    "check_detector",
    "checked_adwin",
    "effective_detector",
    "make_detector",
    "spec_of",
]

TASKS = ("classification", "regression")


class Detector(Protocol):
    """What the monitor needs from a detector: River's drift detector interface."""

    @property
    def drift_detected(self) -> bool: ...

    def update(self, x: Any) -> Any: ...


def _is_probability(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and 0.0 < v < 1.0


def _is_positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _check_adwin(
    delta: Any,
    clock: Any,
    name: str = "delta",
    clock_name: str = "clock",
    *,
    max_buckets: Any = 5,
) -> None:
    """The arguments River's ADWIN takes without a check: a delta outside (0, 1) never alarms,
    and a zero clock or max_buckets panics in its Rust core at the first update."""
    if not _is_probability(delta):
        raise ValueError(f"{name} must be in (0, 1), got {delta!r}")
    if not _is_positive_int(clock):
        raise ValueError(f"{clock_name} must be a positive integer, got {clock!r}")
    if not _is_positive_int(max_buckets):
        raise ValueError(f"max_buckets must be a positive integer, got {max_buckets!r}")


def checked_adwin(
    delta: float = 0.002,
    clock: int = 32,
    max_buckets: int = 5,
    min_window_length: int = 5,
    grace_period: int = 10,
) -> drift.ADWIN:
    """River's :class:`~river.drift.ADWIN`, with its arguments checked first.

    Examples
    --------
    >>> checked_adwin(delta=0.01).delta
    0.01
    >>> checked_adwin(clock=0)
    Traceback (most recent call last):
    ...
    ValueError: clock must be a positive integer, got 0
    """
    _check_adwin(delta, clock, max_buckets=max_buckets)
    return drift.ADWIN(  # type: ignore[no-untyped-call]
        delta=delta,
        clock=clock,
        max_buckets=max_buckets,
        min_window_length=min_window_length,
        grace_period=grace_period,
    )


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
        _check_adwin(delta, clock, max_buckets=max_buckets)
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
# Registry: name -> the class, and how it is fed.


@dataclass(frozen=True)
class _Spec:
    """How to build one named detector and what it expects as input."""

    factory: Callable[..., Detector]
    binary: bool = False  # fed 0/1 only: classification only
    counts_successes: bool = False  # fed 1 - error
    seeded: bool = False  # takes a ``seed``
    warns: bool = False  # has a warning zone


_SPECS: dict[str, _Spec] = {
    "DualADWIN": _Spec(DualADWIN, warns=True),
    "OneSidedADWIN": _Spec(OneSidedADWIN),
    "ADWIN": _Spec(checked_adwin),
    "KSWIN": _Spec(drift.KSWIN, seeded=True),
    "PageHinkley": _Spec(drift.PageHinkley),
    "DDM": _Spec(binary.DDM, binary=True, warns=True),
    "EDDM": _Spec(binary.EDDM, binary=True, warns=True),
    "HDDM_A": _Spec(binary.HDDMA, binary=True, warns=True),
    "HDDM_W": _Spec(binary.HDDMW, binary=True, warns=True),
    # River's FHDDM counts correct predictions, and has a warning_detected attribute that it
    # never sets: no warning zone.
    "FHDDM": _Spec(binary.FHDDM, binary=True, counts_successes=True),
    "NoDrift": _Spec(drift.NoDrift),
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

# A short error stream every new detector must get through in check_detector: a stable
# stretch, a rise, and a fall, long enough for ADWIN's clock and the detectors' warm-ups.
_PROBE = [int(i % 10 == 0) for i in range(300)] + [int(i % 2 == 0) for i in range(300)]


def canonical_name(name: str) -> str:
    """The registry's name for ``name`` (any spelling in :data:`DETECTORS`, any case).

    Examples
    --------
    >>> canonical_name("binary.hddma"), canonical_name("drift.ADWIN")
    ('HDDM_A', 'ADWIN')
    """
    if not isinstance(name, str):
        raise ValueError(f"detector name must be a string, got {name!r}")
    resolved = _LOWER.get(name.strip().lower())
    if resolved is None:
        raise ValueError(
            f"unknown concept drift detector {name!r}; expected one of {', '.join(_SPECS)} "
            f"(aliases: {', '.join(a for a in _ALIASES if not a.startswith('drift.'))})"
        )
    return _ALIASES.get(resolved, resolved)


def spec_of(name: str, task: str = "classification") -> tuple[str, _Spec]:
    """The canonical name and the registry entry of a detector usable for ``task``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    canonical = canonical_name(name)
    spec = _SPECS[canonical]
    if spec.binary and task == "regression":
        real = ", ".join(n for n, s in _SPECS.items() if not s.binary)
        raise ValueError(
            f"detector {canonical!r} only accepts 0/1 errors and cannot monitor a regressor's "
            f"absolute error; use one of {real}"
        )
    return canonical, spec


def accepted_params(name: str) -> dict[str, inspect.Parameter]:
    """The keyword parameters of a detector's constructor, read from its signature.

    Examples
    --------
    >>> list(accepted_params("ADWIN"))
    ['delta', 'clock', 'max_buckets', 'min_window_length', 'grace_period']
    """
    factory = _SPECS[canonical_name(name)].factory
    return {
        n: p
        for n, p in inspect.signature(factory).parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _type_error(value: Any, param: inspect.Parameter) -> str | None:
    """What is wrong with the type of ``value`` for a parameter, judged by its default (an int
    for a float is fine; None only where the default or the annotation allows it)."""
    default = param.default
    if default is None or default is inspect.Parameter.empty:
        return None
    if value is None:
        return None if "None" in str(param.annotation) else "not None"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "True or False"
    if isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "an integer"
    if isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "a finite number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    return None


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
        Constructor keywords of the detector: names it does not take and values of the wrong
        type are refused here, other values by the detector's constructor.
    task
        ``"classification"`` or ``"regression"``; detectors that only take bits are refused for
        regression.
    seed
        Seed for detectors that draw random numbers (KSWIN); ignored by the others. A ``seed`` in
        ``params`` wins.

    Returns
    -------
    The detector. It expects the detector's own input convention: prefer
    :class:`~streamer.drift.concept.ConceptDriftMonitor`, which converts the error for you.

    Raises
    ------
    ValueError
        With a message naming the detector, and the parameter when one is at fault.

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
    >>> make_detector("DualADWIN", {"delta": 5})
    Traceback (most recent call last):
    ...
    ValueError: detector 'DualADWIN' has no parameter 'delta'; accepted: fast_delta, \
fast_clock, slow_delta, slow_clock, warning_delta, warning_clock, merge_window, warning_span

    """
    canonical, spec = spec_of(name, task)
    kwargs: dict[str, Any] = {}
    if params is not None:
        if not isinstance(params, Mapping):
            raise ValueError(f"params of detector {canonical!r} must be a mapping, got {params!r}")
        accepted = accepted_params(canonical)
        for key, value in params.items():
            param = accepted.get(key)
            if param is None:
                names = ", ".join(accepted) or "none"
                raise ValueError(
                    f"detector {canonical!r} has no parameter {key!r}; accepted: {names}"
                )
            wrong = _type_error(value, param)
            if wrong is not None:
                raise ValueError(
                    f"parameter {key!r} of detector {canonical!r} must be {wrong}, got {value!r}"
                )
            kwargs[key] = value
    if spec.seeded and "seed" not in kwargs:
        kwargs["seed"] = seed
    try:
        return spec.factory(**kwargs)
    except (TypeError, ValueError, ArithmeticError, AssertionError) as exc:
        raise ValueError(f"invalid parameters for detector {canonical!r}: {exc}") from exc


def check_detector(name: str, params: Mapping[str, Any] | None = None) -> str:
    """Refuse a detector that would fail in the worker; return its canonical name.

    Builds the detector (:func:`make_detector`) and runs it over a short 0/1 error stream, so
    that a value its constructor accepts but its updates cannot work with is found at start-up.
    Called once, by the settings.

    Examples
    --------
    >>> check_detector("hddm_a")
    'HDDM_A'
    >>> check_detector("HDDM_A", {"drift_confidence": 5})
    Traceback (most recent call last):
    ...
    ValueError: detector 'HDDM_A' fails with parameters {'drift_confidence': 5}: ValueError: \
math domain error
    """
    detector = make_detector(name, params, seed=0)
    canonical = canonical_name(name)
    try:
        for x in _PROBE:
            detector.update(x)
    except BaseException as exc:
        # pyo3's PanicException (a Rust panic in River's core) derives from BaseException.
        if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit):
            raise
        raise ValueError(
            f"detector {canonical!r} fails with parameters {dict(params or {})}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return canonical


def effective_detector(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    task: str = "classification",
    seed: int | None = None,
) -> tuple[str, dict[str, Any]]:
    """The canonical name of a detector and every parameter that applies to it.

    Unset parameters take the defaults of the detector's constructor (its signature), so
    ``streamer check-config`` can show what runs rather than an empty table; ``seed`` is what a
    seeded detector gets when ``params`` has none.

    Examples
    --------
    >>> name, params = effective_detector("adwin", {"delta": 0.01})
    >>> name, params["delta"], params["clock"]
    ('ADWIN', 0.01, 32)
    """
    canonical, spec = spec_of(name, task)
    out = {
        key: p.default
        for key, p in accepted_params(canonical).items()
        if p.default is not inspect.Parameter.empty
    }
    if spec.seeded:
        out["seed"] = seed
    out.update(params or {})
    return canonical, out
