"""Tests of the window statistics and :class:`streamer.drift.window.WindowMonitor`."""

from __future__ import annotations

import itertools
import json
import math
import pickle
import random
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from streamer.drift import stats
from streamer.drift.window import (
    CATEGORICAL_STATISTICS,
    DEFAULT_THRESHOLDS,
    NUMERIC_STATISTICS,
    Finding,
    WindowMonitor,
)

Row = dict[str, Any]
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def feed(
    mon: WindowMonitor, rows: Sequence[Row], batch: int = 250, start: int = 0
) -> list[Finding]:
    out: list[Finding] = []
    for i in range(0, len(rows), batch):
        chunk = rows[i : i + batch]
        out.extend(mon.observe(chunk, range(start + i, start + i + len(chunk))))
    return out


def gauss_rows(rng: random.Random, n: int, mu: float = 0.0, sd: float = 1.0) -> list[Row]:
    return [{"x": rng.gauss(mu, sd), "c": rng.choices("abcd", (4, 3, 2, 1))[0]} for _ in range(n)]


def alarms(findings: Sequence[Finding], feature: str | None = None) -> list[Finding]:
    return [f for f in findings if f.level == 2 and (feature is None or f.feature == feature)]


# --------------------------------------------------------------------------- statistics by hand


class TestStatistics:
    def test_psi_by_hand(self) -> None:
        # p = (.5, .5), q = (.25, .75): -.25 ln(.5) + .25 ln(1.5)
        expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
        assert stats.psi([50, 50], [25, 75], smoothing=0.0) == pytest.approx(expected)
        assert stats.psi([50, 50], [25, 75], smoothing=0.0) == pytest.approx(0.274653, abs=1e-6)

    def test_psi_smoothing_by_hand(self) -> None:
        # Counts (1, 0) and (0, 1) with pseudo-count 0.5: p = (.75, .25), q = (.25, .75)
        assert stats.psi([1, 0], [0, 1]) == pytest.approx(math.log(3))
        assert stats.psi([1, 0], [0, 1], smoothing=0.0) == math.inf

    def test_psi_is_symmetric_and_zero_on_equal_shapes(self) -> None:
        assert stats.psi([10, 30, 60], [20, 20, 60]) == pytest.approx(
            stats.psi([20, 20, 60], [10, 30, 60])
        )
        assert stats.psi([1, 2, 3], [2, 4, 6], smoothing=0.0) == pytest.approx(0.0, abs=1e-15)

    def test_js_by_hand(self) -> None:
        # p = (.5, .5), q = (1, 0), m = (.75, .25)
        kl_p = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
        kl_q = math.log2(1 / 0.75)
        assert stats.js_distance([1, 1], [1, 0]) == pytest.approx(math.sqrt((kl_p + kl_q) / 2))
        assert stats.js_distance([1, 0], [0, 1]) == 1.0
        assert stats.js_distance([5, 5, 0], [5, 5, 0]) == 0.0

    def test_ks_by_hand(self) -> None:
        # CDFs (.25, .5, 1) and (.5, .75, 1)
        assert stats.ks_distance([1, 1, 2], [2, 1, 1]) == pytest.approx(0.25)
        assert stats.ks_distance([1, 0, 0], [0, 0, 1]) == 1.0

    def test_empty_side_is_zero(self) -> None:
        for fn in (stats.psi, stats.js_distance, stats.ks_distance):
            assert fn([0, 0, 0], [1, 2, 3]) == 0.0
            assert fn([1, 2, 3], [0, 0, 0]) == 0.0

    def test_length_mismatch(self) -> None:
        with pytest.raises(ValueError, match="differ in length"):
            stats.psi([1, 2], [1, 2, 3])

    @FAST
    @given(
        st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=12),
        st.integers(0, 5),
    )
    def test_rows_match_single_and_bounds(self, pairs: list[tuple[int, int]], pad: int) -> None:
        ref = [a for a, _ in pairs]
        cur = [b for _, b in pairs]
        # Padding columns, masked out, must not change anything.
        r2 = np.array([ref + [7] * pad])
        c2 = np.array([cur + [3] * pad])
        valid = np.array([[True] * len(ref) + [False] * pad])
        p, j, k = stats.psi(ref, cur), stats.js_distance(ref, cur), stats.ks_distance(ref, cur)
        assert stats.psi_rows(r2, c2, valid)[0] == pytest.approx(p, rel=1e-12, abs=1e-15)
        assert stats.js_rows(r2, c2, valid)[0] == pytest.approx(j, rel=1e-12, abs=1e-15)
        assert stats.ks_rows(r2, c2, valid)[0] == pytest.approx(k, rel=1e-12, abs=1e-15)
        assert p >= 0.0 and 0.0 <= j <= 1.0 and 0.0 <= k <= 1.0
        assert j == pytest.approx(stats.js_distance(cur, ref))
        if sum(ref) and sum(cur):
            assert j == pytest.approx(jensenshannon(ref, cur, base=2), abs=1e-7)


