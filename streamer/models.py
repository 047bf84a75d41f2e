"""Model specs to River estimators: presets by name, or any ``module:factory``.

A preset builds a standard River pipeline, seeded, so that two workers given the same settings
build identical models. When categorical features are configured, numbers are scaled and
categories one-hot encoded side by side before the learner.

Examples
--------
>>> m = build_model("logistic_regression", seed=1)
>>> list(m.steps), task_of(m), task_kind(m)
(['StandardScaler', 'LogisticRegression'], 'classification', 'binary')
>>> task_kind(build_model("softmax_regression")), task_kind(build_model("linear_regression"))
('multiclass', 'regression')
>>> list(build_model("linear_regression", categorical=True).steps)
['TransformerUnion', 'LinearRegression']
>>> build_model("no_such_model")
Traceback (most recent call last):
...
streamer.errors.ConfigError: model.preset: unknown preset 'no_such_model'; presets: ...
"""

from __future__ import annotations

import importlib
import inspect
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from river import base, compose, linear_model, preprocessing, tree

from streamer.errors import ConfigError
from streamer.settings import Settings

__all__ = [
    "KINDS",
    "PRESETS",
    "StableHoeffdingAdaptiveTreeClassifier",
    "build_model",
    "is_multiclass",
    "model_from_settings",
    "task_kind",
    "task_of",
]


def _encode(learner: base.Estimator, *, scale: bool, categorical: bool) -> Any:
    numeric: Any = preprocessing.StandardScaler() if scale else None
    if not categorical:
        return learner if numeric is None else numeric | learner
    numbers_branch = compose.SelectType(numbers.Number)
    if numeric is not None:
        numbers_branch = numbers_branch | numeric
    categories = compose.SelectType(str) | preprocessing.OneHotEncoder()
    return (numbers_branch + categories) | learner  # type: ignore[operator]


def _logistic(seed: int, categorical: bool, **params: Any) -> Any:
    return _encode(linear_model.LogisticRegression(**params), scale=True, categorical=categorical)


def _softmax(seed: int, categorical: bool, **params: Any) -> Any:
    return _encode(linear_model.SoftmaxRegression(**params), scale=True, categorical=categorical)


class _SortedClasses(set[Any]):
    """The classes a tree has seen, iterated in sorted order rather than hash order."""

    def __iter__(self) -> Iterator[Any]:
        return iter(sorted(set.__iter__(self), key=_class_order))


