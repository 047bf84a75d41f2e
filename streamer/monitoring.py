"""Drift monitoring without Kafka: a DataFrame or an iterator of dicts in, a :class:`Report` out.

This is the public, notebook-sized face of the monitors the worker runs on every partition.
:class:`Monitor` watches the same signals with the same statistics and defaults, so a drift
found here is a drift the stream would report:

* ``feature`` — every feature column, a reference window against a sliding current window
  (:class:`~streamer.drift.window.WindowMonitor`: PSI, Jensen-Shannon, KS, missing,
  out-of-range and new-category rates), evaluated every ``every`` rows;
* ``prediction`` and ``label`` — the same statistics over a prediction column and a label
  column, when the rows have them;
* ``concept`` — a detector on the model's per-row error (0/1 for a classifier, ``|y - ŷ|`` for
  a regressor), computed from the prediction and label columns or read from an error column
  (:class:`~streamer.drift.concept.ConceptDriftMonitor`, :class:`DualADWIN` by default);
* ``schema`` — shares of rows with a field nobody listed, or a value of another type
  (:class:`~streamer.drift.schema.SchemaMonitor`).

The reference is the first ``reference_size`` rows, or data you pass as ``reference`` (rows,
a DataFrame, or a reference file made by ``streamer drift-reference``). :func:`compare` is the
one-shot form: a reference data set against a current one, as a single window.

Offsets in a report are row positions: 0 is the first row observed (for a reference passed as
data, the first row of that data). Missing values are an absent key, None, NaN or ±inf.
pandas is not needed: a DataFrame is read through its ``columns`` and ``itertuples``, and
:meth:`Report.to_frame` imports pandas only when called.

Examples
--------
A reference data set, and a current one where ``x`` moved by one standard deviation and ``c``
gained a category:

>>> import random
>>> rng = random.Random(7)
>>> def rows(n, mu, cats):
...     return [{"x": rng.gauss(mu, 1), "c": rng.choice(cats)} for _ in range(n)]
>>> report = compare(rows(2000, 0.0, "ab"), rows(1000, 1.0, "abz"))
>>> report.drifted
[('feature', 'x'), ('feature', 'c')]
>>> psi = next(e for e in report.evaluations if e.statistic == "psi" and e.feature == "x")
>>> psi.level, round(psi.value, 2), (psi.warning, psi.alarm), psi.current_offsets
('alarm', 1.06, (0.1, 0.25), (0, 999))

A stream with a model's predictions and the labels, whose concept changes at row 3000 (the
features do not move; the labels and so the model's error do):

>>> monitor = Monitor(prediction="y_pred", label="y", reference_size=1000, window_size=500)
>>> stream = [{**r, "y_pred": r["x"] > 0, "y": r["x"] > 0} for r in rows(3000, 0.0, "ab")]
>>> stream += [{**r, "y_pred": r["x"] > 0, "y": r["x"] > 1} for r in rows(3000, 0.0, "ab")]
>>> report = monitor.observe(stream)
>>> report.drifted
[('label', 'label')]
>>> [(c.level, c.offset) for c in report.concept][:2]
[('warning', 3011), ('alarm', 3015)]
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streamer.drift.concept import DEFAULT_DETECTOR, DRIFT, WARNING, ConceptDriftMonitor
from streamer.drift.schema import SchemaMonitor
from streamer.drift.window import Finding, WindowMonitor

__all__ = [
    "LEVELS",
    "SIGNALS",
    "ConceptChange",
    "Evaluation",
    "Histogram",
    "Monitor",
    "Report",
    "compare",
    "iter_rows",
    "load_reference",
]

#: Signals in the order a report lists them (the worker's names).
SIGNALS = ("concept", "feature", "prediction", "label", "schema")
#: Levels, lowest first; an evaluation's ``level`` is one of them.
LEVELS = ("ok", "warning", "alarm")

# Rows handed to the window monitors at once: bounds memory for long iterators. Results do not
# depend on it (evaluations happen at fixed row counts).
_CHUNK = 1024
# Errors averaged for a concept change that came without a warning (as the worker does).
_RECENT_ERRORS = 50
# Values a schema accepts for each kind of column (see streamer.drift.schema.kind_of).
_NUMBER = frozenset({"number", "boolean"})
_CATEGORY = frozenset({"string", "number", "boolean"})
_ANY = frozenset({"string", "number", "boolean", "array", "object"})


# ---------------------------------------------------------------------------------------------
# What a report holds.


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One statistic of one column at one evaluation.

    Attributes
    ----------
    signal
        ``feature``, ``prediction``, ``label`` or ``schema``.
    feature
        Column (or, for ``schema``, field) name.
    statistic
        ``psi``, ``js``, ``ks``, ``missing_rate``, ``out_of_range_rate``,
        ``new_category_rate``; for ``schema``: ``new_field_rate``, ``missing_rate``,
        ``type_changed_rate``.
    value
        The statistic.
    warning, alarm
        Its thresholds: the level is ``warning`` from the first, ``alarm`` from the second.
    level
        ``ok``, ``warning`` or ``alarm``.
    reference_offsets
        First and last row of the reference window ((-1, -1) when there is none).
    current_offsets
        First and last row of the current window.
    events
        Rows the monitor had seen at the evaluation.
    """

    signal: str
    feature: str
    statistic: str
    value: float
    warning: float
    alarm: float
    level: str
    reference_offsets: tuple[int, int]
    current_offsets: tuple[int, int]
    events: int

    def to_dict(self) -> dict[str, Any]:
        """Flat plain data (offsets as ``*_first_offset`` / ``*_last_offset``, as drift events)."""
        return {
            "signal": self.signal,
            "feature": self.feature,
            "statistic": self.statistic,
            "value": self.value,
            "warning": self.warning,
            "alarm": self.alarm,
            "level": self.level,
            "reference_first_offset": self.reference_offsets[0],
            "reference_last_offset": self.reference_offsets[1],
            "current_first_offset": self.current_offsets[0],
            "current_last_offset": self.current_offsets[1],
            "events": self.events,
        }