class TestQuantileEdges:
    def test_continuous_gives_equal_mass_bins(self) -> None:
        v = np.random.default_rng(0).normal(size=2000)
        edges = stats.quantile_edges(v, bins=10)
        assert edges.size == 11  # min, 9 quantiles, just above max
        counts = np.bincount(np.searchsorted(edges, v, side="right"), minlength=12)
        assert counts[0] == counts[-1] == 0  # nothing out of range in the reference
        assert counts[1:-1].tolist() == [200] * 10

    def test_constant_feature(self) -> None:
        edges = stats.quantile_edges([3.0] * 50, bins=10)
        assert edges.tolist() == [3.0, np.nextafter(3.0, np.inf)]

    def test_few_integers_get_a_bin_each(self) -> None:
        edges = stats.quantile_edges([0, 1, 1, 2, 2, 2, 5], bins=10)
        idx = np.searchsorted(edges, [0, 1, 2, 5, 3], side="right")
        assert len(set(idx[:4].tolist())) == 4  # every value its own bin
        assert idx[4] not in idx[:4]  # 3 was never seen: a bin of its own (empty in reference)

    def test_point_mass_is_split_from_the_tail(self) -> None:
        v = np.concatenate([np.zeros(950), np.random.default_rng(1).uniform(1, 2, 50)])
        edges = stats.quantile_edges(v, bins=10)
        assert np.searchsorted(edges, 0.0, "right") != np.searchsorted(edges, 1.5, "right")

    def test_empty_and_non_finite(self) -> None:
        assert stats.quantile_edges([], bins=5).size == 0
        assert stats.quantile_edges([math.nan, math.inf], bins=5).size == 0
        with pytest.raises(ValueError, match="bins"):
            stats.quantile_edges([1.0], bins=0)


# --------------------------------------------------------------------------- the monitor


