"""A plot of a run: a model metric over offsets, the true drift points, and the drift reported.

``streamer demo --plot FILE`` writes one at the end. No plotting library: the figure is an
inline SVG, in a self-contained HTML page (``.html``, with a table of the drift events) or on
its own (``.svg``). Both are well-formed XML, so tools and tests can read them back; markers
carry their details in a tooltip (``<title>``) and in ``data-`` attributes.

Examples
--------
>>> plot = Plot("a run", "Accuracy", 1000,
...             series={0: [(499, 0.9), (999, 0.95), (1499, 0.7), (1999, 0.9)]},
...             switches={0: [1000]},
...             marks=[Mark(1.0, 0, 1089, "alarm", "concept", "", "DualADWIN", 0.3,
...                         "89 after switch 1")])
>>> svg = plot.svg()
>>> svg.count('class="metric"'), svg.count('class="switch"'), svg.count('class="drift alarm')
(1, 1, 1)
>>> "89 after switch 1" in plot.html()
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from streamer.errors import ConfigError

__all__ = ["SUFFIXES", "Mark", "Plot", "check_plot_path"]

#: File name endings a plot can be written as.
SUFFIXES = (".html", ".htm", ".svg")

_PALETTE = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f")
_CONCEPT = {"alarm": "#d62728", "warning": "#ff7f0e"}
_WINDOW = {"alarm": "#9467bd", "warning": "#c5b0d5"}


def check_plot_path(path: str | Path, setting: str = "--plot") -> None:
    """Refuse a plot file that cannot be written, before a run starts rather than after."""
    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        raise ConfigError(
            setting,
            f"{p}: write .html (a self-contained page) or .svg; a PNG would need a plotting "
            "library that streamer does not depend on (open the .html, or convert the .svg)",
        )
    if not p.parent.is_dir():
        raise ConfigError(setting, f"folder {str(p.parent)!r} does not exist")


@dataclass(frozen=True, slots=True)
class Mark:
    """A drift event on the plot: when and where, what, and how long after a true switch."""

    seconds: float
    partition: int
    offset: int
    level: str
    signal: str
    feature: str
    statistic: str
    value: float
    lag: str = ""


def _number(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.3g}"


def _ticks(low: float, high: float, n: int) -> list[float]:
    raw = max(high - low, 1e-9) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


@dataclass
class Plot:
    """A metric per partition over offsets, true switches, and drift marks.

    Parameters
    ----------
    title
        Heading of the page and title of the figure.
    metric, window
        Name of the metric plotted and the size of its rolling window.
    series
        Partition -> ``(offset, value)`` points, in offset order.
    switches
        Partition -> offsets where the true concept switched.
    marks
        Drift events (``ok`` clears are left out of the figure and the table).
    """

    title: str
    metric: str
    window: int
    series: Mapping[int, Sequence[tuple[int, float]]] = field(default_factory=dict)
    switches: Mapping[int, Sequence[int]] = field(default_factory=dict)
    marks: Sequence[Mark] = ()

    def render(self, path: str | Path) -> str:
        """The document for ``path``: an SVG file, or an HTML page."""
        if Path(path).suffix.lower() == ".svg":
            return '<?xml version="1.0" encoding="utf-8"?>\n' + self.svg() + "\n"
        return self.html()

    def write(self, path: str | Path) -> None:
        Path(path).write_text(self.render(path), encoding="utf-8")

    def svg(self) -> str:
        """The figure, as an ``<svg>`` element."""
        w, h = 960, 420
        left, right, top, bottom = 64, 24, 70, 52
        points = [pt for s in self.series.values() for pt in s]
        values = [v for _, v in points]
        switch_offsets = [(p, o) for p, offsets in sorted(self.switches.items()) for o in offsets]
        x_max = max([o for o, _ in points] + [o for _, o in switch_offsets] + [1])
        y_low, y_high = 0.0, 1.0
        if values:
            lo, hi = min(values), max(values)
            y_low = math.floor((lo - 0.02 * max(hi - lo, 0.1)) * 10) / 10
            y_high = max(hi, 1.0) if self.metric == "Accuracy" else hi + 0.05 * max(hi - lo, 0.1)
            if lo >= 0:
                y_low = max(y_low, 0.0)
        if y_high <= y_low:
            y_high = y_low + 1.0
        plot_w, plot_h = w - left - right, h - top - bottom

        def x(o: float) -> float:
            return left + plot_w * o / x_max

        def y(v: float) -> float:
            return top + plot_h * (1 - (v - y_low) / (y_high - y_low))

        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
            f"<title>{escape(self.title)}</title>",
            f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" '
            'stroke="#ccc"/>',
        ]
        for t in _ticks(y_low, y_high, 5):
            out.append(
                f'<line x1="{left}" x2="{w - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                f'stroke="#eee"/><text x="{left - 6}" y="{y(t) + 4:.1f}" '
                f'text-anchor="end">{t:.2f}</text>'
            )
        for t in _ticks(0, x_max, 6):
            out.append(
                f'<text x="{x(t):.1f}" y="{h - bottom + 16}" text-anchor="middle">{t:,.0f}</text>'
            )
        mid = top + plot_h / 2
        out += [
            f'<text x="{left + plot_w / 2}" y="{h - 12}" text-anchor="middle">'
            "offset in the partition (events)</text>",
            f'<text x="16" y="{mid}" text-anchor="middle" transform="rotate(-90 16 {mid})">'
            f"rolling {escape(self.metric)} ({self.window:,} labelled events)</text>",
        ]
        one = len(self.series) <= 1 and len(self.switches) <= 1
        for p, o in switch_offsets:
            colour = "#555" if one else _PALETTE[p % len(_PALETTE)]
            out.append(
                f'<line class="switch" data-partition="{p}" data-offset="{o}" '
                f'x1="{x(o):.1f}" x2="{x(o):.1f}" y1="{top}" y2="{h - bottom}" '
                f'stroke="{colour}" stroke-dasharray="6 4">'
                f"<title>true concept switch: p{p} offset {o:,}</title></line>"
            )
        for p, series in sorted(self.series.items()):
            pts = " ".join(f"{x(o):.1f},{y(v):.1f}" for o, v in series)
            out.append(
                f'<polyline class="metric" data-partition="{p}" fill="none" '
                f'stroke="{_PALETTE[p % len(_PALETTE)]}" stroke-width="1.5" points="{pts}">'
                f"<title>p{p} rolling {escape(self.metric)}</title></polyline>"
            )
        for m in self.marks:
            if m.level not in _CONCEPT:
                continue
            what = f"{m.feature} {m.statistic}" if m.feature else m.statistic
            tip = escape(
                f"p{m.partition} @ {m.offset:,}: {m.level}, {m.signal} {what} = "
                f"{_number(m.value)}" + (f", {m.lag}" if m.lag else "")
            )
            attrs = (
                f'data-partition="{m.partition}" data-offset="{m.offset}" '
                f'data-signal="{escape(m.signal)}"'
            )
            cx = x(m.offset)
            if m.signal == "concept":
                # Warnings on a row of their own above the alarms, so neither hides the other.
                size, base = (7.0, top - 2) if m.level == "alarm" else (5.0, top - 22)
                shape = (
                    f"{cx - size:.1f},{base - 1.6 * size:.1f} {cx + size:.1f},"
                    f"{base - 1.6 * size:.1f} {cx:.1f},{base:.1f}"
                )
                out.append(
                    f'<polygon class="drift {m.level} concept" {attrs} points="{shape}" '
                    f'fill="{_CONCEPT[m.level]}"><title>{tip}</title></polygon>'
                )
            else:
                row = h - bottom - (10 if m.level == "alarm" else 18)
                out.append(
                    f'<rect class="drift {m.level} window" {attrs} x="{cx - 3:.1f}" y="{row}" '
                    f'width="6" height="6" fill="{_WINDOW[m.level]}"><title>{tip}</title></rect>'
                )
        legend = [
            (_CONCEPT["alarm"], "▼ concept alarm"),
            (_CONCEPT["warning"], "▼ concept warning"),
            (_WINDOW["alarm"], "■ feature, prediction or label alarm (light: warning)"),
            ("#555", "┆ true switch"),
        ]
        if not one:
            legend += [(_PALETTE[p % len(_PALETTE)], f"— p{p}") for p in sorted(self.series)[:6]]
        lx = float(left)
        for colour, text in legend:
            out.append(f'<text x="{lx:.0f}" y="18" fill="{colour}">{escape(text)}</text>')
            lx += 16 + 6.5 * len(text)
        out.append("</svg>")
        return "\n".join(out)

    def html(self) -> str:
        """A self-contained page: the figure and a table of the drift warnings and alarms."""
        marks = [m for m in self.marks if m.level != "ok"]
        head = "".join(
            f"<th>{h}</th>"
            for h in (
                "time",
                "partition",
                "offset",
                "level",
                "signal",
                "feature",
                "statistic",
                "value",
                "after the true switch",
            )
        )
        rows = [
            "<tr>"
            + "".join(
                f"<td>{escape(c)}</td>"
                for c in (
                    f"{m.seconds:.1f} s",
                    f"p{m.partition}",
                    f"{m.offset:,}",
                    m.level,
                    m.signal,
                    m.feature,
                    m.statistic,
                    _number(m.value),
                    m.lag,
                )
            )
            + "</tr>"
            for m in marks
        ]
        return "\n".join(
            [
                "<!DOCTYPE html>",
                '<html xmlns="http://www.w3.org/1999/xhtml" lang="en">',
                '<head><meta charset="utf-8"/>',
                f"<title>{escape(self.title)}</title>",
                "<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}"
                "table{border-collapse:collapse}th,td{padding:2px 10px;text-align:left}"
                "tr:nth-child(even){background:#f4f4f4}</style></head>",
                "<body>",
                f"<h1>{escape(self.title)}</h1>",
                f"<p>Rolling {escape(self.metric)} of each partition's model over "
                f"{self.window:,} labelled events, where the stream truly switched (dashed), "
                "and the drift the worker reported. Hover a marker for its details.</p>",
                self.svg(),
                f"<h2>Drift warnings and alarms ({len(marks)})</h2>",
                f"<table><thead><tr>{head}</tr></thead><tbody>",
                *rows,
                "</tbody></table>",
                "</body></html>",
                "",
            ]
        )
