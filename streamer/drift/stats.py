"""Distances between binned distributions, and reference binning, for the window monitor.

The functions here are pure and vectorised over rows: each row of a count matrix is the
histogram of one feature, and a boolean ``valid`` mask says which columns are real bins of that
feature (features have different numbers of bins, so rows are padded). The one-dimensional
helpers :func:`psi`, :func:`js_distance` and :func:`ks_distance` run the same code on a single
histogram, so the values tested by hand are the values the monitor reports.

Conventions
-----------
- **PSI** (population stability index) is ``sum((q - p) * ln(q / p))`` over bins, with ``p``
  the reference and ``q`` the current proportions. Empty bins would make it infinite, so counts
  are smoothed additively before normalising: ``p_i = (c_i + a) / (n + a * B)`` with
  ``a = PSI_SMOOTHING = 0.5`` (the Jeffreys / Krichevsky-Trofimov pseudo-count). Unlike a fixed
  floor such as ``1e-4`` on proportions, a pseudo-count keeps the proportions summing to one and
  scales with the window: an empty reference bin that receives 20 of 1 000 current values adds
  about 0.07, not 0.1.
- **JS** is the Jensen-Shannon *distance* (square root of the divergence) in base 2, so it lies
  in ``[0, 1]``. It is finite with empty bins, so it uses raw proportions.
- **KS** is the Kolmogorov-Smirnov statistic on the binned CDFs, ``max |P(<= k) - Q(<= k)|``
  over bin boundaries. Binning can only lower it: it is a lower bound of the exact two-sample
  statistic on the raw values.

A side with no values at all (an empty histogram) has no distribution; every distance is then
0.0, and the monitor reports the missing-value rate instead.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "PSI_SMOOTHING",
    "js_distance",
    "js_rows",
    "ks_distance",
    "ks_rows",
    "psi",
    "psi_rows",
    "quantile_edges",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Pseudo-count added to every valid bin before PSI normalises counts to proportions.
PSI_SMOOTHING = 0.5


def _as_rows(counts: npt.ArrayLike) -> FloatArray:
    a = np.asarray(counts, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D count matrix, got shape {a.shape}")
    return a


def _proportions(counts: FloatArray, valid: BoolArray) -> tuple[FloatArray, FloatArray]:
    """Row-normalised proportions over valid bins, and the row totals."""
    c = np.where(valid, counts, 0.0)
    total = c.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(total[:, None] > 0, c / total[:, None], 0.0)
    return p, total


def psi_rows(
    ref: npt.ArrayLike,
    cur: npt.ArrayLike,
    valid: npt.ArrayLike,
    smoothing: float = PSI_SMOOTHING,
) -> FloatArray:
    """Population stability index of each row of ``cur`` against the same row of ``ref``.

    Parameters
    ----------
    ref, cur
        Count matrices of the same shape ``(features, bins)``.
    valid
        Boolean mask of the same shape: which columns are bins of that row's feature.
    smoothing
        Pseudo-count added to each valid bin of both sides (see the module notes). With 0, a
        bin empty on exactly one side makes the PSI infinite.

    Returns
    -------
    numpy.ndarray
        One PSI per row; 0.0 where either side has no counts.
    """
    r, c = _as_rows(ref), _as_rows(cur)
    v = np.asarray(valid, dtype=bool)
    nb = v.sum(axis=1, keepdims=True).astype(np.float64)
    rc = np.where(v, r, 0.0)
    cc = np.where(v, c, 0.0)
    rt = rc.sum(axis=1, keepdims=True)
    ct = cc.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = (rc + smoothing) / (rt + smoothing * nb)
        q = (cc + smoothing) / (ct + smoothing * nb)
        terms = np.where(v & ((p > 0) | (q > 0)), (q - p) * np.log(q / p), 0.0)
    out: FloatArray = terms.sum(axis=1)
    empty = (rt[:, 0] <= 0) | (ct[:, 0] <= 0)
    out[empty] = 0.0
    return out


def js_rows(ref: npt.ArrayLike, cur: npt.ArrayLike, valid: npt.ArrayLike) -> FloatArray:
    """Jensen-Shannon distance (base 2, in ``[0, 1]``) of each row pair.

    Parameters
    ----------
    ref, cur
        Count matrices of the same shape ``(features, bins)``.
    valid
        Boolean mask: which columns are bins of that row's feature.

    Returns
    -------
    numpy.ndarray
        One distance per row; 0.0 where either side has no counts.
    """
    v = np.asarray(valid, dtype=bool)
    p, pt = _proportions(_as_rows(ref), v)
    q, qt = _proportions(_as_rows(cur), v)
    m = 0.5 * (p + q)
    with np.errstate(invalid="ignore", divide="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1)
        kq = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=1)
    # Rounding can leave a tiny negative divergence for identical rows; clip before the root.
    out: FloatArray = np.sqrt(np.clip(0.5 * (kp + kq), 0.0, 1.0))
    out[(pt <= 0) | (qt <= 0)] = 0.0
    return out


def ks_rows(ref: npt.ArrayLike, cur: npt.ArrayLike, valid: npt.ArrayLike) -> FloatArray:
    """Kolmogorov-Smirnov statistic on the binned CDFs of each row pair.

    Columns must be in the order of the bins (low to high); invalid columns count as empty.

    Returns
    -------
    numpy.ndarray
        One statistic in ``[0, 1]`` per row; 0.0 where either side has no counts.
    """
    v = np.asarray(valid, dtype=bool)
    p, pt = _proportions(_as_rows(ref), v)
    q, qt = _proportions(_as_rows(cur), v)
    out: FloatArray = np.abs(np.cumsum(p, axis=1) - np.cumsum(q, axis=1)).max(axis=1)
    out[(pt <= 0) | (qt <= 0)] = 0.0
    return out


def _one(fn_rows: object, ref: npt.ArrayLike, cur: npt.ArrayLike, **kw: float) -> float:
    r = np.asarray(ref, dtype=np.float64)[None, :]
    c = np.asarray(cur, dtype=np.float64)[None, :]
    if r.shape != c.shape:
        raise ValueError(f"histograms differ in length: {r.shape[1]} and {c.shape[1]}")
    valid = np.ones(r.shape, dtype=bool)
    return float(fn_rows(r, c, valid, **kw)[0])  # type: ignore[operator]


def psi(ref: npt.ArrayLike, cur: npt.ArrayLike, smoothing: float = PSI_SMOOTHING) -> float:
    """PSI of one current histogram against one reference histogram (counts).

    Examples
    --------
    >>> round(psi([50, 50], [25, 75], smoothing=0.0), 4)
    0.2747
    >>> psi([10, 0], [10, 0]) == 0.0
    True
    """
    return _one(psi_rows, ref, cur, smoothing=smoothing)


def js_distance(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float:
    """Jensen-Shannon distance, base 2, of two histograms (counts).

    Examples
    --------
    >>> js_distance([1, 0], [0, 1])
    1.0
    >>> js_distance([3, 1], [3, 1])
    0.0
    """
    return _one(js_rows, ref, cur)


def ks_distance(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float:
    """Kolmogorov-Smirnov statistic between the CDFs of two ordered histograms (counts).

    Examples
    --------
    >>> ks_distance([1, 1, 2], [2, 1, 1])
    0.25
    """
    return _one(ks_rows, ref, cur)


def quantile_edges(values: npt.ArrayLike, bins: int) -> FloatArray:
    """Bin edges for a numeric feature from its reference values.

    A value ``x`` falls in bin ``k = number of edges <= x`` (``np.searchsorted(edges, x,
    side="right")``), so ``len(edges) + 1`` bins result: bin 0 holds values below the reference
    minimum and the last bin values above the reference maximum (the *out-of-range* bins); the
    bins between hold the reference range, cut at the reference quantiles ``1/bins, 2/bins, ...``
    (method ``higher``: edges are observed values, which keeps integers on integer edges, and
    ``n`` distinct values split into bins of exactly ``n / bins`` when it divides).

    Ties are handled so that no information is merged away:

    - a value holding at least ``1/bins`` of the reference (a point mass, e.g. the zeros of a
      sparse feature) gets a bin of its own, ``[x, nextafter(x))``;
    - a feature with at most ``bins`` distinct values gets one bin per value (and empty bins
      between them, which catch values never seen in the reference);
    - a constant feature gets a single inner bin, so any change is out of range.

    Non-finite values are ignored. With no finite values the result is empty (one bin, which
    counts as out of range).

    Parameters
    ----------
    values
        The reference values of one feature.
    bins
        Number of quantile bins wanted over the reference range.

    Examples
    --------
    >>> quantile_edges([1.0, 2.0, 3.0, 4.0], bins=2).tolist()
    [1.0, 3.0, 4.000000000000001]
    >>> len(quantile_edges([0, 0, 0, 1], bins=10))  # two point masses: [0], (0, 1), [1]
    4
    """
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    v = np.asarray(values, dtype=np.float64).ravel()
    v = np.sort(v[np.isfinite(v)])
    if v.size == 0:
        return np.empty(0, dtype=np.float64)
    lo, hi = v[0], v[-1]
    probs = np.arange(1, bins) / bins
    q = np.quantile(v, probs, method="higher") if bins > 1 else np.empty(0)
    candidates = np.unique(np.concatenate(([lo], q)))
    distinct = np.unique(v)
    if distinct.size <= bins:
        heavy = distinct
    else:
        mass = np.searchsorted(v, candidates, "right") - np.searchsorted(v, candidates, "left")
        heavy = candidates[mass * bins >= v.size]
    few = distinct if distinct.size <= bins else np.empty(0)
    edges = np.concatenate((candidates, few, np.nextafter(heavy, np.inf)))
    edges = np.unique(np.concatenate((edges, [np.nextafter(hi, np.inf)])))
    return edges.astype(np.float64)
