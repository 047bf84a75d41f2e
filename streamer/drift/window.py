"""Data drift over windows: a reference window against a sliding current window, per feature.

The same monitor serves feature drift, prediction drift and label drift: a "feature" is only a
named column of the rows it is fed (``{"prediction": y_pred}`` or ``{"label": y}`` work as well
as model inputs).

How it works
------------
1. **Reference.** With ``reference="first"`` the first ``reference_size`` events after start or
   :meth:`WindowMonitor.reset` form the reference. When it is complete, each numeric feature is
   cut into bins at the reference quantiles (:func:`~streamer.drift.stats.quantile_edges`, with
   two open-ended bins outside the reference range), and each categorical feature keeps its
   ``top_k`` most frequent reference categories, an ``other`` bucket, and a bounded set of the
   ``max_categories`` most frequent reference categories to tell *rare* from *new*. The raw
   reference values are then dropped; what remains is a JSON snapshot
   (:meth:`WindowMonitor.reference_snapshot`) that ``reference="pinned"`` loads back.
2. **Current window.** Every later event is encoded into one small integer per feature (its bin,
   category slot, or *missing*) and written into a ring buffer of the last ``window_size``
   events, whose per-bin counts are kept up to date: adding and evicting are vectorised over
   the batch with numpy, O(1) amortised per event and feature, with no statistic computed.
3. **Evaluation.** Exactly when the event count reaches a multiple of ``every`` (and the current
   window is full), every statistic of every feature is computed from the counts and returned
   as :class:`Finding` records with a level (0 ok, 1 warning, 2 alarm).

Statistics (``Finding.statistic``)
----------------------------------
``psi``, ``js``, ``ks``
    PSI, Jensen-Shannon distance (base 2) and binned KS between the reference and current bin
    frequencies (see :mod:`streamer.drift.stats` for smoothing). ``ks`` only for numeric
    features: categories have no order.
``missing_rate``
    ``|current missing share - reference missing share|``, over all events of each window.
``out_of_range_rate`` (numeric)
    Share of the current non-missing values outside ``[reference min, reference max]``, minus
    the reference's own share (0 unless the snapshot was edited).
``new_category_rate`` (categorical)
    Share of the current non-missing values outside the remembered reference categories, minus
    the share expected without drift, clipped at 0. The expected share is the reference's share
    of values outside the remembered set (0 unless the reference had more than
    ``max_categories`` distinct values) plus the Good-Turing estimate of the mass of categories
    the reference never saw (remembered categories seen once / values; 0 for a
    low-cardinality feature whose categories all repeat).

Missing values (absent key, ``None``, and for numeric features NaN and ±inf) are left out of
the distributions and only count towards ``missing_rate``.

Determinism: everything the statistics see is an integer count, and evaluations happen at
fixed event counts, so the findings do not depend on how the stream is split into batches.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from streamer.drift import defaults, stats

__all__ = [
    "CATEGORICAL_STATISTICS",
    "DEFAULT_THRESHOLDS",
    "NUMERIC_STATISTICS",
    "SNAPSHOT_FORMAT",
    "Finding",
    "WindowMonitor",
]

#: Statistic -> (warning, alarm); see :data:`streamer.drift.defaults.WINDOW_THRESHOLDS`.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = defaults.WINDOW_THRESHOLDS

#: Statistics reported for each numeric feature, in the order of the findings.
NUMERIC_STATISTICS: tuple[str, ...] = ("psi", "js", "ks", "missing_rate", "out_of_range_rate")
#: Statistics reported for each categorical feature, in the order of the findings.
CATEGORICAL_STATISTICS: tuple[str, ...] = ("psi", "js", "missing_rate", "new_category_rate")

#: Value of the ``"format"`` key of a reference snapshot.
SNAPSHOT_FORMAT = "streamer.drift.window/1"

_STAT_ORDER = ("psi", "js", "ks", "missing_rate", "out_of_range_rate", "new_category_rate")

# Batches smaller than this are encoded with one broadcast comparison; larger ones with one
# comparison per edge column, which is 3-5x faster there (benchmarks/drift_cost.py).
_BROADCAST_BELOW = 32

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Finding:
    """One statistic of one feature at one evaluation.

    Attributes
    ----------
    feature
        Column name.
    statistic
        One of :data:`NUMERIC_STATISTICS` or :data:`CATEGORICAL_STATISTICS`.
    value
        The statistic.
    threshold
        The alarm threshold applied to it.
    level
        0 ok, 1 warning (``value >= warning``), 2 alarm (``value >= alarm``).
    reference_offsets
        First and last offset of the reference window.
    current_offsets
        First and last offset of the current window.
    events
        Events seen by the monitor (since construction or the last reset) at the evaluation.
    """

    feature: str
    statistic: str
    value: float
    threshold: float
    level: int
    reference_offsets: tuple[int, int]
    current_offsets: tuple[int, int]
    events: int


def _one_value(name: str, row: Mapping[str, Any]) -> tuple[Any]:
    return (row[name],)


def _getter(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A fast, picklable ``row -> tuple of values`` for complete rows (KeyError otherwise)."""
    if len(names) == 1:
        return partial(_one_value, names[0])
    return itemgetter(*names)