class TestMonitorBasics:
    def test_known_values_on_a_tiny_stream(self) -> None:
        mon = WindowMonitor(["x"], reference_size=4, window_size=4, every=4, bins=2)
        ref = [{"x": v} for v in (1.0, 2.0, 3.0, 4.0)]
        cur = [{"x": v} for v in (1.0, 1.0, 2.0, 9.0)]
        assert mon.observe(ref, range(4)) == []
        got = {f.statistic: f for f in mon.observe(cur, range(4, 8))}
        # edges [1, 3, 4+]: bins <1, [1, 3), [3, 4], >4
        assert mon.reference_snapshot()["numeric"]["x"]["counts"] == [0, 2, 2, 0]
        assert got["psi"].value == pytest.approx(stats.psi([0, 2, 2, 0], [0, 3, 0, 1]))
        assert got["js"].value == pytest.approx(stats.js_distance([0, 2, 2, 0], [0, 3, 0, 1]))
        assert got["ks"].value == pytest.approx(0.25)  # CDFs (0, .5, 1, 1) and (0, .75, .75, 1)
        assert got["out_of_range_rate"].value == pytest.approx(0.25)
        assert got["missing_rate"].value == 0.0
        f = got["psi"]
        assert (f.events, f.reference_offsets, f.current_offsets) == (8, (0, 3), (4, 7))
        assert f.threshold == DEFAULT_THRESHOLDS["psi"][1]

    def test_findings_cover_every_statistic_in_order(self) -> None:
        rng = random.Random(3)
        mon = WindowMonitor(["x"], ["c"], reference_size=100, window_size=50, every=25)
        found = feed(mon, gauss_rows(rng, 150))
        assert [f.events for f in found] == [150] * 9
        assert [(f.feature, f.statistic) for f in found] == [
            ("x", s) for s in NUMERIC_STATISTICS
        ] + [("c", s) for s in CATEGORICAL_STATISTICS]

    def test_levels_follow_thresholds(self) -> None:
        mon = WindowMonitor(
            ["x"],
            reference_size=4,
            window_size=4,
            every=4,
            bins=2,
            thresholds={"out_of_range_rate": (0.2, 0.3)},
        )
        mon.observe([{"x": v} for v in (1.0, 2.0, 3.0, 4.0)], range(4))
        got = {f.statistic: f for f in mon.observe([{"x": 2.0}] * 3 + [{"x": 9.0}], range(4, 8))}
        assert got["out_of_range_rate"].value == 0.25
        assert got["out_of_range_rate"].level == 1
        assert got["out_of_range_rate"].threshold == 0.3

    def test_missing_values(self) -> None:
        mon = WindowMonitor(["x"], ["c"], reference_size=4, window_size=4, every=4)
        mon.observe([{"x": 1.0, "c": "a"}, {"x": 2, "c": "b"}] * 2, range(4))
        cur: list[Row] = [{}, {"x": None, "c": None}, {"x": math.nan, "c": "a"}, {"x": "oops"}]
        got = {(f.feature, f.statistic): f.value for f in mon.observe(cur, range(4, 8))}
        assert got["x", "missing_rate"] == 1.0
        assert got["c", "missing_rate"] == 0.75
        # Nothing to compare: the distances fall back to 0 and missing_rate carries the signal.
        assert got["x", "psi"] == got["x", "js"] == got["x", "ks"] == 0.0
        snap = mon.reference_snapshot()
        assert snap["numeric"]["x"]["missing"] == 0
        assert snap["categorical"]["c"]["top"] == ["a", "b"]

    def test_new_category_and_other(self) -> None:
        mon = WindowMonitor(
            [], ["c"], reference_size=10, window_size=10, every=10, top_k=1, max_categories=2
        )
        mon.observe([{"c": v} for v in "aaaaaabbbc"], range(10))
        snap = mon.reference_snapshot()["categorical"]["c"]
        assert (snap["top"], snap["other"], snap["remembered"], snap["unseen"]) == (
            ["a"],
            3,
            ["b"],
            1,
        )
        got = {
            f.statistic: f.value
            for f in mon.observe([{"c": v} for v in "aaaaaazzzz"], range(10, 20))
        }
        # expected outside {a, b}: c (1 of 10 in the reference); current: z (4 of 10)
        assert got["new_category_rate"] == pytest.approx(0.3)
        # top-K + other: reference (6, 4), current (6, 4): no change in the distribution
        assert got["psi"] == pytest.approx(0.0)

    def test_good_turing_keeps_long_tails_quiet(self) -> None:
        rng = random.Random(0)
        # Zipf-like over 5000 categories: many singletons, and later many unseen ones.
        weights = [1 / (i + 1) for i in range(5000)]
        cats = [f"k{i}" for i in range(5000)]
        rows = [{"c": v} for v in rng.choices(cats, weights, k=6000)]
        mon = WindowMonitor([], ["c"], reference_size=2000, window_size=2000, every=1000)
        found = feed(mon, rows)
        new = [f.value for f in found if f.statistic == "new_category_rate"]
        assert new and max(new) < DEFAULT_THRESHOLDS["new_category_rate"][1]
        # Without the Good-Turing term the same stream reads as ~10% new categories.
        snap = mon.reference_snapshot()["categorical"]["c"]
        assert snap["singletons"] / 2000 > 0.05

    def test_bool_and_int_categories_survive_json(self) -> None:
        mon = WindowMonitor([], ["prediction"], reference_size=6, window_size=3, every=3)
        mon.observe([{"prediction": v} for v in (True, False, True, 1 == 1, 2 > 3, True)], range(6))
        snap = json.loads(json.dumps(mon.reference_snapshot()))
        assert snap["categorical"]["prediction"]["top"] == [True, False]

    def test_not_ready(self) -> None:
        mon = WindowMonitor(["x"], reference_size=10, window_size=5, every=5)
        mon.observe([{"x": 1.0}] * 9, range(9))
        assert not mon.ready
        with pytest.raises(RuntimeError, match="9 of 10"):
            mon.reference_snapshot()
        mon.observe([{"x": 1.0}], [9])
        assert mon.ready and mon.events == 10

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({}, "at least one"),
            ({"numeric": ["a"], "categorical": ["a"]}, "more than once"),
            ({"numeric": ["a"], "window_size": 0}, "window_size"),
            ({"numeric": ["a"], "thresholds": {"psi2": (0.1, 0.2)}}, "unknown statistic 'psi2'"),
            ({"numeric": ["a"], "thresholds": {"psi": (0.3, 0.2)}}, r"thresholds\['psi'\]"),
            ({"numeric": ["a"], "reference": "pinned"}, "needs a reference snapshot"),
            ({"numeric": ["a"], "reference": "last"}, "reference must be"),
            ({"numeric": ["a"], "top_k": 5, "max_categories": 4}, "max_categories"),
        ],
    )
    def test_bad_configuration(self, kwargs: dict[str, Any], match: str) -> None:
        with pytest.raises(ValueError, match=match):
            WindowMonitor(**kwargs)

    def test_offsets_must_match_rows(self) -> None:
        mon = WindowMonitor(["x"])
        with pytest.raises(ValueError, match="2 rows but 1 offsets"):
            mon.observe([{"x": 1.0}, {"x": 2.0}], [0])