@dataclass(frozen=True, slots=True)
class ConceptChange:
    """The concept detector entered its warning zone (``warning``) or found a drift (``alarm``).

    Attributes
    ----------
    detector
        The detector's name (``DualADWIN``…).
    level
        ``warning`` or ``alarm``.
    offset
        Row whose error raised it.
    first_offset
        First row of the concept it ends: the row after the previous drift (or the first row).
    events
        Errors the detector had seen.
    error
        The model's mean error since the change began (since the warning, when there was one,
        else over the last 50 errors).
    baseline
        The model's mean error before that, since the previous drift (NaN when there is none).
    """

    detector: str
    level: str
    offset: int
    first_offset: int
    events: int
    error: float
    baseline: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Histogram:
    """The reference's and the current rows' distribution of one column, in the reference bins.

    Numeric columns use the bins the statistics use (quantiles of the reference, with an
    open-ended bin below and above its range); categorical ones the reference's top
    categories and ``(other)``. The last bin counts missing values.

    Attributes
    ----------
    signal, feature
        As in :class:`Evaluation`.
    kind
        ``numeric`` or ``categorical``.
    bins
        One label per bin (``[0.12, 0.5)``, ``< -2.1``, ``≥ 3.4``, a category, ``(other)``,
        ``(missing)``).
    reference, current
        Counts per bin.
    """

    signal: str
    feature: str
    kind: str
    bins: tuple[str, ...]
    reference: tuple[int, ...]
    current: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return {
            "signal": self.signal,
            "feature": self.feature,
            "kind": self.kind,
            "bins": list(self.bins),
            "reference": list(self.reference),
            "current": list(self.current),
        }


