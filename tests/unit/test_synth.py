from __future__ import annotations

import itertools

import pytest

from streamer.synth import CONCEPT_STREAMS, CovariateShift, DriftingStream, concept_drift


def test_abrupt_drift_switches_exactly_at_position():
    old = itertools.repeat(({"x": 0}, "old"))
    new = itertools.repeat(({"x": 1}, "new"))
    ys = [y for _, y in itertools.islice(DriftingStream(old, new, position=100, seed=1), 200)]
    assert ys.index("new") == 99 and set(ys[99:]) == {"new"}


def test_gradual_drift_is_a_sigmoid_mix():
    old = itertools.repeat(({"x": 0}, 0))
    new = itertools.repeat(({"x": 1}, 1))
    ys = [
        y
        for _, y in itertools.islice(
            DriftingStream(old, new, position=1000, width=400, seed=3), 2000
        )
    ]
    assert sum(ys[:600]) < 30 and sum(ys[1400:]) > 570
    assert 120 < sum(ys[800:1200]) < 280


def test_huge_offsets_do_not_overflow():
    old = itertools.repeat(({"x": 0}, 0))
    new = itertools.repeat(({"x": 1}, 1))
    s = DriftingStream(old, new, position=10**9, width=2, seed=0)
    assert sum(y for _, y in itertools.islice(s, 100)) == 0


@pytest.mark.parametrize("name", sorted(CONCEPT_STREAMS))
def test_named_streams_are_seeded_and_string_keyed(name):
    a = list(concept_drift(name, seed=4, position=50, n=100))
    b = list(concept_drift(name, seed=4, position=50, n=100))
    assert a == b and len(a) == 100
    assert all(isinstance(k, str) for k in a[0][0])
    assert list(concept_drift(name, seed=5, position=50, n=100)) != a


def test_unknown_stream_names_the_choices():
    with pytest.raises(ValueError, match="expected one of agrawal, hyperplane, sea, stagger"):
        concept_drift("nope", seed=1, position=1)


def test_covariate_shift_moves_only_the_listed_features():
    s = CovariateShift(
        n_features=4,
        shifted=["f2"],
        position=501,
        kind="variance",
        magnitude=3.0,
        new_category=True,
        seed=2,
    )
    rows = [x for x, _ in itertools.islice(s, 1000)]

    def sd(name, part):
        xs = [r[name] for r in part]
        m = sum(xs) / len(xs)
        return (sum((v - m) ** 2 for v in xs) / len(xs)) ** 0.5

    assert sd("f2", rows[500:]) > 2.5 * sd("f2", rows[:500])
    assert 0.8 < sd("f1", rows[500:]) / sd("f1", rows[:500]) < 1.25
    assert "z" not in {r["cat"] for r in rows[:500]} and "z" in {r["cat"] for r in rows[500:]}
    with pytest.raises(ValueError, match="not among"):
        CovariateShift(n_features=2, shifted=["f9"], position=1)
