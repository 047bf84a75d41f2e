"""Signed payloads: signatures, and the restricted unpickler that restores models."""

from __future__ import annotations

import itertools
import os
import pickle
import subprocess
import zlib

import numpy as np
import pytest
from river import (
    datasets,
    ensemble,
    forest,
    linear_model,
    naive_bayes,
    neighbors,
    preprocessing,
    tree,
)

from streamer.errors import PayloadError
from streamer.models import PRESETS, build_model, task_of
from streamer.signing import Signer, dumps, loads, split


def test_signatures_cover_header_and_payload():
    signer = Signer(b"0123456789abcdef")
    sig = signer.sign({"a": 1, "b": [1, 2]}, b"payload")
    assert signer.verify({"b": [1, 2], "a": 1}, b"payload", sig)  # key order does not matter
    assert not signer.verify({"a": 2, "b": [1, 2]}, b"payload", sig)
    assert not signer.verify({"a": 1, "b": [1, 2]}, b"payloaD", sig)
    assert not Signer(b"another key of 16+").verify({"a": 1, "b": [1, 2]}, b"payload", sig)
    assert signer.key_id != Signer(b"another key of 16+").key_id
    assert signer.key_id not in "0123456789abcdef"  # the id does not reveal the key
    with pytest.raises(ValueError, match="16 bytes"):
        Signer(b"short")


def test_split_chunks_the_payload():
    assert split(b"abcdefg", 3) == [b"abc", b"def", b"g"]
    assert split(b"", 3) == [b""]


def _trained(model, dataset, n=400):
    data = list(itertools.islice(dataset, n + 50))
    for x, y in data[:n]:
        model.learn_one(x, y)
    return model, [x for x, _ in data[n:]]


def _predictions(model, xs):
    if task_of(model) == "classification":
        return [model.predict_proba_one(x) for x in xs]
    return [model.predict_one(x) for x in xs]


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("categorical", [False, True])
def test_every_trained_preset_survives_the_restricted_unpickler(preset, categorical):
    regression = "regress" in PRESETS[preset][1].lower() or preset.endswith("regressor")
    dataset = datasets.TrumpApproval() if regression else datasets.Phishing()
    if preset == "softmax_regression" or (preset == "hoeffding_tree" and categorical):
        dataset = datasets.ImageSegments()
    model, xs = _trained(build_model(preset, seed=1, categorical=categorical), dataset)
    restored = loads(dumps(model))
    assert _predictions(restored, xs) == _predictions(model, xs)


@pytest.mark.parametrize(
    "make",
    [
        lambda: forest.ARFClassifier(seed=1, n_models=3),
        lambda: ensemble.BaggingClassifier(linear_model.LogisticRegression(), n_models=3, seed=1),
        lambda: naive_bayes.GaussianNB(),
        lambda: neighbors.KNNClassifier(),
        lambda: tree.HoeffdingTreeClassifier(),
        lambda: preprocessing.StandardScaler() | linear_model.PAClassifier(),
    ],
    ids=["arf", "bagging", "gaussian_nb", "knn", "hoeffding_tree", "pa"],
)
def test_common_river_classifiers_survive_the_restricted_unpickler(make):
    model, xs = _trained(make(), datasets.Phishing())
    assert _predictions(loads(dumps(model)), xs) == _predictions(model, xs)


class _Canary:
    """A payload that would run a command when unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize(
    "obj",
    [
        os.system,
        subprocess.Popen,
        eval,
        pickle.loads,
        np.memmap,
        np.load,
    ],
    ids=["os.system", "Popen", "eval", "pickle.loads", "memmap", "np.load"],
)
def test_code_a_model_does_not_need_is_refused(obj):
    with pytest.raises(PayloadError, match="refused to unpickle"):
        loads(zlib.compress(pickle.dumps(obj)))


def test_a_pickle_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    canary = tmp_path / "canary"
    with pytest.raises(PayloadError, match="refused to unpickle posix.system"):
        loads(zlib.compress(pickle.dumps(_Canary(str(canary)))))
    assert not canary.exists()


def test_getattr_reaches_only_methods_of_river_and_streamer_objects(tmp_path):
    import operator

    # getattr(array, "tofile")(path) would write a file: refused.
    class Gadget:
        def __reduce__(self):
            return (getattr, (np.zeros(3), "tofile"))

    with pytest.raises(PayloadError, match="getattr"):
        loads(zlib.compress(pickle.dumps(Gadget())))

    class Dunder:
        def __reduce__(self):
            return (getattr, (linear_model.LogisticRegression(), "__class__"))

    with pytest.raises(PayloadError, match="getattr"):
        loads(zlib.compress(pickle.dumps(Dunder())))
    with pytest.raises(PayloadError, match="attrgetter"):
        loads(zlib.compress(pickle.dumps(operator.attrgetter("x"))))


def test_trusted_modules_admit_a_factory_models_own_classes():
    from streamer.testing import FragileClassifier

    payload = zlib.compress(pickle.dumps(FragileClassifier()))
    assert isinstance(loads(payload), FragileClassifier)  # streamer's own: allowed
    payload = zlib.compress(pickle.dumps(_Canary("x")))  # a test module's class
    with pytest.raises(PayloadError):
        loads(zlib.compress(pickle.dumps(_Canary)))
    assert loads(zlib.compress(pickle.dumps(_Canary)), trusted=(_Canary.__module__,)) is _Canary
    del payload


def test_a_payload_that_inflates_too_far_is_refused():
    bomb = zlib.compress(b"\0" * 5_000_000)
    assert len(bomb) < 10_000
    with pytest.raises(PayloadError, match="inflates beyond 1000000 bytes"):
        loads(bomb, max_bytes=1_000_000)
    with pytest.raises(PayloadError, match="does not decompress"):
        loads(b"not zlib")