class Report:
    """What a :class:`Monitor` found: every evaluation, concept changes, histograms.

    Parameters
    ----------
    evaluations
        Every statistic at every evaluation, by the row that completed it.
    concept
        Warnings and drifts of the concept detector, in order.
    histograms
        Reference and current distributions, one per watched column.
    events
        Rows observed.
    """

    __slots__ = ("concept", "evaluations", "events", "histograms")

    def __init__(
        self,
        evaluations: Iterable[Evaluation] = (),
        concept: Iterable[ConceptChange] = (),
        histograms: Iterable[Histogram] = (),
        events: int = 0,
    ) -> None:
        self.evaluations: tuple[Evaluation, ...] = tuple(evaluations)
        self.concept: tuple[ConceptChange, ...] = tuple(concept)
        self.histograms: tuple[Histogram, ...] = tuple(histograms)
        self.events = events

    def latest(self) -> tuple[Evaluation, ...]:
        """The last evaluation of each (signal, feature, statistic), in first-seen order."""
        last: dict[tuple[str, str, str], Evaluation] = {}
        for e in self.evaluations:
            last[(e.signal, e.feature, e.statistic)] = e
        return tuple(last.values())

    def alarms(self) -> tuple[Evaluation, ...]:
        """The evaluations at alarm level."""
        return tuple(e for e in self.evaluations if e.level == "alarm")

    @property
    def drifted(self) -> list[tuple[str, str]]:
        """(signal, column) pairs with a statistic at alarm level at some evaluation."""
        seen: dict[tuple[str, str], None] = {}
        for e in self.evaluations:
            if e.level == "alarm":
                seen[(e.signal, e.feature)] = None
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready data: ``events``, ``evaluations``, ``concept``, ``histograms``."""
        return {
            "events": self.events,
            "evaluations": [e.to_dict() for e in self.evaluations],
            "concept": [c.to_dict() for c in self.concept],
            "histograms": [h.to_dict() for h in self.histograms],
        }

    def to_frame(self) -> Any:
        """The evaluations as a pandas DataFrame, one row each (columns of
        :meth:`Evaluation.to_dict`).

        Raises
        ------
        ImportError
            If pandas is not installed (streamer does not need it; :meth:`to_dict` neither).
        """
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError(
                "Report.to_frame needs pandas (pip install pandas); to_dict() does not"
            ) from exc
        columns = list(Evaluation.__dataclass_fields__)
        columns = [
            *columns[: columns.index("reference_offsets")],
            "reference_first_offset",
            "reference_last_offset",
            "current_first_offset",
            "current_last_offset",
            "events",
        ]
        return pd.DataFrame([e.to_dict() for e in self.evaluations], columns=columns)

    def to_html(self, title: str = "Drift report", source: str = "") -> str:
        """A self-contained HTML page: tables, plots over rows, histograms (see
        :mod:`streamer.report`); ``source`` is a line saying what was compared."""
        from streamer.report import render_report

        return render_report(self, title=title, source=source)

    def _repr_html_(self) -> str:
        # Notebooks show the report as its HTML fragment (styles scoped to it).
        from streamer.report import render_report

        return render_report(self, fragment=True)

    def __repr__(self) -> str:
        return (
            f"Report(events={self.events}, evaluations={len(self.evaluations)}, "
            f"alarms={len(self.alarms())}, drifted={self.drifted}, "
            f"concept_changes={len(self.concept)})"
        )


# ---------------------------------------------------------------------------------------------
# Reading rows.


def _plain(v: Any) -> Any:
    """A value as the monitors expect it: NaN is missing (None), numpy scalars are Python's."""
    if isinstance(v, float):
        return None if v != v else v
    if isinstance(v, np.generic):
        v = v.item()
        return None if isinstance(v, float) and v != v else v
    return v


