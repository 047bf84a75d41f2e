"""The stages of one partition's batch, without Kafka: parse, prequential, drift, lifecycle.

:class:`Pipeline` is built once from the settings (so a bad setting fails at start-up) and
applied to a partition's state and records by the worker, by offline tools, and by tests that
want an uninterrupted in-memory run to compare a worker with::

    parse (decode + validate) -> prequential (score every slot, then learn) -> drift
        -> lifecycle (start, promote, roll back models)

Everything is deterministic and independent of how records are split into batches: lifecycle
decisions are taken at fixed event counts of the partition (every ``lifecycle.step`` events),
never at batch ends, so a replay after a crash takes the same decisions at the same events.

Examples
--------
>>> from streamer.settings import load_settings
>>> from streamer.testing import json_records
>>> pipeline = Pipeline(load_settings(env={}))
>>> state = pipeline.new_state("events", 0)
>>> rows = [{"id": i, "x": float(i % 7), "label": i % 2 == 0} for i in range(100)]
>>> out = pipeline.process(state, list(json_records(rows)))
>>> sum(len(s.scored) for s in out.predictions), state.next_offset, state.champion.n_learned
(100, 100, 100)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streamer.decode import make_decoder
from streamer.drift.monitor import by_offset, load_reference
from streamer.drift.window import Finding
from streamer.lifecycle import Decision, Lifecycle
from streamer.prequential import Outcome, SlotOutcome, prequential
from streamer.records import DeadLetter, DriftEvent, Event, Record
from streamer.settings import Settings
from streamer.state import PartitionState, new_state
from streamer.validate import Parsed, Validator, parse

__all__ = ["Pipeline", "Processed", "Segment"]


@dataclass(slots=True)
class Segment:
    """Events scored under one champion: its version, and what each slot predicted.

    ``slots`` holds ``(role, name, version)`` of each slot of ``outcome``, in order.
    """

    version: int
    outcome: Outcome
    slots: list[tuple[str, str, int]] = field(default_factory=list)
    drift: Any = None  # the champion's ModelDrift

    @property
    def scored(self) -> list[tuple[Event, Any, dict[Any, float] | None]]:
        return self.outcome.scored


@dataclass(slots=True)
class Processed:
    """What one batch of one partition produced: outputs, and what the metrics need."""

    records: int = 0
    predictions: list[Segment] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    drift_events: list[DriftEvent] = field(default_factory=list)
    statistics: list[tuple[str, Finding]] = field(default_factory=list)
    concept_states: list[int] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    events: int = 0
    labelled: int = 0
    learned: int = 0
    last_event_time: float | None = None

    def suppress_below(self, offset: int) -> None:
        """Drop the outputs of records below ``offset``: on a replay they were delivered."""
        for seg in self.predictions:
            for out in seg.outcome.slots:
                out.scored[:] = [s for s in out.scored if s[0].offset >= offset]
        self.dead[:] = [d for d in self.dead if (d.record.offset() or 0) >= offset]
        self.drift_events[:] = [e for e in self.drift_events if e.current_offsets[1] >= offset]
        self.decisions[:] = [d for d in self.decisions if d.offset >= offset]


class Pipeline:
    """The per-partition stages, built from the settings.

    Parameters
    ----------
    settings
        The validated settings tree.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = s = settings
        self.decoder = make_decoder(
            s.input.format,
            schema_file=s.resolve_path(s.input.avro.schema_file)
            if s.input.avro.schema_file
            else None,
            schema_ids={k: s.resolve_path(v) for k, v in s.input.avro.schema_ids.items()},
            framing=s.input.avro.framing,
        )
        self.max_bytes = s.input.max_record_bytes
        w = s.drift.windows
        self.pinned = (
            load_reference(s.resolve_path(w.reference_file))
            if s.drift.enabled and w.reference == "pinned"
            else None
        )
        self.lifecycle = Lifecycle(s) if s.lifecycle.enabled else None
        # Built once here so that a bad model, metric, detector or window setting stops the
        # worker at start-up.
        probe = self.new_state("", -1)
        self.task = probe.champion.task
        self.validator = Validator.from_settings(s, probe.champion.model)

    def new_state(self, topic: str, partition: int) -> PartitionState:
        """What a partition starts with when no checkpoint of it exists."""
        state = new_state(self.settings, topic, partition, pinned=self.pinned)
        if self.lifecycle is not None:
            self.lifecycle.attach(state)
        return state

    def process(self, state: PartitionState, records: Sequence[Record]) -> Processed:
        """Run a partition's records (offset order, not yet in the state) through the stages.

        Advances ``state``: its models learn, its monitors observe, ``next_offset`` moves past
        the last record.
        """
        out = Processed(records=len(records))
        if not records:
            return out
        parsed = parse(
            records, self.decoder, self.validator, max_bytes=self.max_bytes, admitted=state.admitted
        )
        out.dead.extend(parsed.dead)
        events = parsed.events
        out.events = len(events)
        if events:
            out.last_event_time = events[-1].time
        for part in self._segments(state, parsed):
            self._run(state, part, out)
        drift = state.drift
        if drift is not None:
            # Window statistics once for the batch, not per piece: the predictions of each
            # champion, then the data's own signals (they do not depend on the model).
            for model, version, scored in _by_champion(out.predictions):
                report = drift.observe_predictions(scored, model, version=version, events=events)
                out.drift_events.extend(report.events)
                out.statistics.extend(report.statistics)
            report = drift.observe_data(parsed, version=_version_at(out.predictions))
            out.drift_events = by_offset(out.drift_events + report.events)
            out.statistics.extend(report.statistics)
        state.next_offset = records[-1].offset() + 1  # type: ignore[operator]
        state.events += len(records)
        return out

    def _segments(self, state: PartitionState, parsed: Parsed) -> list[Parsed]:
        """The batch cut where lifecycle decisions fall (one piece without a lifecycle)."""
        lifecycle = self.lifecycle
        if lifecycle is None or not parsed.decoded:
            return [parsed]
        return lifecycle.cut(state, parsed)

    def _run(self, state: PartitionState, parsed: Parsed, out: Processed) -> None:
        lifecycle = self.lifecycle
        if lifecycle is not None and parsed.decoded_offsets:
            out.decisions.extend(lifecycle.before(state, parsed.decoded_offsets[0]))
        champion = state.champion
        slots = [(s.role, s.name, s.version) for s in state.slots]
        outcome = prequential(state.slots, parsed.events)
        out.predictions.append(Segment(champion.version, outcome, slots, champion.drift))
        out.dead.extend(outcome.dead)
        c: SlotOutcome = outcome.champion
        out.labelled += c.labelled
        out.learned += c.learned
        report = None
        if state.drift is not None:
            report = state.drift.observe_concept(outcome, champion.drift, version=champion.version)
            out.drift_events.extend(report.events)
            out.concept_states.extend(report.concept_states)
        if lifecycle is not None:
            lifecycle.observe(state, outcome, report)


def _version_at(segments: list[Segment]) -> Any:
    """The champion's version in force at an offset of the batch."""
    if len(segments) == 1:
        return segments[0].version
    firsts = [
        (s.outcome.scored[0][0].offset if s.outcome.scored else None, s.version) for s in segments
    ]
    starts = [(o, v) for o, v in firsts if o is not None]

    def at(offset: int) -> int:
        version = segments[0].version
        for first, v in starts:
            if first > offset:
                break
            version = v
        return version

    return at


def _by_champion(segments: list[Segment]) -> list[tuple[Any, int, list[Any]]]:
    """The champion's scored events of consecutive segments, grouped by champion."""
    groups: list[tuple[Any, int, list[Any]]] = []
    for seg in segments:
        if seg.drift is None:
            continue
        if groups and groups[-1][0] is seg.drift:
            groups[-1][2].extend(seg.scored)
        else:
            groups.append((seg.drift, seg.version, list(seg.scored)))
    return groups
