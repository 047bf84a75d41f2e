from __future__ import annotations

import itertools

import pytest
from river import datasets, linear_model

from streamer.errors import ConfigError
from streamer.models import PRESETS, build_model, task_of


def make_perceptron(l2: float = 0.0):
    return linear_model.Perceptron(l2=l2)


def make_with_seed(seed: int):
    from river import tree

    return tree.HoeffdingAdaptiveTreeClassifier(seed=seed)


def not_a_model():
    return object()


@pytest.mark.parametrize("preset", list(PRESETS))
def test_presets_build_seeded_and_deterministic(preset):
    task = task_of(build_model(preset))
    data = datasets.Phishing() if task == "classification" else datasets.TrumpApproval()
    a, b = build_model(preset, seed=5), build_model(preset, seed=5)
    preds = []
    for m in (a, b):
        out = []
        for x, y in itertools.islice(data, 300):
            out.append(m.predict_one(x))
            m.learn_one(x, y)
        preds.append(out)
    assert preds[0] == preds[1]


def test_factory_paths_get_params_and_seed():
    m = build_model(f"{__name__}:make_perceptron", {"l2": 0.5})
    assert isinstance(m, linear_model.Perceptron) and m.l2 == 0.5
    assert build_model(f"{__name__}:make_with_seed", seed=11).seed == 11


@pytest.mark.parametrize(
    ("preset", "params", "setting", "fragment"),
    [
        ("nope", {}, "model.preset", "unknown preset 'nope'"),
        ("no.such.module:f", {}, "model.preset", "cannot import"),
        (f"{__name__}:missing", {}, "model.preset", "has no attribute"),
        (f"{__name__}:not_a_model", {}, "model.preset", "River classifier or regressor"),
        ("logistic_regression", {"wrong": 1}, "model.params", "unexpected keyword"),
    ],
)
def test_bad_specs_name_the_setting(preset, params, setting, fragment):
    with pytest.raises(ConfigError) as info:
        build_model(preset, params)
    assert info.value.setting == setting
    assert fragment in str(info.value)


def test_categorical_presets_one_hot_strings():
    m = build_model("logistic_regression", categorical=True)
    for i in range(50):
        m.learn_one({"n": float(i % 5), "c": "ab"[i % 2]}, i % 2 == 0)
    assert m.predict_proba_one({"n": 1.0, "c": "a"})[True] > 0.5