class TestReferencePolicy:
    def test_pinned_round_trip_through_json(self) -> None:
        rng = random.Random(11)
        rows = gauss_rows(rng, 1000) + gauss_rows(rng, 1000, mu=0.7)
        first = WindowMonitor(["x"], ["c"], reference_size=500, window_size=300, every=100)
        found_first = feed(first, rows)
        snap = json.loads(json.dumps(first.reference_snapshot()))
        pinned = WindowMonitor(
            ["x"], ["c"], window_size=300, every=100, reference="pinned", pinned=snap
        )
        assert pinned.ready
        found_pinned = feed(pinned, rows[500:], start=500)

        def key(fs: list[Finding]) -> list[tuple[Any, ...]]:
            return [
                (f.feature, f.statistic, f.value, f.level, f.reference_offsets, f.current_offsets)
                for f in fs
            ]

        assert key(found_pinned) == key(found_first)
        assert alarms(found_first, "x")  # the stream does drift
        # reset() keeps a pinned reference; the event count starts again.
        pinned.reset()
        assert pinned.ready and pinned.events == 0
        assert key(feed(pinned, rows[500:], start=500)) == key(found_first)

    def test_pinned_snapshot_must_cover_features(self) -> None:
        mon = WindowMonitor(["x"], reference_size=3, window_size=3, every=3)
        mon.observe([{"x": 1.0}, {"x": 2.0}, {"x": 3.0}], range(3))
        snap = mon.reference_snapshot()
        with pytest.raises(ValueError, match=r"no numeric reference for features \['y'\]"):
            WindowMonitor(["x", "y"], reference="pinned", pinned=snap)
        with pytest.raises(ValueError, match="not a reference snapshot"):
            WindowMonitor(["x"], reference="pinned", pinned={"numeric": {}})

    def test_reset_collects_a_new_reference(self) -> None:
        rng = random.Random(5)
        before, after = gauss_rows(rng, 600), gauss_rows(rng, 1200, mu=3.0)
        mon = WindowMonitor(["x"], ["c"], reference_size=300, window_size=200, every=100)
        assert alarms(feed(mon, before + after[:400]), "x")  # drift against the old reference
        mon.reset()
        assert not mon.ready and mon.events == 0
        fresh = WindowMonitor(["x"], ["c"], reference_size=300, window_size=200, every=100)
        after_reset = feed(mon, after[400:], start=1000)
        assert after_reset == feed(fresh, after[400:], start=1000)
        # The new reference is the new normal (JS/KS are noisy on windows this small).
        assert not [f for f in alarms(after_reset) if f.statistic not in ("js", "ks")]

    def test_pickle_mid_stream(self) -> None:
        rng = random.Random(8)
        rows = gauss_rows(rng, 900)
        mon = WindowMonitor(["x"], ["c"], reference_size=200, window_size=150, every=50)
        feed(mon, rows[:333])
        clone = pickle.loads(pickle.dumps(mon))
        assert feed(clone, rows[333:], start=333) == feed(mon, rows[333:], start=333)


