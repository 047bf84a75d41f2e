"""What a stopped worker saw, for the person who ran it: ``streamer run`` and the demo print it.

Everything comes from what a :class:`~streamer.worker.Worker` exposes: its partition states
(final prequential metrics, model version), its counters, and its Prometheus registry (the
counters by topic, partition, stage, reason, signal and level that ``/metrics`` serves, which
outlive the process only if something scraped them).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PartitionSummary", "RunSummary", "summarize"]


@dataclass(frozen=True, slots=True)
class PartitionSummary:
    """One input partition at the end of a run."""

    topic: str
    partition: int
    events: int
    predictions: int
    version: int
    next_offset: int | None
    running: dict[str, float]
    """Prequential metrics over every labelled event since the model started."""
    rolling: dict[str, float]
    """The same over the last ``evaluation.window`` labelled events."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Counts and final metrics of one worker run."""

    events: int
    seconds: float
    predictions: int
    dead_letters: dict[str, int]
    """``stage/reason`` -> records sent to the dead-letter topic."""
    drift_events: dict[str, int]
    """Level (``alarm``, ``warning``, ``ok``) -> drift events published."""
    drift_alarms: dict[str, int] = field(default_factory=dict)
    """Signal -> alarms published."""
    partitions: list[PartitionSummary] = field(default_factory=list)

    @property
    def dead_total(self) -> int:
        return sum(self.dead_letters.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain data (``streamer run --log-format json`` prints it as one JSON line)."""
        return {
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "predictions": self.predictions,
            "dead_letters": dict(self.dead_letters),
            "drift_events": dict(self.drift_events),
            "drift_alarms": dict(self.drift_alarms),
            "partitions": [
                {
                    "topic": p.topic,
                    "partition": p.partition,
                    "events": p.events,
                    "predictions": p.predictions,
                    "version": p.version,
                    "next_offset": p.next_offset,
                    "running": _finite(p.running),
                    "rolling": _finite(p.rolling),
                }
                for p in self.partitions
            ],
        }

    def lines(self) -> list[str]:
        """The summary for people.

        Examples
        --------
        >>> s = RunSummary(1200, 2.0, 1190, {"validate/wrong_type": 10},
        ...                {"alarm": 1, "warning": 2, "ok": 1}, {"concept": 1},
        ...                [PartitionSummary("events", 0, 1200, 1190, 1, 1200,
        ...                                  {"Accuracy": 0.91234}, {"Accuracy": 0.9})])
        >>> print("\\n".join(s.lines()))
        events        1,200 in 2.0 s
        predictions   1,190
        dead letters  10: validate/wrong_type 10
        drift events  1 alarm (concept 1), 2 warnings, 1 cleared
        final metrics (running, since the champion started)
          events[0]: 1,200 events, model v1, next offset 1,200
            Accuracy 0.9123
        """
        out = [
            f"events        {self.events:,} in {self.seconds:.1f} s",
            f"predictions   {self.predictions:,}",
        ]
        dead = ", ".join(f"{k} {n:,}" for k, n in sorted(self.dead_letters.items()))
        out.append(f"dead letters  {self.dead_total:,}" + (f": {dead}" if dead else ""))
        alarms = self.drift_events.get("alarm", 0)
        by_signal = ", ".join(f"{s} {n}" for s, n in sorted(self.drift_alarms.items()))
        out.append(
            f"drift events  {_plural(alarms, 'alarm')}"
            + (f" ({by_signal})" if by_signal else "")
            + f", {_plural(self.drift_events.get('warning', 0), 'warning')}"
            + f", {self.drift_events.get('ok', 0)} cleared"
        )
        if self.partitions:
            out.append("final metrics (running, since the champion started)")
        for p in self.partitions:
            where = f"{p.events:,} events, model v{p.version}"
            if p.next_offset is not None:
                where += f", next offset {p.next_offset:,}"
            metrics = "  ".join(f"{k} {v:.4f}" for k, v in p.running.items())
            out.append(f"  {p.topic}[{p.partition}]: {where}")
            out.append(f"    {metrics or '(no labelled events yet)'}")
        return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _finite(values: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


def _samples(registry: Any, name: str) -> Iterator[tuple[dict[str, str], float]]:
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                yield sample.labels, sample.value


def summarize(worker: Any) -> RunSummary:
    """The summary of a worker, stopped or running (``streamer run`` prints it at the end).

    Reads ``worker.states``, ``worker.processed``, ``worker.started`` and the counters of
    ``worker.metrics.registry``; nothing else of the worker.
    """
    registry = worker.metrics.registry
    predictions: dict[tuple[str, int], int] = {}
    for labels, value in _samples(registry, "streamer_predictions_total"):
        tp = (labels.get("topic", ""), int(labels.get("partition", -1)))
        predictions[tp] = predictions.get(tp, 0) + int(value)
    dead: dict[str, int] = {}
    for labels, value in _samples(registry, "streamer_dead_letters_total"):
        if value:
            key = f"{labels.get('stage', '?')}/{labels.get('reason', '?')}"
            dead[key] = dead.get(key, 0) + int(value)
    drift: dict[str, int] = {}
    alarms: dict[str, int] = {}
    for labels, value in _samples(registry, "streamer_drift_events_total"):
        level = labels.get("level", "?")
        drift[level] = drift.get(level, 0) + int(value)
        if level == "alarm" and value:
            signal = labels.get("signal", "?")
            alarms[signal] = alarms.get(signal, 0) + int(value)
    partitions = []
    for (topic, partition), state in sorted(worker.states.items()):
        champion = state.champion
        values = champion.evaluation.values()
        partitions.append(
            PartitionSummary(
                topic=topic,
                partition=partition,
                events=state.events,
                predictions=predictions.get((topic, partition), 0),
                version=champion.version,
                next_offset=state.next_offset,
                running={m: v for (m, w), v in values.items() if w == "running"},
                rolling={m: v for (m, w), v in values.items() if w == "rolling"},
            )
        )
    return RunSummary(
        events=worker.processed,
        seconds=time.monotonic() - worker.started,
        predictions=sum(predictions.values()),
        dead_letters=dead,
        drift_events=drift,
        drift_alarms=alarms,
        partitions=partitions,
    )
