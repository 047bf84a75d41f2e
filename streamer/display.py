"""What the demo shows while it runs: a live table on a terminal, plain lines elsewhere.

Both displays take the same calls: :meth:`status` with a :class:`Status` snapshot, and
:meth:`event` with an :class:`EventLine`, one line about something that happened. Each kind
of event has one formatter returning an :class:`EventLine` (:func:`drift_line` for drift
events); a new kind (a challenger started, a promotion, a new model version) needs only its
formatter: ``display.event(EventLine("info", "p0 challenger started after a warning"), t)``.

* :class:`LiveDisplay` (stdout is a terminal): a table redrawn in place at the bottom of the
  screen, coloured (``NO_COLOR`` turns colour off), with event and log lines scrolling above
  it;
* :class:`PlainDisplay` (a pipe, a file, CI): one status line a second (and one per
  partition), event lines as they come; no escape codes.

The lines are built to fit in :data:`WIDTH` columns, but none is ever cut where nothing
requires it: in a pipe or a file every line is whole (a command or an offset cut off helps no
one). Only the live table is cut, to the terminal's width, because it is redrawn in place.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass
from typing import Any, TextIO

from streamer.records import DriftEvent
from streamer.settings import Settings

__all__ = [
    "WIDTH",
    "EventLine",
    "LiveDisplay",
    "LogToDisplay",
    "PartitionRow",
    "PlainDisplay",
    "Status",
    "drift_line",
    "lifecycle_line",
    "make_display",
    "number",
]

#: The width the displays' lines are built for (the plain status lines, the table's rule).
WIDTH = 100


@dataclass(frozen=True, slots=True)
class EventLine:
    """One line about something that happened: a drift event now, lifecycle events later.

    ``level`` picks the colour and the tag (``alarm``, ``warning``, ``ok``, ``info``);
    ``text`` is what follows the tag, without colour.
    """

    level: str
    text: str


_TAGS = {
    "alarm": "ALARM",
    "warning": "warning",
    "ok": "cleared",
    "model": "model",
    "info": "info",
}


def _thresholds(settings: Settings, signal: str, statistic: str) -> tuple[float, float] | None:
    plural = {"feature": "features", "prediction": "predictions", "label": "labels"}
    table = settings.drift.thresholds_for(plural.get(signal, signal))
    return table.get(statistic)


def drift_line(
    ev: DriftEvent, settings: Settings, switch: tuple[int, int] | None = None
) -> EventLine:
    """The line the demo prints for a drift event.

    Window statistics show the threshold of the level reached (a warning shows the warning
    threshold; a clear, the warning threshold it fell under). Concept events show the
    model's recent error against its error before. ``switch`` is ``(number, offset)`` of the
    latest true switch, to say how long after it the event came.

    Examples
    --------
    >>> from streamer.settings import load_settings
    >>> ev = DriftEvent("label", "label", "psi", 0.13, 0.25, "warning", "events", 0,
    ...                 (0, 1999), (9250, 10249), "champion", 1, 0.0, 10250)
    >>> drift_line(ev, load_settings(env={}), (1, 10000)).text
    'p0 @ 10,249  label    psi 0.13 ≥ 0.1 (alarm at 0.25) · 249 after switch 1'
    """
    offset = ev.current_offsets[1]
    # Prediction and label drift watch one column named after the signal: no need to say it.
    what = ev.statistic if ev.feature in ("", ev.signal) else f"{ev.feature} {ev.statistic}"
    if ev.signal == "concept":
        detail = f"error {number(ev.value)}, was {number(ev.threshold)}"
    else:
        pair = _thresholds(settings, ev.signal, ev.statistic)
        warn, alarm = pair if pair is not None else (ev.threshold, ev.threshold)
        if ev.level == "alarm":
            detail = f"{number(ev.value)} ≥ {number(alarm)}"
        elif ev.level == "warning":
            detail = f"{number(ev.value)} ≥ {number(warn)} (alarm at {number(alarm)})"
        else:
            detail = f"{number(ev.value)} < {number(warn)}"
    text = f"p{ev.partition} @ {offset:,}  {ev.signal:<8} {what} {detail}"
    if switch is not None and ev.level != "ok":
        text += f" · {offset - switch[1]:,} after switch {switch[0]}"
    return EventLine(ev.level, text)


def lifecycle_line(decision: Any, switch: tuple[int, int] | None = None) -> EventLine:
    """The line for a model lifecycle decision (a :class:`streamer.lifecycle.Decision`).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> d = SimpleNamespace(decision="promoted", partition=0, offset=10_400, role="champion",
    ...                     version=2, reason="promotion", test="mcnemar", statistic=0.0081,
    ...                     gain=0.047, compared=300)
    >>> lifecycle_line(d, (1, 10_000)).text
    'p0 @ 10,400  promoted v2 (mcnemar p=0.0081, +0.047 over 300) · 400 after switch 1'
    """
    text = f"p{decision.partition} @ {decision.offset:,}  {decision.decision} v{decision.version}"
    if decision.statistic is not None and decision.gain is not None:
        text += (
            f" ({decision.test} p={decision.statistic:.2g}, {decision.gain:+.3f} over "
            f"{decision.compared})"
        )
    else:
        text += f" ({decision.reason})"
    # How long after the switch a challenger started or won; a retirement is the end of a
    # fixed wait, not a reaction to the stream.
    if switch is not None and decision.decision != "retired":
        text += f" · {decision.offset - switch[1]:,} after switch {switch[0]}"
    return EventLine("model", text)


def number(v: float) -> str:
    """A value in three significant digits, or ``n/a``."""
    return "n/a" if not math.isfinite(v) else f"{v:.3g}"


# -- displays ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartitionRow:
    """One partition's line of the table."""

    partition: int
    events: int
    metrics: dict[str, float]
    concept: str
    version: int