# --------------------------------------------------------------------------- regression


def test_seeded_regression_detection_events() -> None:
    """A 0.5 sd mean shift at event 3001 and a 10% new category at event 5001, seed 2026."""
    rng = random.Random(2026)
    rows = [
        {"x": rng.gauss(0, 1), "y": rng.gauss(0, 1), "c": rng.choice("abc")} for _ in range(7000)
    ]
    for i in range(3000, 7000):
        rows[i]["x"] += 0.5
    for i in range(5000, 7000):
        if rng.random() < 0.1:
            rows[i]["c"] = "new"
    mon = WindowMonitor(["x", "y"], ["c"])  # defaults
    found = feed(mon, rows, batch=500)
    first = {}
    for f in alarms(found):
        first.setdefault((f.feature, f.statistic), f.events)
    # A binned PSI of a 0.5 sd shift is about 0.23: PSI alarms late, JS and KS first.
    assert first == {
        ("x", "js"): 3750,
        ("x", "ks"): 4000,
        ("c", "new_category_rate"): 5250,
        ("x", "psi"): 5500,
        ("c", "psi"): 5500,
        ("c", "js"): 5500,
    }
    assert not alarms(found, "y")
    x_psi = [round(f.value, 4) for f in found if (f.feature, f.statistic) == ("x", "psi")]
    assert x_psi[:6] == [0.0103, 0.0343, 0.0778, 0.1364, 0.2424, 0.2225]


# --------------------------------------------------------------------------- invariants


def _draw_value(kind: str, rng: random.Random, p: float) -> Any:
    if rng.random() < p:
        return None
    if kind == "normal":
        return rng.gauss(3.0, 2.0)
    if kind == "uniform":
        return rng.uniform(-1.0, 1.0)
    if kind == "expo":
        return rng.expovariate(1.0)
    if kind == "ints":
        return rng.randint(0, 6)
    return rng.choices("abcdefgh", (30, 20, 15, 10, 10, 8, 5, 2))[0]


KINDS = ("normal", "uniform", "expo", "ints")


