"""streamer: a streaming drift monitor and online learner (Kafka in, River models, Prometheus out).

The ``streamer`` command runs the Kafka pipeline. This package's public Python API is the drift
monitor without Kafka, for a DataFrame or an iterator of dicts (in a notebook, a batch job, a
test), with the statistics and defaults the workers use:

:class:`Monitor`
    Feature, prediction, label, concept (model error) and schema drift of rows against a
    reference; :meth:`Monitor.observe` returns a :class:`Report`.
:func:`compare`
    A current data set against a reference, as one window.
:class:`Report`
    Every :class:`Evaluation` (statistic, value, thresholds, level, offsets), the
    :class:`ConceptChange` list and the :class:`Histogram` of each column; ``to_dict()``,
    ``to_frame()`` (with pandas), ``to_html()``.
:class:`ConceptDriftMonitor`, :class:`DualADWIN`, :class:`OneSidedADWIN`
    The concept drift detectors, for a model's per-event error.
:class:`ModelSubscriber`, :class:`ModelUpdate`
    Follow the model-update topic: verified, ready River models and their metadata, for a
    downstream service that hot-swaps its model (``docs/lifecycle.md``).

``streamer.__version__`` is the installed version. Names are loaded on first use, so that
``import streamer`` (and the command) stays quick.
``docs/api.md`` has a worked example.

Examples
--------
>>> import streamer
>>> rows = [{"x": float(i % 10)} for i in range(3000)]
>>> report = streamer.compare(rows[:2000], [{"x": r["x"] + 5} for r in rows[2000:]])
>>> report.drifted
[('feature', 'x')]
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from streamer._version import __version__

if TYPE_CHECKING:
    from streamer.drift.concept import ConceptDriftMonitor
    from streamer.drift.detectors import DualADWIN, OneSidedADWIN
    from streamer.monitoring import (
        ConceptChange,
        Evaluation,
        Histogram,
        Monitor,
        Report,
        compare,
    )
    from streamer.registry import ModelSubscriber, ModelUpdate

__all__ = [
    "ConceptChange",
    "ConceptDriftMonitor",
    "DualADWIN",
    "Evaluation",
    "Histogram",
    "ModelSubscriber",
    "ModelUpdate",
    "Monitor",
    "OneSidedADWIN",
    "Report",
    "__version__",
    "compare",
]

# Public name -> the module that defines it. River (scipy) takes seconds to import: only code
# that uses the API pays for it, not `streamer --help`.
_LAZY = {
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


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'streamer' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