@dataclass(frozen=True, slots=True)
class Status:
    """A snapshot of the run for the display."""

    elapsed: float
    events: int
    rate: float | None
    dead: int
    alarms: int
    warnings: int
    cleared: int
    partitions: list[PartitionRow]
    model: str


class PlainDisplay:
    """Plain lines, for pipes, files and CI logs: a status line a second, and event lines."""

    live = False

    def __init__(self, out: TextIO, every: float = 1.0) -> None:
        self.out = out
        self.every = every
        self._last = -math.inf

    def due(self, now: float) -> bool:
        return now - self._last >= self.every

    def status(self, st: Status, now: float) -> None:
        self._last = now
        rate = f"{st.rate:>7,.0f}/s" if st.rate is not None else "      —/s"
        head = (
            f"[{st.elapsed:6.1f}s] events {st.events:>9,} {rate}  dead letters {st.dead:,}  "
            f"drift alarms {st.alarms} warnings {st.warnings} cleared {st.cleared}"
        )
        self._write(head)
        for row in st.partitions:
            metrics = "  ".join(f"{k} {v:.3f}" for k, v in row.metrics.items())
            self._write(
                f"{'':10}p{row.partition} rolling {metrics} · concept {row.concept} · "
                f"{st.model} v{row.version}"
            )

    def event(self, line: EventLine, elapsed: float) -> None:
        self._write(f"[{elapsed:6.1f}s] {_TAGS.get(line.level, line.level):<8} {line.text}")

    def message(self, text: str) -> None:
        for part in text.splitlines() or [""]:
            self._write(part)

    def close(self) -> None:
        self.out.flush()

    def _write(self, line: str) -> None:
        # Never cut: a file or a pipe has no width, and a cut line loses what it ends with.
        print(line, file=self.out, flush=True)


_COLOURS = {
    "model": "\x1b[1;36m",
    "alarm": "\x1b[1;31m",
    "warning": "\x1b[33m",
    "ok": "\x1b[32m",
    "info": "\x1b[36m",
    "dim": "\x1b[2m",
    "bold": "\x1b[1m",
}
_RESET = "\x1b[0m"
_CONCEPT_LEVEL = {"stable": "ok", "warning": "warning", "drift": "alarm"}