@settings(FAST, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    splits=st.lists(st.integers(1, 200), min_size=1, max_size=25),
    sizes=st.tuples(st.integers(1, 60), st.integers(1, 50), st.integers(1, 70)),
)
def test_batch_boundaries_do_not_matter(
    seed: int, splits: list[int], sizes: tuple[int, int, int]
) -> None:
    """Same findings whatever the batch boundaries, incl. batches longer than the window."""
    rng = random.Random(seed)
    n = 300
    rows: list[Row] = []
    for t in range(n):
        shift = 2.0 if t > n // 2 else 0.0
        row = {k: _draw_value(k, rng, 0.1) for k in KINDS}
        if row["normal"] is not None:
            row["normal"] += shift
        row["cat"] = "new" if t > n // 2 and rng.random() < 0.3 else _draw_value("cat", rng, 0.1)
        if rng.random() < 0.05:
            del row["uniform"]
        if rng.random() < 0.03:  # bad input reads the same whatever else is in the batch
            row["expo"] = rng.choice(["2.5", "oops", [1], True])
        if rng.random() < 0.03:
            row["cat"] = ["unhashable"]
        rows.append(row)
    ref, win, every = sizes

    def run(cuts: Sequence[int]) -> list[Finding]:
        mon = WindowMonitor(
            KINDS,
            ["cat"],
            reference_size=ref,
            window_size=win,
            every=every,
            bins=4,
            top_k=3,
            max_categories=5,
        )
        out: list[Finding] = []
        edges = [0, *sorted({c for c in cuts if c < n}), n]
        for a, b in itertools.pairwise(edges):
            out.extend(mon.observe(rows[a:b], range(a, b)))
        return out

    whole = run([])
    assert len(whole) == 24 * len({f.events for f in whole})
    cuts = list(np.cumsum(splits))
    assert run(cuts) == whole
    assert run(list(range(1, n))) == whole  # one event per batch