def _to_float(v: Any) -> float:
    # float() semantics, like the numpy fast paths, so a value reads the same in any batch.
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _hashable_or_none(v: Any) -> Any:
    try:
        hash(v)
    except TypeError:
        return None
    return v


class WindowMonitor:
    """Per-feature data drift of a sliding window against a reference window.

    Parameters
    ----------
    numeric
        Names of numeric columns (int or float values).
    categorical
        Names of categorical columns (str, or any hashable JSON scalar such as a class label).
    reference_size
        Events in the reference window (``reference="first"``).
    window_size
        Events in the sliding current window.
    every
        Evaluate when the event count reaches a multiple of this (K); nothing is evaluated per
        event.
    bins
        Quantile bins over the reference range of a numeric feature (plus two out-of-range bins
        and point-mass bins, see :func:`~streamer.drift.stats.quantile_edges`).
    top_k
        Categories kept with their own frequency; the rest share an ``other`` bucket.
    max_categories
        Reference categories remembered per feature to tell a rare category from a new one
        (the most frequent ones, ``>= top_k``). Bounds memory for high-cardinality columns.
    thresholds
        Statistic -> ``(warning, alarm)``; overrides :data:`DEFAULT_THRESHOLDS` per statistic.
    reference
        ``"first"``: the first ``reference_size`` events after start or :meth:`reset`.
        ``"pinned"``: the snapshot given as ``pinned``, kept across resets.
    pinned
        A :meth:`reference_snapshot` (as loaded from JSON) for ``reference="pinned"``.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> mon = WindowMonitor(["x"], ["c"], reference_size=500, window_size=500, every=250)
    >>> def rows(n, mu, cats):
    ...     return [{"x": rng.gauss(mu, 1), "c": rng.choice(cats)} for _ in range(n)]
    >>> mon.observe(rows(900, 0.0, "ab"), offsets=range(900))  # reference, then filling
    []
    >>> mon.ready
    True
    >>> alarms = [f for f in mon.observe(rows(1100, 1.0, "abz"), range(900, 2000)) if f.level == 2]
    >>> sorted({(f.feature, f.statistic) for f in alarms})
    [('c', 'js'), ('c', 'new_category_rate'), ('c', 'psi'), ('x', 'js'), ('x', 'ks'), ('x', 'psi')]
    >>> first = alarms[0]
    >>> first.feature, first.statistic, first.events, first.reference_offsets, first.current_offsets
    ('c', 'psi', 1000, (0, 499), (500, 999))
    """

    def __init__(
        self,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        *,
        reference_size: int = defaults.REFERENCE_SIZE,
        window_size: int = defaults.WINDOW_SIZE,
        every: int = defaults.EVERY,
        bins: int = defaults.BINS,
        top_k: int = defaults.TOP_K,
        max_categories: int = 1000,
        thresholds: Mapping[str, tuple[float, float]] | None = None,
        reference: str = "first",
        pinned: Mapping[str, Any] | None = None,
    ) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        names = self.numeric + self.categorical
        if not names:
            raise ValueError("WindowMonitor needs at least one numeric or categorical feature")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features listed more than once: {dupes}")
        for key, val, low in (
            ("reference_size", reference_size, 1),
            ("window_size", window_size, 1),
            ("every", every, 1),
            ("bins", bins, 1),
            ("top_k", top_k, 1),
        ):
            if not isinstance(val, int) or val < low:
                raise ValueError(f"{key} must be an integer >= {low}, got {val!r}")
        if not isinstance(max_categories, int) or max_categories < top_k:
            raise ValueError(f"max_categories must be an integer >= top_k, got {max_categories!r}")
        merged = dict(DEFAULT_THRESHOLDS)
        for stat, pair in (thresholds or {}).items():
            if stat not in DEFAULT_THRESHOLDS:
                raise ValueError(
                    f"thresholds: unknown statistic {stat!r}; "
                    f"expected one of {', '.join(DEFAULT_THRESHOLDS)}"
                )
            warn, alarm = (float(x) for x in pair)
            if not 0.0 <= warn <= alarm:
                raise ValueError(
                    f"thresholds[{stat!r}] must be (warning, alarm) with 0 <= warning <= alarm, "
                    f"got {pair!r}"
                )
            merged[stat] = (warn, alarm)
        if reference not in ("first", "pinned"):
            raise ValueError(f"reference must be 'first' or 'pinned', got {reference!r}")
        if reference == "pinned" and pinned is None:
            raise ValueError("reference='pinned' needs a reference snapshot in `pinned`")
        if reference == "first" and pinned is not None:
            raise ValueError("`pinned` is only used with reference='pinned'")

        self.reference_size = reference_size
        self.window_size = window_size
        self.every = every
        self.bins = bins
        self.top_k = top_k
        self.max_categories = max_categories
        self.thresholds = merged
        self.reference = reference
        self.pinned = copy.deepcopy(dict(pinned)) if pinned is not None else None

        # The findings of one evaluation, in order: (feature, statistic, warning, alarm), and
        # where each value sits in the (statistic, feature) matrix _evaluate builds.
        self._plan: list[tuple[str, str, float, float]] = []
        index: list[int] = []
        n_feat = len(names)
        for j, name in enumerate(names):
            for stat in NUMERIC_STATISTICS if j < len(self.numeric) else CATEGORICAL_STATISTICS:
                self._plan.append((name, stat, *merged[stat]))
                index.append(_STAT_ORDER.index(stat) * n_feat + j)
        self._plan_index = np.asarray(index, dtype=np.intp)
        self._num_get = _getter(self.numeric) if self.numeric else None
        self._cat_get = _getter(self.categorical) if self.categorical else None
        # With a pinned reference, reset() installs it: a bad snapshot fails here, at start-up.
        self.reset()

    # ------------------------------------------------------------------ public API

    @property
    def ready(self) -> bool:
        """True once the reference is complete (always, with a pinned reference)."""
        return self._snapshot is not None

    @property
    def events(self) -> int:
        """Events observed since construction or the last :meth:`reset`."""
        return self._events

    def reset(self) -> None:
        """Start over after a model (re)start.

        The event count and the current window restart from empty. With ``reference="first"``
        the next ``reference_size`` events form a new reference; a pinned reference is kept.
        """
        self._events = 0
        self._snapshot: dict[str, Any] | None = None
        # Reference collection (reference="first").
        self._ref_n = 0
        self._ref_offsets: list[int] = []
        self._ref_values: npt.NDArray[np.float64] | None = None
        self._ref_counters: list[Counter[Any]] = [Counter() for _ in self.categorical]
        # Current window; allocated by _install.
        self._ring: npt.NDArray[np.integer[Any]] | None = None
        self._ring_offsets = np.zeros(0, dtype=np.int64)
        self._pos = 0
        self._filled = 0
        self._counts = np.zeros((0, 0), dtype=np.int64)
        if self.reference == "pinned" and self.pinned is not None:
            self._install(self.pinned)

    def reference_snapshot(self) -> dict[str, Any]:
        """The reference as a JSON-serialisable dict, to save and load with ``reference="pinned"``.

        Keys: ``format``, ``events`` (reference size), ``offsets`` (first, last), ``bins``,
        ``top_k``, and per feature under ``numeric`` (``edges``, ``counts`` per bin, ``missing``)
        or ``categorical`` (``top`` categories and ``top_counts``, ``other`` count of remembered
        categories outside the top, ``remembered`` categories, ``unseen`` count of reference
        values outside the remembered set, ``singletons`` number of remembered categories seen
        once, ``missing``).

        Raises
        ------
        RuntimeError
            If the reference is not complete yet.
        """
        if self._snapshot is None:
            raise RuntimeError(
                f"reference not complete: {self._ref_n} of {self.reference_size} events seen"
            )
        return copy.deepcopy(self._snapshot)

    def observe(self, rows: Sequence[Mapping[str, Any]], offsets: Sequence[int]) -> list[Finding]:
        """Feed a batch of events; return the findings of the evaluations it triggered.

        Parameters
        ----------
        rows
            One mapping per event, feature name -> value; an absent key or None is missing.
        offsets
            The source offset of each event (same length as ``rows``).

        Returns
        -------
        list of Finding
            For every evaluation inside this batch (event count a multiple of ``every``,
            reference complete, current window full), one finding per statistic and feature, in
            the order of the features and of :data:`NUMERIC_STATISTICS` /
            :data:`CATEGORICAL_STATISTICS`. Empty when nothing was evaluated.
        """
        if not isinstance(rows, list | tuple):
            rows = list(rows)
        offs = np.asarray(offsets, dtype=np.int64).reshape(-1)
        n = len(rows)
        if offs.size != n:
            raise ValueError(f"observe: {n} rows but {offs.size} offsets")
        findings: list[Finding] = []
        start = 0
        if self._snapshot is None:
            start = min(n, self.reference_size - self._ref_n)
            if start:
                self._collect(rows[:start], offs[:start])
                self._events += start
            if self._ref_n == self.reference_size:
                self._finish_reference()
        if start == n:
            return findings
        codes = self._encode(rows[start:])
        offs = offs[start:]
        i, m = 0, codes.shape[0]
        while i < m:
            step = min(self.every - self._events % self.every, m - i)
            self._push(codes[i : i + step], offs[i : i + step])
            self._events += step
            i += step
            if self._events % self.every == 0 and self._filled == self.window_size:
                findings.extend(self._evaluate())
        return findings

    # ------------------------------------------------------------------ reading rows

    def _numeric_matrix(self, rows: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.float64]:
        """Numeric columns as floats, NaN for missing and non-numeric values."""
        assert self._num_get is not None
        get = self._num_get
        try:
            data: list[tuple[Any, ...]] = list(map(get, rows))
        except (KeyError, TypeError):
            data = [tuple(r.get(k) for k in self.numeric) for r in rows]
        try:
            # The fast path: all values are numbers.
            arr = np.fromiter(
                chain.from_iterable(data), np.float64, count=len(rows) * len(self.numeric)
            )
        except (TypeError, ValueError):
            try:
                arr = np.array(data, dtype=np.float64)  # None becomes NaN, bools 0/1
            except (TypeError, ValueError):
                arr = np.array([[_to_float(v) for v in t] for t in data], dtype=np.float64)
        return arr.reshape(len(rows), len(self.numeric))

    def _categorical_columns(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        assert self._cat_get is not None
        get = self._cat_get
        try:
            data: list[tuple[Any, ...]] = [get(r) for r in rows]
        except (KeyError, TypeError):
            data = [tuple(r.get(k) for k in self.categorical) for r in rows]
        return list(zip(*data, strict=True)) if data else [() for _ in self.categorical]

    # ------------------------------------------------------------------ reference

    def _collect(self, rows: Sequence[Mapping[str, Any]], offs: IntArray) -> None:
        n = len(rows)
        if self._ref_n == 0:
            self._ref_offsets = [int(offs[0]), int(offs[0])]
        self._ref_offsets[1] = int(offs[-1])
        if self.numeric:
            if self._ref_values is None:
                self._ref_values = np.full(
                    (self.reference_size, len(self.numeric)), np.nan, dtype=np.float64
                )
            self._ref_values[self._ref_n : self._ref_n + n] = self._numeric_matrix(rows)
        if self.categorical:
            for counter, col in zip(
                self._ref_counters, self._categorical_columns(rows), strict=True
            ):
                try:
                    counts = Counter(col)  # fails before touching `counter`
                except TypeError:
                    counts = Counter(_hashable_or_none(v) for v in col)
                counter.update(counts)
        self._ref_n += n

    def _finish_reference(self) -> None:
        snap: dict[str, Any] = {
            "format": SNAPSHOT_FORMAT,
            "events": self._ref_n,
            "offsets": list(self._ref_offsets),
            "bins": self.bins,
            "top_k": self.top_k,
            "numeric": {},
            "categorical": {},
        }
        if self.numeric:
            assert self._ref_values is not None
            for j, name in enumerate(self.numeric):
                col = self._ref_values[:, j]
                finite = np.isfinite(col)
                edges = stats.quantile_edges(col[finite], self.bins)
                idx = np.searchsorted(edges, col[finite], side="right")
                counts = np.bincount(idx, minlength=edges.size + 1)
                snap["numeric"][name] = {
                    "edges": [float(e) for e in edges],
                    "counts": [int(c) for c in counts],
                    "missing": int((~finite).sum()),
                }
        for name, counter in zip(self.categorical, self._ref_counters, strict=True):
            missing = counter.pop(None, 0)
            # most_common is stable: ties keep first-seen order, so the top-K is deterministic.
            ranked = counter.most_common()
            top = ranked[: self.top_k]
            remembered = ranked[self.top_k : self.max_categories]
            snap["categorical"][name] = {
                "top": [c for c, _ in top],
                "top_counts": [int(n) for _, n in top],
                "other": int(sum(n for _, n in remembered)),
                "remembered": [c for c, _ in remembered],
                "unseen": int(sum(n for _, n in ranked[self.max_categories :])),
                # Categories seen once outside the remembered set are already in "unseen".
                "singletons": sum(1 for _, n in ranked[: self.max_categories] if n == 1),
                "missing": int(missing),
            }
        # The raw reference is no longer needed: free it.
        self._ref_values = None
        self._ref_counters = [Counter() for _ in self.categorical]
        self._install(snap)

    def _install(self, snap: Mapping[str, Any]) -> None:
        """Build the encoders, reference counts and an empty current window from a snapshot."""
        if snap.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(
                f"pinned: not a reference snapshot (format {snap.get('format')!r}, "
                f"expected {SNAPSHOT_FORMAT!r})"
            )
        total = int(snap["events"])
        if total < 1:
            raise ValueError(f"pinned: reference of {total} events")
        num_snap = snap.get("numeric", {})
        cat_snap = snap.get("categorical", {})
        for kind, names, section in (
            ("numeric", self.numeric, num_snap),
            ("categorical", self.categorical, cat_snap),
        ):
            absent = [n for n in names if n not in section]
            if absent:
                raise ValueError(f"pinned: no {kind} reference for features {absent}")

        n_num, n_feat = len(self.numeric), len(self.numeric) + len(self.categorical)
        edges_list: list[npt.NDArray[np.float64]] = []
        n_codes: list[int] = []
        for name in self.numeric:
            d = num_snap[name]
            e = np.asarray(d["edges"], dtype=np.float64)
            if e.ndim != 1 or np.any(np.diff(e) <= 0) or not np.all(np.isfinite(e)):
                raise ValueError(f"pinned: edges of {name!r} must be finite and increasing")
            if len(d["counts"]) != e.size + 1:
                raise ValueError(f"pinned: {name!r} needs len(edges) + 1 counts")
            edges_list.append(e)
            n_codes.append(e.size + 1)
        cat_maps: list[dict[Any, int]] = []
        for name in self.categorical:
            d = cat_snap[name]
            top = list(d["top"])
            if len(top) != len(d["top_counts"]):
                raise ValueError(f"pinned: {name!r} needs one top_count per top category")
            k = len(top)
            cmap: dict[Any, int] = dict.fromkeys(d["remembered"], k)  # other
            cmap.update({c: i for i, c in enumerate(top)})
            cat_maps.append(cmap)
            n_codes.append(k + 2)  # top..., other, unseen

        width = max(n_codes) + 1  # + missing
        miss = width - 1
        for cmap in cat_maps:
            cmap[None] = miss
        ref = np.zeros((n_feat, width), dtype=np.int64)
        valid = np.zeros((n_feat, width - 1), dtype=bool)
        novel = np.zeros((n_feat, width - 1), dtype=bool)
        for j, name in enumerate(self.numeric):
            d = num_snap[name]
            ref[j, : n_codes[j]] = d["counts"]
            ref[j, miss] = int(d["missing"])
            valid[j, : n_codes[j]] = True
            novel[j, 0] = novel[j, n_codes[j] - 1] = True
        other_cols, unseen_cols = [], []
        for i, name in enumerate(self.categorical):
            j, d = n_num + i, cat_snap[name]
            k = n_codes[j] - 2
            ref[j, :k] = d["top_counts"]
            ref[j, k] = int(d["other"])
            ref[j, k + 1] = int(d["unseen"])
            ref[j, miss] = int(d["missing"])
            valid[j, : k + 1] = True
            novel[j, k + 1] = True
            other_cols.append(k)
            unseen_cols.append(k + 1)
        if ref.sum(axis=1).max() > total or (ref < 0).any():
            raise ValueError("pinned: counts exceed the reference's number of events")

        max_edges = max((e.size for e in edges_list), default=0)
        pad = np.full((n_num, max(max_edges, 1)), np.inf)
        for j, e in enumerate(edges_list):
            pad[j, : e.size] = e
        self._edges = pad  # (features, edges), +inf padded: x >= inf is never true
        self._edges_t = np.ascontiguousarray(pad.T)
        self._cat_maps = cat_maps
        self._unseen_codes = [n_codes[n_num + i] - 1 for i in range(len(self.categorical))]
        self._width = width
        self._miss = miss
        self._cat_rows = np.arange(n_num, n_feat, dtype=np.intp)
        self._other_cols = np.asarray(other_cols, dtype=np.intp)
        self._unseen_cols = np.asarray(unseen_cols, dtype=np.intp)
        self._valid = valid
        self._novel = novel
        self._ref_total = total
        self._ref_dist = self._distribution(ref)
        self._ref_missing_share = ref[:, miss] / total
        ref_present = ref[:, :miss].sum(axis=1)
        expected_novel = (ref[:, :miss] * novel).sum(axis=1).astype(np.float64)
        for i, name in enumerate(self.categorical):
            # Good-Turing: the chance that a fresh value is a category the reference never saw
            # is about (categories seen once) / (values). Without it, a long-tailed feature
            # would report its ordinary stream of rare categories as "new".
            expected_novel[n_num + i] += int(cat_snap[name].get("singletons", 0))
        self._ref_novel_share = np.divide(
            expected_novel,
            ref_present,
            out=np.zeros(n_feat),
            where=ref_present > 0,
        )
        self._ref_pair = (int(snap["offsets"][0]), int(snap["offsets"][1]))
        self._flat_base = (np.arange(n_feat, dtype=np.intp) * width)[None, :]
        dtype = np.int16 if width <= np.iinfo(np.int16).max else np.int32
        self._ring = np.zeros((self.window_size, n_feat), dtype=dtype)
        self._ring_offsets = np.zeros(self.window_size, dtype=np.int64)
        self._pos = 0
        self._filled = 0
        self._counts = np.zeros((n_feat, width), dtype=np.int64)
        self._snapshot = copy.deepcopy(dict(snap))

    # ------------------------------------------------------------------ current window

    def _encode(self, rows: Sequence[Mapping[str, Any]]) -> npt.NDArray[np.int64]:
        """One code per event and feature: bin / category slot, or the missing code."""
        m = len(rows)
        codes = np.empty((m, len(self.numeric) + len(self.categorical)), dtype=np.int64)
        n_num = len(self.numeric)
        if n_num:
            x = self._numeric_matrix(rows)
            if m < _BROADCAST_BELOW:
                c = (x[:, :, None] >= self._edges[None, :, :]).sum(axis=2)
            else:
                c = np.zeros((m, n_num), dtype=np.int64)
                for row in self._edges_t:
                    c += x >= row
            c[~np.isfinite(x)] = self._miss
            codes[:, :n_num] = c
        if self.categorical:
            cols = self._categorical_columns(rows)
            for i, (col, cmap, unseen) in enumerate(
                zip(cols, self._cat_maps, self._unseen_codes, strict=True)
            ):
                get = cmap.get
                try:
                    codes[:, n_num + i] = [get(v, unseen) for v in col]
                except TypeError:
                    codes[:, n_num + i] = [get(_hashable_or_none(v), unseen) for v in col]
        return codes

    def _bincount(self, codes: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
        n_feat = codes.shape[1]
        flat = (codes.astype(np.intp) + self._flat_base).ravel()
        counts: npt.NDArray[np.int64] = np.bincount(flat, minlength=n_feat * self._width)
        return counts.reshape(n_feat, self._width)

    def _push(self, codes: npt.NDArray[np.int64], offs: IntArray) -> None:
        """Write events into the ring buffer, evicting the oldest, and update the counts."""
        assert self._ring is not None
        size, m = self.window_size, codes.shape[0]
        if m >= size:
            # Only the last `size` events remain, at the slots sequential writes would use.
            slots = (self._pos + (m - size) + np.arange(size)) % size
            self._ring[slots] = codes[m - size :]
            self._ring_offsets[slots] = offs[m - size :]
            self._counts = self._bincount(self._ring)
            self._pos = (self._pos + m) % size
            self._filled = size
            return
        i = 0
        while i < m:
            w = min(m - i, size - self._pos)
            sl = slice(self._pos, self._pos + w)
            if self._filled == size:
                self._counts -= self._bincount(self._ring[sl])
            self._ring[sl] = codes[i : i + w]
            self._ring_offsets[sl] = offs[i : i + w]
            self._counts += self._bincount(codes[i : i + w])
            self._pos = (self._pos + w) % size
            self._filled = min(size, self._filled + w)
            i += w

    # ------------------------------------------------------------------ evaluation

    def _distribution(self, counts: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Counts over the distribution's bins: categorical 'unseen' folded into 'other'."""
        dist = counts[:, : self._miss].astype(np.float64)
        if self._cat_rows.size:
            dist[self._cat_rows, self._other_cols] += dist[self._cat_rows, self._unseen_cols]
            dist[self._cat_rows, self._unseen_cols] = 0.0
        return dist

    def _evaluate(self) -> list[Finding]:
        counts = self._counts
        cur = self._distribution(counts)
        values = {
            "psi": stats.psi_rows(self._ref_dist, cur, self._valid),
            "js": stats.js_rows(self._ref_dist, cur, self._valid),
            "ks": stats.ks_rows(self._ref_dist, cur, self._valid),
            "missing_rate": np.abs(
                counts[:, self._miss] / self.window_size - self._ref_missing_share
            ),
        }
        present = counts[:, : self._miss].sum(axis=1)
        novel = np.divide(
            (counts[:, : self._miss] * self._novel).sum(axis=1),
            present,
            out=np.zeros(present.shape),
            where=present > 0,
        )
        novel = np.clip(novel - self._ref_novel_share, 0.0, None)
        values["out_of_range_rate"] = values["new_category_rate"] = novel

        newest = (self._pos - 1) % self.window_size
        cur_pair = (int(self._ring_offsets[self._pos]), int(self._ring_offsets[newest]))
        ref_pair, events = self._ref_pair, self._events
        # One gather and one tolist: indexing numpy scalars per finding costs more than the
        # statistics themselves with 200 features.
        flat = np.stack([values[s] for s in _STAT_ORDER]).ravel()[self._plan_index].tolist()
        return [
            Finding(
                name,
                stat,
                v,
                alarm,
                2 if v >= alarm else 1 if v >= warn else 0,
                ref_pair,
                cur_pair,
                events,
            )
            for (name, stat, warn, alarm), v in zip(self._plan, flat, strict=True)
        ]