class StableHoeffdingAdaptiveTreeClassifier(tree.HoeffdingAdaptiveTreeClassifier):
    """River's adaptive Hoeffding tree, with its classes in a fixed (sorted) order.

    River 0.26.1 builds ``predict_proba_one``'s dict from a set of classes, so with string
    labels its order depends on ``PYTHONHASHSEED``: the arg-max among tied classes and the
    last bits of the normalised probabilities (a sum in that order) differ from process to
    process, and a model restored in another process could predict differently. Iterating the
    classes in sorted order makes every process agree (River's plain Hoeffding tree sorts).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.classes = _SortedClasses()


def _class_order(c: Any) -> tuple[str, Any]:
    # Classes of one type sort by value; mixed types (True and "yes") by type name first.
    return (type(c).__name__, c if isinstance(c, (str, int, float)) else repr(c))


def _hoeffding(seed: int, categorical: bool, **params: Any) -> Any:
    # Trees split on raw values and handle categories natively: no scaling, no one-hot.
    return StableHoeffdingAdaptiveTreeClassifier(seed=seed, **params)


def _linear_regression(seed: int, categorical: bool, **params: Any) -> Any:
    return _encode(linear_model.LinearRegression(**params), scale=True, categorical=categorical)


def _hoeffding_regressor(seed: int, categorical: bool, **params: Any) -> Any:
    return tree.HoeffdingAdaptiveTreeRegressor(seed=seed, **params)


#: Preset name -> (builder, description).
PRESETS: dict[str, tuple[Callable[..., Any], str]] = {
    "logistic_regression": (_logistic, "StandardScaler | LogisticRegression (binary)"),
    "softmax_regression": (_softmax, "StandardScaler | SoftmaxRegression (multi-class)"),
    "hoeffding_tree": (_hoeffding, "HoeffdingAdaptiveTreeClassifier"),
    "linear_regression": (_linear_regression, "StandardScaler | LinearRegression"),
    "hoeffding_tree_regressor": (_hoeffding_regressor, "HoeffdingAdaptiveTreeRegressor"),
}


def _factory(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("model.preset", f"cannot import {module_name!r}: {exc}") from exc
    try:
        factory = getattr(module, attr)
    except AttributeError:
        raise ConfigError("model.preset", f"{module_name!r} has no attribute {attr!r}") from None
    if not callable(factory):
        raise ConfigError("model.preset", f"{path!r} is not callable")
    return factory  # type: ignore[no-any-return]


def build_model(
    preset: str,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 42,
    categorical: bool = False,
) -> Any:
    """Build a fresh, seeded River estimator.

    Parameters
    ----------
    preset
        A key of :data:`PRESETS`, or ``package.module:factory``. A factory is called with
        ``params`` as keyword arguments, plus ``seed`` when it accepts one, and must return a
        River classifier or regressor.
    params
        Keyword arguments for the preset's learner or the factory.
    seed
        Seed for models with randomness.
    categorical
        Some features are categories: presets add one-hot encoding for them.
    """
    params = dict(params or {})
    try:
        if ":" in preset:
            factory = _factory(preset)
            accepts = inspect.signature(factory).parameters
            if "seed" in accepts or any(p.kind is p.VAR_KEYWORD for p in accepts.values()):
                params.setdefault("seed", seed)
            model = factory(**params)
        elif preset in PRESETS:
            model = PRESETS[preset][0](seed, categorical, **params)
        else:
            raise ConfigError(
                "model.preset",
                f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}, or module:factory",
            )
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            "model.params", f"building {preset!r} with {params} failed: {type(exc).__name__}: {exc}"
        ) from exc
    task_of(model, setting="model.preset")
    return model


def model_from_settings(settings: Settings) -> Any:
    """A fresh, seeded model as ``[model]`` and ``[fields]`` say: what every partition starts
    with."""
    m = settings.model
    return build_model(
        m.preset, m.params, seed=m.seed, categorical=bool(settings.fields.categorical)
    )


def task_of(model: Any, *, setting: str = "model") -> str:
    """``classification`` or ``regression``; anything else is a :class:`ConfigError`."""
    if isinstance(model, base.Classifier):
        return "classification"
    if isinstance(model, base.Regressor):
        return "regression"
    raise ConfigError(
        setting, f"expected a River classifier or regressor, got {type(model).__name__}"
    )


#: What a model is asked to do: :func:`task_kind`.
KINDS = ("binary", "multiclass", "regression")


def is_multiclass(model: Any) -> bool:
    """Whether a classifier can learn more than two classes (River's ``_multiclass``; a
    pipeline answers for its last step)."""
    return bool(getattr(model, "_multiclass", False))


def task_kind(model: Any, classes: Sequence[Any] = ()) -> str:
    """``binary``, ``multiclass`` or ``regression``: what the model does with these classes.

    A classifier that can only tell two classes apart (``logistic_regression``) is binary; one
    that can learn more is multi-class, unless exactly two classes are declared
    (``evaluation.classes``). Declaring more than two for a binary classifier is a
    :class:`ConfigError`. The metrics' defaults and the classes a partition admits follow
    from it.

    Examples
    --------
    >>> tree = build_model("hoeffding_tree")
    >>> task_kind(tree), task_kind(tree, [True, False])
    ('multiclass', 'binary')
    >>> task_kind(build_model("logistic_regression"), ["a", "b", "c"])
    Traceback (most recent call last):
    ...
    streamer.errors.ConfigError: evaluation.classes: 3 classes declared, but \
LogisticRegression is a binary classifier: declare 2, or use a multi-class model \
(softmax_regression, hoeffding_tree)
    """
    if task_of(model) == "regression":
        return "regression"
    if is_multiclass(model):
        return "binary" if len(classes) == 2 else "multiclass"
    if len(classes) > 2:
        learner = list(model.steps.values())[-1] if isinstance(model, compose.Pipeline) else model
        name = type(learner).__name__
        raise ConfigError(
            "evaluation.classes",
            f"{len(classes)} classes declared, but {name} is a binary classifier: declare 2, "
            "or use a multi-class model (softmax_regression, hoeffding_tree)",
        )
    return "binary"