@settings(FAST, max_examples=40)
@given(seed=st.integers(0, 2**32 - 1), sizes=st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_evaluation_depends_only_on_reference_and_last_window(
    seed: int, sizes: tuple[int, int]
) -> None:
    """The ring buffer's counts equal a recount of the last window_size events."""
    rng = random.Random(seed)
    win, every = sizes
    rows = [
        {"x": rng.gauss(0, 1) if rng.random() > 0.1 else None, "c": rng.choice("abcz")}
        for _ in range(300)
    ]
    mon = WindowMonitor(["x"], ["c"], reference_size=50, window_size=win, every=every, top_k=2)
    found = feed(mon, rows, batch=37)
    snap = mon.reference_snapshot()
    for t in sorted({f.events for f in found})[-8:]:
        fresh = WindowMonitor(
            ["x"], ["c"], window_size=win, every=win, reference="pinned", pinned=snap
        )
        redo = fresh.observe(rows[t - win : t], range(t - win, t))
        assert [(f.statistic, f.value, f.current_offsets) for f in redo] == [
            (f.statistic, f.value, f.current_offsets) for f in found if f.events == t
        ]


@settings(deadline=None, max_examples=25)
@given(
    seed=st.integers(0, 2**32 - 1),
    missing=st.sampled_from([0.0, 0.02, 0.3]),
)
@example(seed=3942, missing=0.3)  # the noisiest case found: 7 warnings in 504 findings
def test_stationary_stream_does_not_alarm(seed: int, missing: float) -> None:
    """With default thresholds and windows, a stationary stream gives no alarm in 8000 events."""
    rng = random.Random(seed)
    rows = [
        {
            **{k: _draw_value(k, rng, missing) for k in KINDS},
            "cat": _draw_value("cat", rng, missing),
        }
        for _ in range(8000)
    ]
    mon = WindowMonitor(KINDS, ["cat"])
    found = feed(mon, rows, batch=1000)
    assert len(found) == 24 * ((8000 - 3000) // 250 + 1)
    assert alarms(found) == []
    # Warnings are rare too: under 1% of the findings, 2% when 30% of the values are missing
    # (the windows then hold 30% fewer values, so the statistics are noisier).
    assert sum(f.level == 1 for f in found) <= (0.02 if missing > 0.1 else 0.01) * len(found)


SHIFTS: dict[str, Callable[[random.Random, float], Row]] = {
    "mean_up": lambda rng, m: {"x": rng.gauss(m, 1.0)},
    "mean_down": lambda rng, m: {"x": rng.gauss(-m, 1.0)},
    "wider": lambda rng, m: {"x": rng.gauss(0.0, 2.0 * m)},
    "narrower": lambda rng, m: {"x": rng.gauss(0.0, 0.5 / m)},
    "new_category": lambda rng, m: {"c": "z" if rng.random() < 0.05 * m else rng.choice("ab")},
    "missing": lambda rng, m: {"x": None if rng.random() < 0.15 * m else rng.gauss(0, 1)},
}
EXPECTED = {
    "mean_up": ("x", "psi"),
    "mean_down": ("x", "psi"),
    "wider": ("x", "psi"),
    "narrower": ("x", "psi"),
    "new_category": ("c", "new_category_rate"),
    "missing": ("x", "missing_rate"),
}


@settings(deadline=None, max_examples=40)
@given(
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(sorted(SHIFTS)),
    magnitude=st.floats(2.0, 4.0),
    position=st.integers(1, 1500),
    window=st.sampled_from([300, 500, 1000]),
    every=st.sampled_from([100, 250, 500]),
)
def test_shift_beyond_threshold_alarms_within_one_window(
    seed: int, kind: str, magnitude: float, position: int, window: int, every: int
) -> None:
    """A shift far beyond the alarm threshold alarms at the first full post-shift window.

    Shifts: mean +-2..4 sd, sd x4..8 or /4..8 (population PSI >= 1), a new category at 10-20%
    (threshold 1%), missing values at 30-60% (threshold 10%).
    """
    rng = random.Random(seed)
    ref_size = 1000
    shift_at = ref_size + position  # 0-based index of the first shifted event
    rows: list[Row] = []
    for t in range(shift_at + window + every):
        row = {"x": rng.gauss(0.0, 1.0), "c": rng.choice("ab")}
        if t >= shift_at:
            row.update(SHIFTS[kind](rng, magnitude))
        rows.append(row)
    mon = WindowMonitor(["x"], ["c"], reference_size=ref_size, window_size=window, every=every)
    found = feed(mon, rows, batch=333)
    # The first evaluation whose window holds only shifted events.
    post = [f for f in found if f.current_offsets[0] >= shift_at]
    assert post, "no evaluation after one window"
    first_events = post[0].events
    assert first_events - shift_at <= window + every
    feature, statistic = EXPECTED[kind]
    hit = [f for f in post if f.events == first_events and f.feature == feature]
    assert {f.statistic: f.level for f in hit}[statistic] == 2


def test_categorical_memory_is_bounded() -> None:
    """A categorical column of all-distinct values keeps at most max_categories of them."""
    mon = WindowMonitor(
        [], ["id"], reference_size=500, window_size=500, every=500, top_k=5, max_categories=50
    )
    feed(mon, [{"id": f"ref-{i}"} for i in range(500)], batch=500)
    snap = mon.reference_snapshot()["categorical"]["id"]
    assert len(snap["top"]) + len(snap["remembered"]) == 50
    assert len(mon._cat_maps[0]) <= 51  # + the None -> missing entry

    def chunk(i: int) -> list[Row]:
        return [{"id": f"user-{i}-{j}-" + "x" * 40} for j in range(500)]

    tracemalloc.start()
    try:
        for i in range(4):
            feed(mon, chunk(i), batch=500, start=500 * (i + 1))
        base = tracemalloc.get_traced_memory()[0]
        found = []
        for i in range(4, 40):
            found = feed(mon, chunk(i), batch=500, start=500 * (i + 1))
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 64_000, f"memory grew by {grown} bytes over 18 000 distinct values"
    # All values outside the reference, and Good-Turing expected exactly that: no alarm.
    assert {f.statistic: f.value for f in found}["new_category_rate"] == pytest.approx(0.0)