class LiveDisplay:
    """A table redrawn in place at the bottom of a terminal; event lines scroll above it.

    Each redraw moves the cursor back up over the previous table, clears to the end of the
    screen, prints the new event lines, then the table again. The table's lines are cut to the
    terminal's width so that none wraps (a wrapped line would break the count of lines to move
    up); event, message and log lines print above the table and are never cut (the terminal
    wraps them), so that a command or an offset they end with stays whole. Colour follows the
    ``NO_COLOR`` convention.
    """

    live = True

    def __init__(self, out: TextIO, every: float = 0.5, *, colour: bool = True) -> None:
        self.out = out
        self.every = every
        self.colour = colour
        self._last = -math.inf
        self._table: list[str] = []
        self._pending: list[str] = []

    def due(self, now: float) -> bool:
        return now - self._last >= self.every or bool(self._pending)

    def _c(self, style: str, text: str) -> str:
        return f"{_COLOURS[style]}{text}{_RESET}" if self.colour else text

    def _width(self) -> int:
        # One column short of the edge: a line that fills the last column wraps on some
        # terminals.
        return max(shutil.get_terminal_size((WIDTH, 24)).columns - 1, 1)

    def status(self, st: Status, now: float) -> None:
        self._last = now
        width = self._width()
        rate = f"{st.rate:,.0f}/s" if st.rate is not None else "—/s"
        metric_names = list(st.partitions[0].metrics) if st.partitions else []
        lines = [
            self._c("dim", "─" * min(width, WIDTH)),
            f" {self._c('bold', f'{st.events:,}')} events  {rate:>9}   "
            f"dead letters {st.dead:,}   drift "
            + self._c("alarm" if st.alarms else "dim", f"alarms {st.alarms}")
            + f" · warnings {st.warnings} · cleared {st.cleared}   {st.elapsed:.1f} s",
            self._c(
                "dim",
                f" {'partition':<10}{'events':>10}  "
                + "".join(f"{m[:10]:>11}" for m in metric_names)
                + f"  {'concept':<9} model",
            ),
        ]
        for row in st.partitions:
            concept = self._c(_CONCEPT_LEVEL.get(row.concept, "dim"), f"{row.concept:<9}")
            lines.append(
                f" {'p' + str(row.partition):<10}{row.events:>10,}  "
                + "".join(f"{row.metrics.get(m, math.nan):>11.3f}" for m in metric_names)
                + f"  {concept} {st.model} v{row.version}"
            )
        self._redraw([_cut(line, width) for line in lines])

    def event(self, line: EventLine, elapsed: float) -> None:
        tag = self._c(line.level if line.level in _COLOURS else "info", f"{_TAGS[line.level]:<8}")
        self._pending.append(f"{self._c('dim', f'[{elapsed:6.1f}s]')} {tag} {line.text}")

    def message(self, text: str) -> None:
        self._pending.extend(text.splitlines() or [""])
        if not self._table:
            self._redraw([])

    def close(self) -> None:
        # The last table stays on screen, above whatever comes next.
        self._redraw(self._table)
        self._table = []
        self.out.flush()

    def _redraw(self, table: list[str]) -> None:
        parts = []
        if self._table:
            parts.append(f"\x1b[{len(self._table)}F\x1b[J")
        parts.extend(line + "\n" for line in self._pending)
        parts.extend(line + "\n" for line in table)
        self._pending = []
        self._table = table
        self.out.write("".join(parts))
        self.out.flush()


def _cut(line: str, width: int) -> str:
    """Cut a line to ``width`` visible characters, keeping its colour codes whole."""
    out, visible, i = [], 0, 0
    while i < len(line):
        if line[i] == "\x1b":
            end = line.find("m", i)
            if end < 0:
                break
            out.append(line[i : end + 1])
            i = end + 1
            continue
        if visible >= width:
            i += 1
            continue
        out.append(line[i])
        visible += 1
        i += 1
    return "".join(out)


class LogToDisplay(logging.Handler):
    """Log lines go through the live display, so they print above the table, not into it."""

    def __init__(self, display: LiveDisplay, formatter: logging.Formatter | None) -> None:
        super().__init__()
        self.display = display
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.display.message(self.display._c("dim", self.format(record)))
        except Exception:
            self.handleError(record)


def make_display(out: TextIO) -> LiveDisplay | PlainDisplay:
    """A live display when ``out`` is a terminal (and ``TERM`` is not ``dumb``), else plain."""
    tty = hasattr(out, "isatty") and out.isatty() and os.environ.get("TERM") != "dumb"
    if not tty:
        return PlainDisplay(out)
    return LiveDisplay(out, colour="NO_COLOR" not in os.environ)
