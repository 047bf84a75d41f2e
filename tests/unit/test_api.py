"""The public Python API: its names are pinned, load lazily, and the documented examples run."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import streamer

ROOT = Path(__file__).resolve().parents[2]

# Changing this list is changing the public API: add names freely, remove or rename them only
# after a deprecation.
PUBLIC = {
    "ConceptChange": "streamer.monitoring",
    "ConceptDriftMonitor": "streamer.drift.concept",
    "DualADWIN": "streamer.drift.detectors",
    "Evaluation": "streamer.monitoring",
    "Histogram": "streamer.monitoring",
    "ModelSubscriber": "streamer.registry",
    "ModelUpdate": "streamer.registry",
    "Monitor": "streamer.monitoring",
    "OneSidedADWIN": "streamer.drift.detectors",
    "Report": "streamer.monitoring",
    "compare": "streamer.monitoring",
}


def test_public_names_are_pinned():
    api = set(streamer.__all__) - {"__version__"}  # the version is not part of the drift API
    assert api == set(PUBLIC)
    for name, module in PUBLIC.items():
        value = getattr(streamer, name)
        assert value is getattr(importlib.import_module(module), name)
        assert value.__module__ == module
    assert set(PUBLIC) <= set(dir(streamer))


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'streamer' has no attribute 'Nope'"):
        streamer.Nope  # noqa: B018
    with pytest.raises(ImportError):
        exec("from streamer import Nope", {})


def test_importing_streamer_does_not_load_river():
    # `streamer --help` should not wait seconds for River and scipy to import.
    code = (
        "import sys, streamer, streamer.cli\n"
        "assert 'river' not in sys.modules, 'river imported'\n"
        "from streamer import Monitor\n"
        "assert 'river' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("name", ["docs/api.md", "README.md"])
def test_documented_examples_run(name):
    pytest.importorskip("pandas")  # in the dev extra: CI has it
    result = doctest.testfile(
        str(ROOT / name),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        raise_on_error=False,
        verbose=False,
    )
    assert result.attempted >= (30 if name == "docs/api.md" else 3)
    assert result.failed == 0