def iter_rows(data: Any) -> Iterator[dict[str, Any]]:
    """The rows of a DataFrame (anything with ``columns`` and ``itertuples``) or an iterable of
    mappings, as dicts with missing values as None.

    Raises
    ------
    TypeError
        If ``data`` is a single mapping, or an item is not a mapping.
    """
    if hasattr(data, "columns") and hasattr(data, "itertuples"):
        names = [str(c) for c in data.columns]
        for values in data.itertuples(index=False, name=None):
            yield {k: _plain(v) for k, v in zip(names, values, strict=True)}
        return
    if isinstance(data, (Mapping, str | bytes)):
        raise TypeError(
            f"expected rows (an iterable of mappings) or a DataFrame, got {type(data).__name__}"
            " (for one row pass [row]; for columns, a DataFrame)"
        )
    for i, row in enumerate(data):
        if not isinstance(row, Mapping):
            raise TypeError(f"row {i} is a {type(row).__name__}, not a mapping")
        yield {str(k): _plain(v) for k, v in row.items()}


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def load_reference(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A reference file written by ``streamer drift-reference`` or :meth:`Monitor.reference`."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p} is not a reference file (not JSON: {exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("features"), dict):
        raise ValueError(f"{p} is not a reference file (no 'features' snapshot)")
    return data


# ---------------------------------------------------------------------------------------------
# Pieces of the monitor.


def _bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the bins ``np.searchsorted(edges, x, "right")`` makes, and of missing values.

    >>> _bin_labels([0.0, math.nextafter(0.0, 1.0), 0.5, 1.0, math.nextafter(1.0, 2.0)])
    ['< 0', '0', '(0, 0.5)', '[0.5, 1)', '1', '> 1', '(missing)']
    """
    if not edges:
        return ["(any)", "(missing)"]
    labels = [f"< {edges[0]:.4g}"]
    for i, (lo, hi) in enumerate(pairwise(edges)):
        if hi == math.nextafter(lo, math.inf):
            labels.append(f"{lo:.4g}")  # a point mass: its own bin, [x, nextafter(x))
        elif i and lo == math.nextafter(edges[i - 1], math.inf):
            labels.append(f"({edges[i - 1]:.4g}, {hi:.4g})")  # the values after a point mass
        else:
            labels.append(f"[{lo:.4g}, {hi:.4g})")
    # The reference's maximum is a point mass's edge: values above the range are "> max".
    if len(edges) > 1 and edges[-1] == math.nextafter(edges[-2], math.inf):
        labels.append(f"> {edges[-2]:.4g}")
    else:
        labels.append(f"≥ {edges[-1]:.4g}")
    labels.append("(missing)")
    return labels


class _Histograms:
    """Counts of the current rows in the reference bins of one window monitor's columns."""

    def __init__(self, signal: str, snapshot: Mapping[str, Any]) -> None:
        self.signal = signal
        self._numeric: list[tuple[str, npt.NDArray[np.float64], list[str], list[int]]] = []
        self._categorical: list[tuple[str, dict[Any, int], list[str], list[int]]] = []
        self._counts: dict[str, npt.NDArray[np.int64]] = {}
        for name, d in snapshot.get("numeric", {}).items():
            edges = [float(e) for e in d["edges"]]
            ref = [int(c) for c in d["counts"]] + [int(d["missing"])]
            self._numeric.append((name, np.asarray(edges), _bin_labels(edges), ref))
            self._counts[name] = np.zeros(len(ref), dtype=np.int64)
        for name, d in snapshot.get("categorical", {}).items():
            top = list(d["top"])
            index = {c: i for i, c in enumerate(top)}
            labels = [str(c) for c in top] + ["(other)", "(missing)"]
            ref = [int(c) for c in d["top_counts"]]
            ref += [int(d["other"]) + int(d["unseen"]), int(d["missing"])]
            self._categorical.append((name, index, labels, ref))
            self._counts[name] = np.zeros(len(ref), dtype=np.int64)

    def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        for name, edges, _, ref in self._numeric:
            x = np.array([_number(r.get(name)) for r in rows], dtype=np.float64)
            finite = np.isfinite(x)
            idx = np.searchsorted(edges, x[finite], side="right")
            counts = np.bincount(idx, minlength=len(ref))
            counts[-1] += int((~finite).sum())
            self._counts[name] += counts
        for name, index, _, ref in self._categorical:
            other, missing = len(ref) - 2, len(ref) - 1
            tally: Counter[int] = Counter()
            for r in rows:
                v = r.get(name)
                if v is None:
                    tally[missing] += 1
                else:
                    try:
                        tally[index.get(v, other)] += 1
                    except TypeError:  # unhashable: the window monitor counts it as missing
                        tally[missing] += 1
            for i, n in tally.items():
                self._counts[name][i] += n

    def histograms(self) -> list[Histogram]:
        out = []
        for kind, cols in (("numeric", self._numeric), ("categorical", self._categorical)):
            for name, _, labels, ref in cols:
                out.append(
                    Histogram(
                        self.signal,
                        name,
                        kind,
                        tuple(labels),
                        tuple(ref),
                        tuple(int(c) for c in self._counts[name]),
                    )
                )
        return out

    def reset_counts(self) -> None:
        for c in self._counts.values():
            c[:] = 0


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


class _Window:
    """One window monitor, the column it reads, and the histograms of its current rows."""

    def __init__(self, signal: str, monitor: WindowMonitor) -> None:
        self.signal = signal
        self.monitor = monitor
        self.hist: _Histograms | None = None
        self.totals: _Histograms | None = None

    def observe(self, rows: list[dict[str, Any]], offsets: list[int]) -> list[Finding]:
        """Feed the window monitor; count the rows that went past the reference."""
        before = self.monitor.ready
        done = 0 if before else self.monitor.reference_size - self.monitor.events
        findings = self.monitor.observe(rows, offsets)
        current = rows[max(done, 0) :]
        if self.monitor.ready and self.hist is None:
            snap = self.monitor.reference_snapshot()
            self.hist, self.totals = _Histograms(self.signal, snap), _Histograms(self.signal, snap)
        if self.hist is not None and self.totals is not None and current:
            self.hist.add(current)
            self.totals.add(current)
        return findings


class _ErrorTrack:
    """The model's mean error since a change began and before it, since the last drift."""

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=_RECENT_ERRORS)
        self.total = 0.0
        self.n = 0
        self.first: int | None = None
        self.warned: tuple[float, int] | None = None

    def add(self, error: float, offset: int) -> None:
        if self.first is None:
            self.first = offset
        self.recent.append(error)
        self.total += error
        self.n += 1

    def values(self) -> tuple[float, float]:
        if self.warned is not None:
            before_sum, before_n = self.warned
        else:
            before_sum, before_n = self.total - sum(self.recent), self.n - len(self.recent)
        after_n = self.n - before_n
        after = (self.total - before_sum) / after_n if after_n else math.nan
        before = before_sum / before_n if before_n else math.nan
        return after, before


