"""Seeded synthetic streams with drift at known positions.

These feed the demo, the benchmarks and the tests. Every generator is deterministic for a given
seed, so a run can be replayed and compared exactly.

River's ``ConceptDriftStream`` computes ``exp(-4 (t - p) / w)`` without bounds and overflows when
``width=1`` (an abrupt drift); :class:`DriftingStream` clamps the exponent, so ``width=1`` gives a
clean switch at ``position``.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from river.datasets import synth

__all__ = [
    "CONCEPT_STREAMS",
    "CovariateShift",
    "DriftingStream",
    "concept_drift",
]

Sample = tuple[dict[str, Any], Any]

# The largest exponent math.exp accepts is about 709; beyond +-50 the sigmoid is 0 or 1 anyway.
_EXP_LIMIT = 50.0


def _sigmoid_weight(t: int, position: int, width: int) -> float:
    """Probability that sample ``t`` (1-based) comes from the stream after the drift."""
    v = -4.0 * (t - position) / max(width, 1)
    v = min(max(v, -_EXP_LIMIT), _EXP_LIMIT)
    return 1.0 / (1.0 + math.exp(v))


class DriftingStream:
    """Join two streams with a sigmoid transition centred on ``position``.

    Sample ``t`` (1-based) comes from ``after`` with probability
    ``1 / (1 + exp(-4 (t - position) / width))``. With ``width=1`` the switch is abrupt and
    exact: samples ``1 … position - 1`` come from ``before``, samples from ``position`` on from
    ``after`` (River's sigmoid would still toss a fair coin at ``t = position``).

    Parameters
    ----------
    before
        The stream before the drift.
    after
        The stream after the drift.
    position
        Centre of the transition, as a 1-based sample index.
    width
        Width of the transition in samples; 1 means abrupt.
    seed
        Seed of the coin that picks the stream for each sample.
    str_keys
        Turn feature names into strings (River's synthetic streams use integers for some), so
        that samples survive a JSON round trip unchanged.

    Examples
    --------
    >>> old = itertools.repeat(({"x": 0}, "old"))
    >>> new = itertools.repeat(({"x": 1}, "new"))
    >>> [y for _, y in itertools.islice(DriftingStream(old, new, position=3, seed=7), 5)]
    ['old', 'old', 'new', 'new', 'new']
    """

    def __init__(
        self,
        before: Iterable[Sample],
        after: Iterable[Sample],
        *,
        position: int,
        width: int = 1,
        seed: int | None = None,
        str_keys: bool = True,
    ) -> None:
        if position < 1:
            raise ValueError(f"position must be >= 1, got {position}")
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.before = before
        self.after = after
        self.position = position
        self.width = width
        self.seed = seed
        self.str_keys = str_keys

    def __iter__(self) -> Iterator[Sample]:
        rng = random.Random(self.seed)
        first, second = iter(self.before), iter(self.after)
        for t in itertools.count(1):
            if self.width == 1:
                source = second if t >= self.position else first
            else:
                p_after = _sigmoid_weight(t, self.position, self.width)
                source = second if rng.random() < p_after else first
            try:
                x, y = next(source)
            except StopIteration:
                return
            if self.str_keys:
                x = {str(k): v for k, v in x.items()}
            yield x, y


def _sea(seed: int) -> tuple[Iterable[Sample], Iterable[Sample]]:
    return synth.SEA(seed=seed, variant=0), synth.SEA(seed=seed, variant=3)


def _agrawal(seed: int) -> tuple[Iterable[Sample], Iterable[Sample]]:
    return (
        synth.Agrawal(seed=seed, classification_function=0),
        synth.Agrawal(seed=seed, classification_function=2),
    )


def _stagger(seed: int) -> tuple[Iterable[Sample], Iterable[Sample]]:
    return (
        synth.STAGGER(seed=seed, classification_function=0),
        synth.STAGGER(seed=seed, classification_function=2),
    )


def _hyperplane(seed: int) -> tuple[Iterable[Sample], Iterable[Sample]]:
    # Same input distribution, a different random hyperplane: a pure concept change.
    return (
        synth.Hyperplane(seed=seed, n_features=10, mag_change=0.0, noise_percentage=0.05),
        synth.Hyperplane(seed=seed + 1000, n_features=10, mag_change=0.0, noise_percentage=0.05),
    )


#: Named classification streams with a concept drift between two of their concepts.
CONCEPT_STREAMS = {
    "sea": _sea,
    "agrawal": _agrawal,
    "stagger": _stagger,
    "hyperplane": _hyperplane,
}


def concept_drift(
    name: str, *, seed: int, position: int, width: int = 1, n: int | None = None
) -> Iterator[Sample]:
    """A named classification stream whose concept changes at ``position``.

    Parameters
    ----------
    name
        One of ``sea``, ``agrawal``, ``stagger``, ``hyperplane``.
    seed
        Seeds both concepts and the transition.
    position
        1-based index of the change (the centre of the transition when ``width > 1``).
    width
        Transition width in samples; 1 means abrupt.
    n
        Number of samples; unbounded when None.

    Examples
    --------
    >>> xs = list(concept_drift("agrawal", seed=1, position=50, n=100))
    >>> len(xs), sorted(xs[0][0])[:3]
    (100, ['age', 'car', 'commission'])
    """
    try:
        make = CONCEPT_STREAMS[name]
    except KeyError:
        raise ValueError(
            f"unknown stream {name!r}; expected one of {', '.join(sorted(CONCEPT_STREAMS))}"
        ) from None
    before, after = make(seed)
    stream: Iterator[Sample] = iter(
        DriftingStream(before, after, position=position, width=width, seed=seed)
    )
    return itertools.islice(stream, n) if n is not None else stream


class CovariateShift:
    """Gaussian numeric features and one categorical feature, with an injected shift.

    Before ``position`` every numeric feature ``f0 … f{n-1}`` is drawn from N(0, 1) and the
    categorical feature ``cat`` from categories ``a`` to ``e`` with fixed frequencies. From
    ``position`` on (1-based), the features listed in ``shifted`` change: ``kind="mean"`` adds
    ``magnitude`` to the mean, ``kind="variance"`` multiplies the standard deviation by
    ``magnitude``. With ``new_category=True`` the categorical feature starts emitting a category
    ``z`` never seen before, with probability ``new_category_rate``. The label is a fixed linear
    function of the features, so the same stream also serves for models.

    Examples
    --------
    >>> s = CovariateShift(n_features=3, shifted=["f1"], position=101, magnitude=10.0, seed=0)
    >>> xs = [x["f1"] for x, _ in itertools.islice(s, 200)]
    >>> round(sum(xs[:100]) / 100), round(sum(xs[100:]) / 100)
    (0, 10)
    """

    CATEGORIES = ("a", "b", "c", "d", "e")
    WEIGHTS = (0.4, 0.25, 0.15, 0.12, 0.08)

    def __init__(
        self,
        *,
        n_features: int,
        shifted: Sequence[str] = (),
        position: int,
        kind: str = "mean",
        magnitude: float = 1.0,
        new_category: bool = False,
        new_category_rate: float = 0.2,
        seed: int | None = None,
    ) -> None:
        if kind not in ("mean", "variance"):
            raise ValueError(f"kind must be 'mean' or 'variance', got {kind!r}")
        names = {f"f{i}" for i in range(n_features)}
        unknown = set(shifted) - names
        if unknown:
            raise ValueError(
                f"shifted features {sorted(unknown)} are not among f0..f{n_features - 1}"
            )
        self.n_features = n_features
        self.shifted = list(shifted)
        self.position = position
        self.kind = kind
        self.magnitude = magnitude
        self.new_category = new_category
        self.new_category_rate = new_category_rate
        self.seed = seed

    @property
    def features(self) -> list[str]:
        return [f"f{i}" for i in range(self.n_features)]

    def __iter__(self) -> Iterator[Sample]:
        rng = random.Random(self.seed)
        coef = [rng.uniform(-1, 1) for _ in range(self.n_features)]
        shifted = set(self.shifted)
        for t in itertools.count(1):
            drifted = t >= self.position
            x: dict[str, Any] = {}
            for i in range(self.n_features):
                name = f"f{i}"
                v = rng.gauss(0.0, 1.0)
                if drifted and name in shifted:
                    v = v + self.magnitude if self.kind == "mean" else v * self.magnitude
                x[name] = v
            if drifted and self.new_category and rng.random() < self.new_category_rate:
                x["cat"] = "z"
            else:
                x["cat"] = rng.choices(self.CATEGORIES, self.WEIGHTS)[0]
            score = sum(c * x[f"f{i}"] for i, c in enumerate(coef))
            yield x, score > 0
