"""Pinned references: the feature, prediction and label distributions of a chosen data set.

With ``drift.windows.reference = "pinned"`` the window monitors compare the stream against a
reference made once, offline, from data the operator trusts (the training set, a good week),
instead of the first events after each start. ``streamer drift-reference`` builds the file:
it reads the rows, validates them with the ``[fields]`` settings, runs the configured model
over them prequentially for its predictions, and writes one snapshot per signal.

Examples
--------
>>> from streamer.settings import load_settings
>>> from streamer.produce import dataset_rows
>>> ref = build_reference(load_settings(env={}), dataset_rows("Phishing"))
>>> sorted(ref), ref["labels"]["events"]
(['features', 'labels', 'predictions'], 1250)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from streamer.drift.monitor import label_rows, prediction_rows
from streamer.drift.window import WindowMonitor
from streamer.errors import RecordError, StreamerError
from streamer.models import model_from_settings
from streamer.prequential import ModelSlot, prequential
from streamer.records import Event, MemoryRecord
from streamer.settings import Settings
from streamer.validate import Validator

__all__ = ["build_reference"]


def build_reference(settings: Settings, rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Snapshots of features, predictions and labels over ``rows`` (all of them).

    Rows that do not validate are skipped; if none do, :class:`StreamerError`.
    """
    f, w = settings.fields, settings.drift.windows
    slot = ModelSlot(model_from_settings(settings))
    validator = Validator.from_settings(settings, slot.model)
    events: list[Event] = []
    for i, row in enumerate(rows):
        try:
            events.append(validator.event(dict(row), MemoryRecord(None, offset=i)))
        except RecordError:
            continue
    if not events:
        raise StreamerError("no row passed validation: check the [fields] settings")
    outcome = prequential([slot], events)
    classifier = slot.task == "classification"
    numeric = list(f.features) or [k for k in events[0].x if k not in f.categorical]
    numeric = [n for n in numeric if n not in f.categorical]
    categorical = [c for c in f.categorical if c in events[0].x or c in f.features]

    def snapshot(
        num: list[str], cat: list[str], data: list[dict[str, Any]], offsets: list[int]
    ) -> dict[str, Any]:
        sizes: dict[str, Any] = {k: v for k, v in {"bins": w.bins, "top_k": w.top_k}.items() if v}
        mon = WindowMonitor(num, cat, reference_size=len(data), **sizes)
        mon.observe(data, offsets)
        return mon.reference_snapshot()

    out = {
        "features": snapshot(
            numeric, categorical, [e.x for e in events], [e.offset for e in events]
        ),
        "predictions": snapshot(
            [] if classifier else ["prediction"],
            ["prediction"] if classifier else [],
            *prediction_rows(outcome.scored, classifier),
        ),
    }
    labels, offsets = label_rows(events, classifier)
    if labels:
        out["labels"] = snapshot(
            [] if classifier else ["label"], ["label"] if classifier else [], labels, offsets
        )
    return out