# ---------------------------------------------------------------------------------------------
# The monitor.


class Monitor:
    """Drift of rows against a reference: features, predictions, labels, error, schema.

    Parameters
    ----------
    features
        Feature columns to watch. None: every column of the first rows except ``prediction``,
        ``label``, ``error`` and ``ignore`` (or, with a reference file, the features in it).
    categorical
        Features whose values are categories; the others are numbers. With ``features`` None,
        columns holding strings in the first rows are categorical too.
    prediction, label
        Columns holding the model's prediction and the true label, if any. Each is watched
        like a feature (as a category for classification, a number for regression), over the
        rows where it is present; with both, their disagreement is the error the concept
        detector watches.
    error
        A column holding the model's error (0/1, or ``|y - ŷ|``), instead of computing it.
    ignore
        Columns that are neither watched nor new fields (an id, a timestamp).
    task
        ``"classification"`` or ``"regression"``.
    reference
        None: the first ``reference_size`` rows. Rows or a DataFrame: all of them. A mapping
        or a path: a reference file made by ``streamer drift-reference`` or
        :meth:`reference` (``{"features": snapshot, "predictions": …, "labels": …}``).
    reference_size, window_size, every, bins, top_k, max_categories
        As :class:`~streamer.drift.window.WindowMonitor`: reference rows, current window
        rows, evaluate every this many rows, quantile bins, top categories, categories
        remembered. The defaults are the worker's (docs/drift.md says how they were chosen).
    thresholds
        Statistic -> ``(warning, alarm)`` for features, predictions and labels; unset ones
        keep :data:`streamer.drift.window.DEFAULT_THRESHOLDS`.
    detector, detector_params
        The concept drift detector (a name of :data:`streamer.drift.concept.DETECTORS`) and its
        keywords; ``detector=None`` turns concept drift off.
    schema
        Watch for new fields and values of another type.
    seed
        Seed of detectors that draw random numbers.

    Raises
    ------
    ValueError
        For a bad setting or reference, naming it.
    """

    def __init__(
        self,
        features: Sequence[str] | None = None,
        *,
        categorical: Sequence[str] = (),
        prediction: str | None = None,
        label: str | None = None,
        error: str | None = None,
        ignore: Sequence[str] = (),
        task: str = "classification",
        reference: Any = None,
        reference_size: int = 2000,
        window_size: int = 1000,
        every: int = 250,
        bins: int = 10,
        top_k: int = 20,
        max_categories: int = 1000,
        thresholds: Mapping[str, tuple[float, float]] | None = None,
        detector: str | None = DEFAULT_DETECTOR,
        detector_params: Mapping[str, Any] | None = None,
        schema: bool = True,
        seed: int | None = None,
    ) -> None:
        if task not in ("classification", "regression"):
            raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
        if isinstance(features, str) or isinstance(categorical, str):
            raise ValueError("features and categorical are lists of column names, not a string")
        self.features = None if features is None else tuple(features)
        self.categorical = tuple(categorical)
        self.prediction = prediction
        self.label = label
        self.error = error
        self.ignore = tuple(ignore)
        self.task = task
        self.reference_size = reference_size
        self.window_size = window_size
        self.every = every
        self.bins = bins
        self.top_k = top_k
        self.max_categories = max_categories
        self.thresholds = dict(thresholds or {})
        self.detector = detector
        self.detector_params = dict(detector_params or {})
        self.schema = schema
        self.seed = seed
        special = [c for c in (prediction, label, error) if c]
        if len(set(special)) != len(special):
            raise ValueError("prediction, label and error must be different columns")
        if self.features is not None:
            clash = sorted(set(self.features) & (set(special) | set(self.ignore)))
            if clash:
                raise ValueError(
                    f"features {clash} are also the prediction, label, error or ignored"
                )
            unknown = sorted(set(self.categorical) - set(self.features))
            if unknown:
                raise ValueError(f"categorical columns {unknown} are not in features")
        self._pinned = self._reference(reference)
        self._concept = (
            ConceptDriftMonitor(detector, detector_params, task=task, seed=seed)
            if detector is not None and (error or (prediction and label))
            else None
        )
        self._windows: list[_Window] = []
        self._schema: SchemaMonitor | None = None
        self.reset()

    # -- construction -------------------------------------------------------------------------

    def _reference(self, reference: Any) -> dict[str, Any] | None:
        """The reference snapshots, or None for the first ``reference_size`` rows."""
        if reference is None:
            return None
        if isinstance(reference, str | os.PathLike):
            return load_reference(reference)
        if isinstance(reference, Mapping):
            if not isinstance(reference.get("features"), Mapping):
                raise ValueError(
                    "reference: a mapping must be a reference file's content, with a "
                    "'features' snapshot (pass rows as a list or a DataFrame)"
                )
            return dict(reference)
        rows = list(iter_rows(reference))
        if not rows:
            raise ValueError("reference: no rows")
        numeric, categorical = self._columns(rows)
        out = {"features": self._snapshot(numeric, categorical, rows)}
        for key, column, name in (
            ("predictions", self.prediction, "prediction"),
            ("labels", self.label, "label"),
        ):
            if column:
                values = [
                    {name: self._encode(r[column])} for r in rows if r.get(column) is not None
                ]
                if values:
                    num, cat = ([], [name]) if self.task == "classification" else ([name], [])
                    out[key] = self._snapshot(num, cat, values)
        return out

    def _snapshot(
        self, numeric: list[str], categorical: list[str], rows: list[dict[str, Any]]
    ) -> dict[str, Any]:
        mon = WindowMonitor(
            numeric,
            categorical,
            reference_size=len(rows),
            bins=self.bins,
            top_k=self.top_k,
            max_categories=self.max_categories,
        )
        mon.observe(rows, range(len(rows)))
        return mon.reference_snapshot()

    def _columns(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
        """Numeric and categorical feature columns: as given, or read off the first rows."""
        if self.features is not None:
            cat = set(self.categorical)
            return [f for f in self.features if f not in cat], list(self.categorical)
        skip = {self.prediction, self.label, self.error, *self.ignore}
        names: dict[str, None] = {}
        for r in rows:
            names.update((k, None) for k in r if k not in skip)
        categorical = set(self.categorical)
        for name in names:
            values = (r.get(name) for r in rows)
            if any(v is not None and not isinstance(v, int | float) for v in values):
                categorical.add(name)
        return [n for n in names if n not in categorical], [n for n in names if n in categorical]

    def _window(self, signal: str, numeric: list[str], categorical: list[str]) -> _Window:
        key = {"feature": "features", "prediction": "predictions", "label": "labels"}[signal]
        kwargs: dict[str, Any] = {}
        if self._pinned is not None:
            snap = self._pinned.get(key)
            if snap is None:
                raise ValueError(f"reference: no {key!r} snapshot for the {signal} column")
            kwargs = {"reference": "pinned", "pinned": snap}
        mon = WindowMonitor(
            numeric,
            categorical,
            reference_size=self.reference_size,
            window_size=self.window_size,
            every=self.every,
            bins=self.bins,
            top_k=self.top_k,
            max_categories=self.max_categories,
            thresholds=self.thresholds,
            **kwargs,
        )
        return _Window(signal, mon)

    def _setup(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Build the window and schema monitors once the feature columns are known."""
        if self._pinned is not None and self.features is None:
            snap = self._pinned["features"]
            numeric = list(snap.get("numeric", {}))
            categorical = list(snap.get("categorical", {}))
        else:
            numeric, categorical = self._columns(rows)
        if not numeric and not categorical:
            raise ValueError("no feature columns to watch: pass features=[...]")
        self._windows = [self._window("feature", numeric, categorical)]
        for signal, column in (("prediction", self.prediction), ("label", self.label)):
            if column:
                # The window watches one column named after the signal, as the worker's does.
                if self.task == "classification":
                    self._windows.append(self._window(signal, [], [signal]))
                else:
                    self._windows.append(self._window(signal, [signal], []))
        self._schema = None
        if self.schema:
            expected: dict[str, frozenset[str]] = dict.fromkeys(numeric, _NUMBER)
            expected.update(dict.fromkeys(categorical, _CATEGORY))
            expected.update(dict.fromkeys(self.ignore, _ANY))
            for column in (self.prediction, self.label):
                if column:
                    expected[column] = _CATEGORY
            if self.error:
                expected[self.error] = _NUMBER
            # Every column may be missing: the window monitors compare missing values with
            # the reference's; the schema signal reports what the reference cannot have had.
            self._schema = SchemaMonitor(
                expected, optional=list(expected), every=self.every, reference_size=1
            )

    def _encode(self, y: Any) -> Any:
        # As the worker and `streamer drift-reference` do: classes as strings, values as numbers.
        return str(y) if self.task == "classification" else y

    # -- public -------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the feature reference is complete (at once with a reference given)."""
        if self._pinned is not None:
            return True
        return bool(self._windows) and self._windows[0].monitor.ready

    @property
    def events(self) -> int:
        """Rows observed since construction or :meth:`reset`."""
        return self._n

    def reset(self) -> None:
        """Forget the rows observed (and a reference taken from the first rows; not one given)."""
        self._n = 0
        self._windows = []
        self._schema = None
        self._evaluations: list[Evaluation] = []
        self._changes: list[ConceptChange] = []
        self._errors = _ErrorTrack()
        if self._concept is not None:
            self._concept.reset()

    def observe(self, rows: Any) -> Report:
        """Feed rows, in order; return what they triggered.

        Parameters
        ----------
        rows
            A DataFrame or an iterable of mappings (column -> value); read in chunks, so a
            generator need not fit in memory.

        Returns
        -------
        Report
            The evaluations and concept changes these rows triggered, and their histograms
            against the reference. :meth:`report` has everything since the start.

        Raises
        ------
        TypeError
            If ``rows`` is not a DataFrame or an iterable of mappings.
        ValueError
            If an error value does not fit the task (the message names the row).
        """
        evaluations: list[Evaluation] = []
        changes: list[ConceptChange] = []
        start = self._n
        for w in self._windows:
            if w.hist is not None:
                w.hist.reset_counts()
        for chunk in _chunks(iter_rows(rows), _CHUNK):
            if not self._windows:
                self._setup(chunk)
            evaluations += self._observe(chunk, changes)
        evaluations.sort(key=lambda e: e.current_offsets[1])  # stable: signal order kept
        self._evaluations += evaluations
        self._changes += changes
        return Report(
            evaluations,
            changes,
            [h for w in self._windows if w.hist is not None for h in w.hist.histograms()],
            self._n - start,
        )

    def report(self) -> Report:
        """Everything since the start (or :meth:`reset`): evaluations, concept changes, and the
        histograms of all rows compared with the reference."""
        return Report(
            self._evaluations,
            self._changes,
            [h for w in self._windows if w.totals is not None for h in w.totals.histograms()],
            self._n,
        )

    def reference(self) -> dict[str, Any]:
        """The reference snapshots, in the format of ``streamer drift-reference``: save it as
        JSON and pin it in the worker (``drift.windows.reference_file``) or here.

        Raises
        ------
        RuntimeError
            If the reference is not complete yet.
        """
        if not self._windows:
            raise RuntimeError("no rows observed yet: the reference is not complete")
        key = {"feature": "features", "prediction": "predictions", "label": "labels"}
        return {
            key[w.signal]: w.monitor.reference_snapshot()
            for w in self._windows
            if w.monitor.ready or w.signal == "feature"
        }

    def __repr__(self) -> str:
        names = (
            [*self._windows[0].monitor.numeric, *self._windows[0].monitor.categorical]
            if self._windows
            else self.features
        )
        return (
            f"Monitor(features={names!r}, prediction={self.prediction!r}, label={self.label!r}, "
            f"events={self._n}, ready={self.ready})"
        )

    # -- per chunk ----------------------------------------------------------------------------

    def _observe(
        self, rows: list[dict[str, Any]], changes: list[ConceptChange]
    ) -> list[Evaluation]:
        n = len(rows)
        offsets = list(range(self._n, self._n + n))
        out: list[Evaluation] = []
        if self._schema is not None:
            found = self._schema.observe(rows, offsets)
            out += self._evaluations_of("schema", found, self._schema.thresholds)
        features = self._windows[0]
        found = features.observe(rows, offsets)
        out += self._evaluations_of("feature", found, features.monitor.thresholds)
        for w in self._windows[1:]:
            column = self.prediction if w.signal == "prediction" else self.label
            assert column is not None
            sel = [
                (o, r[column])
                for o, r in zip(offsets, rows, strict=True)
                if r.get(column) is not None
            ]
            if sel:
                found = w.observe(
                    [{w.signal: self._encode(v)} for _, v in sel], [o for o, _ in sel]
                )
                out += self._evaluations_of(w.signal, found, w.monitor.thresholds)
        if self._concept is not None:
            self._concept_errors(rows, offsets, changes)
        self._n += n
        return out

    def _evaluations_of(
        self, signal: str, found: list[Finding], thresholds: Mapping[str, tuple[float, float]]
    ) -> list[Evaluation]:
        return [
            Evaluation(
                signal,
                f.feature,
                f.statistic,
                f.value,
                thresholds[f.statistic][0],
                thresholds[f.statistic][1],
                LEVELS[f.level],
                f.reference_offsets,
                f.current_offsets,
                f.events,
            )
            for f in found
        ]

    def _row_error(self, row: Mapping[str, Any]) -> float | None:
        if self.error:
            e = row.get(self.error)
            return None if e is None else e
        assert self.prediction and self.label
        y_pred, y = row.get(self.prediction), row.get(self.label)
        if y_pred is None or y is None:
            return None
        if self.task == "classification":
            return float(str(y_pred) != str(y))
        return abs(_number(y) - _number(y_pred))

    def _concept_errors(
        self, rows: list[dict[str, Any]], offsets: list[int], changes: list[ConceptChange]
    ) -> None:
        monitor = self._concept
        assert monitor is not None
        track = self._errors
        for offset, row in zip(offsets, rows, strict=True):
            error = self._row_error(row)
            if error is None:
                continue
            previous = monitor.state
            try:
                state = monitor.update(error)
            except ValueError as exc:
                raise ValueError(f"row {offset}: {exc}") from exc
            track.add(float(error), offset)
            if state == DRIFT or (state == WARNING and previous != WARNING):
                after, before = track.values()
                assert track.first is not None
                changes.append(
                    ConceptChange(
                        monitor.detector_name,
                        "alarm" if state == DRIFT else "warning",
                        offset,
                        track.first,
                        monitor.n,
                        after,
                        before,
                    )
                )
                if state == DRIFT:
                    self._errors = track = _ErrorTrack()  # a new concept starts here
                else:
                    track.warned = (track.total - float(error), track.n - 1)


def compare(reference: Any, current: Any, **options: Any) -> Report:
    """Compare a current data set with a reference, as one window: Evidently's question.

    Parameters
    ----------
    reference
        Rows, a DataFrame, a reference file's content or its path (see :class:`Monitor`).
    current
        Rows or a DataFrame; read into memory.
    **options
        Other :class:`Monitor` parameters (``features``, ``categorical``, ``prediction``,
        ``label``, ``thresholds``…); not ``window_size`` and ``every``, which are the number of
        current rows.

    Returns
    -------
    Report
        One evaluation of every statistic over all current rows, the histograms, and the
        concept detector's changes over the current rows if they have predictions and labels.
    """
    if reference is None:
        raise ValueError("compare needs a reference (rows, a DataFrame or a reference file)")
    for key in ("window_size", "every", "reference_size"):
        if key in options:
            raise ValueError(f"compare sets {key} itself; use Monitor for windows over a stream")
    rows = list(iter_rows(current))
    if not rows:
        raise ValueError("compare: no current rows")
    monitor = Monitor(reference=reference, window_size=len(rows), every=len(rows), **options)
    return monitor.observe(rows)
