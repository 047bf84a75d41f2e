"""The HTML drift report: what a stream (or a data set) saw, as one page to share.

``streamer report`` builds it from either source:

* **a drift-events topic**, read from the start to its end (:func:`read_drift_events`; JSON or
  Avro records, ``schemas/drift_event.avsc``): every level change the workers published, per
  partition — :func:`render_events`;
* **a reference and a CSV**: a pinned reference file (``streamer drift-reference``) compared
  with current data through the public API (:func:`compare_rows`, then :func:`render_report`,
  which any :class:`~streamer.monitoring.Report` can use).

The page is self-contained: inline CSS, inline SVG plots, no script and nothing fetched. It has
a summary (columns that reached alarm, and since when), a table of every statistic (latest
value, thresholds, latest and worst level, first alarm), the concept detector's warnings and
drifts, and one section per column with the statistic over offsets against its thresholds and,
for a data set, the reference and current histograms.

Every name on the page comes from data (feature names, categories, topics) and is escaped;
nothing from data reaches an attribute other than as escaped text, a class or an id. The output
depends only on its input: no clock, no random ids.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamer.monitoring import LEVELS, SIGNALS, Histogram, Monitor, Report, iter_rows

__all__ = [
    "DriftEventLog",
    "compare_rows",
    "decode_drift_event",
    "read_drift_events",
    "render_events",
    "render_report",
]

log = logging.getLogger(__name__)

# Points drawn per line chart; longer series keep the largest value of each stretch of offsets,
# so that a spike still shows and the page stays small.
_MAX_POINTS = 300
# Characters of a histogram bin label drawn under its bars (the full label is in the tooltip).
_LABEL_CHARS = 16
_SIGNAL_ORDER = {s: i for i, s in enumerate(SIGNALS)}
_LEVEL_RANK = {level: i for i, level in enumerate(LEVELS)}
# Shown for a value that is missing or not a finite number (an en dash).
_NONE = "\u2013"


# ---------------------------------------------------------------------------------------------
# Reading a drift-events topic.


@dataclass
class DriftEventLog:
    """Drift events read from a topic, and the records that could not be read as one.

    Attributes
    ----------
    topic
        The topic read.
    events
        Decoded drift events (the fields of ``schemas/drift_event.avsc``), by partition and
        offset.
    undecodable
        ``(partition, offset, why)`` of each record that was not a drift event.
    """

    topic: str
    events: list[dict[str, Any]] = field(default_factory=list)
    undecodable: list[tuple[int, int, str]] = field(default_factory=list)


def decode_drift_event(value: bytes | None, fmt: str = "auto") -> dict[str, Any]:
    """One drift-event record's value as a dict.

    Parameters
    ----------
    value
        The record value.
    fmt
        ``json``, ``avro`` (plain Avro with ``schemas/drift_event.avsc``, as the worker writes
        it), or ``auto``: JSON when the value starts with ``{`` (no Avro drift event can: its
        first byte is the length of a string, and ``{`` would be a negative one).

    Raises
    ------
    streamer.errors.RecordError
        If the value is empty or not a drift event in that format.
    """
    from streamer.decode import AvroDecoder, JsonDecoder
    from streamer.errors import RecordError
    from streamer.outputs import DRIFT_EVENT_SCHEMA

    if not value:
        raise RecordError("decode", "undecodable", "empty record value")
    if fmt == "auto":
        fmt = "json" if value.lstrip()[:1] == b"{" else "avro"
    if fmt == "json":
        return JsonDecoder().decode(value)
    if fmt == "avro":
        return AvroDecoder(DRIFT_EVENT_SCHEMA, framing="plain").decode(value)
    raise ValueError(f"fmt must be auto, json or avro, got {fmt!r}")


def read_drift_events(
    kafka_settings: Any, topic: str, *, fmt: str = "auto", timeout: float = 60.0
) -> DriftEventLog:
    """Read a drift-events topic from the start to its end, every partition.

    The end is each partition's high watermark when reading starts, then whatever arrives
    until a read brings nothing (:func:`streamer.kafka.read_to_end`: some Kafka-compatible
    brokers report the start of the last record batch as the end; transaction markers of an
    exactly-once worker are passed over).

    Parameters
    ----------
    kafka_settings
        The ``[kafka]`` settings (brokers, security).
    topic
        The drift-events topic.
    fmt
        ``auto``, ``json`` or ``avro`` (see :func:`decode_drift_event`).
    timeout
        Seconds before giving up.

    Raises
    ------
    streamer.errors.BrokerError
        If the topic does not exist, or its end was not reached within ``timeout``.
    """
    from streamer import kafka
    from streamer.errors import RecordError

    # A consumer's metadata request does not create the topic, and names it when it is absent.
    probe = kafka.make_reader(kafka_settings, topic, timeout=timeout)
    try:
        partitions = sorted(tp.partition for tp in probe.assignment())
    finally:
        probe.close()
    records = kafka.read_to_end(kafka_settings, topic, partitions, timeout=timeout)
    out = DriftEventLog(topic)
    for m in sorted(records, key=_where):
        try:
            out.events.append(decode_drift_event(m.value(), fmt))
        except RecordError as exc:
            out.undecodable.append((*_where(m), exc.message))
    if out.undecodable:
        p, o, why = out.undecodable[0]
        log.warning(
            "%d record(s) of %s are not drift events (first: [%d]@%d: %s)",
            len(out.undecodable),
            topic,
            p,
            o,
            why,
        )
    return out


def _where(m: Any) -> tuple[int, int]:
    """A consumed record's partition and offset (always set on records read from a topic)."""
    p, o = m.partition(), m.offset()
    return (-1 if p is None else p, -1 if o is None else o)


# ---------------------------------------------------------------------------------------------
# A reference file and current rows.


def compare_rows(
    reference: Mapping[str, Any],
    rows: Iterable[Mapping[str, Any]],
    settings: Any = None,
) -> Report:
    """Current rows against a pinned reference file's snapshots, as ``streamer report --csv``.

    The windows are the settings' (``drift.windows.window_size``, ``every``); a data set
    shorter than one window is compared whole, as one window. Features come from the reference
    (or ``fields.features``); the ``fields.id`` and ``fields.time`` columns are ignored; the
    ``fields.label`` column is compared with the reference's labels when both have it. The
    ``drift.thresholds.features`` thresholds apply to the features and the label.

    Parameters
    ----------
    reference
        A reference file's content (``{"features": …, "predictions": …, "labels": …}``).
    rows
        The current data.
    settings
        :class:`~streamer.settings.Settings`, or None for the defaults.
    """
    from streamer.settings import load_settings

    s = settings if settings is not None else load_settings(env={})
    data = list(iter_rows(rows))
    if not data:
        raise ValueError("no current rows to compare")
    w = s.drift.windows
    window = min(w.window_size or 1000, len(data))
    every = min(w.every or 250, window) if window < len(data) else window
    labels = reference.get("labels") or {}
    label = s.fields.label if s.fields.label and any(s.fields.label in r for r in data) else None
    if label is not None and not labels:
        label = None  # nothing to compare it with
    task = "regression" if "label" in labels.get("numeric", {}) else "classification"
    features = list(s.fields.features) or None
    monitor = Monitor(
        features,
        categorical=list(s.fields.categorical) if features else (),
        label=label,
        ignore=[c for c in (s.fields.id, s.fields.time) if c],
        task=task,
        reference=reference,
        window_size=window,
        every=every,
        thresholds=s.drift.thresholds_for("features"),
        schema=s.drift.schema_drift,
        detector=None,
    )
    return monitor.observe(data)


# ---------------------------------------------------------------------------------------------
# The page model: series of a statistic over offsets, concept changes, histograms.


@dataclass
class _Series:
    group: str
    signal: str
    feature: str
    statistic: str
    warning: float
    alarm: float
    points: list[tuple[int, float, str]] = field(default_factory=list)  # offset, value, level

    @property
    def worst(self) -> str:
        return max((lv for _, _, lv in self.points), key=lambda lv: _LEVEL_RANK.get(lv, -1))

    def first(self, level: str) -> int | None:
        return next((o for o, _, lv in self.points if lv == level), None)


@dataclass
class _Concept:
    group: str
    detector: str
    level: str
    first_offset: int | None
    offset: int | None
    error: float
    baseline: float
    model: str


@dataclass
class _Page:
    title: str
    source: str
    facts: list[tuple[str, str]]
    series: list[_Series]
    concept: list[_Concept]
    histograms: dict[tuple[str, str, str], Histogram]
    notes: list[str]
    offset_name: str  # "row" or "offset"
    value_name: str  # what the value column of the table holds
    points_name: str  # what the points of a series are


def _float(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return math.nan
    return float(v)


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _text(v: Any) -> str:
    return v if isinstance(v, str) else "" if v is None else str(v)


def _page_from_report(report: Report, title: str, source: str) -> _Page:
    series: dict[tuple[str, str, str, str], _Series] = {}
    for e in report.evaluations:
        key = ("", e.signal, e.feature, e.statistic)
        s = series.get(key)
        if s is None:
            s = series[key] = _Series("", e.signal, e.feature, e.statistic, e.warning, e.alarm)
        s.points.append((e.current_offsets[1], e.value, e.level))
    concept = [
        _Concept("", c.detector, c.level, c.first_offset, c.offset, c.error, c.baseline, "")
        for c in report.concept
    ]
    facts = [
        ("rows", f"{report.events:,}"),
        ("evaluations", f"{len({e.current_offsets[1] for e in report.evaluations}):,}"),
        ("statistics", f"{len(series):,}"),
        ("concept changes", f"{len(concept):,}"),
    ]
    hist = {("", h.signal, h.feature): h for h in report.histograms}
    return _Page(
        title,
        source,
        facts,
        list(series.values()),
        concept,
        hist,
        [],
        "row",
        "latest value",
        "evaluations",
    )


def _page_from_events(
    events: Sequence[Mapping[str, Any]],
    title: str,
    source: str,
    undecodable: Sequence[tuple[int, int, str]],
) -> _Page:
    series: dict[tuple[str, str, str, str], _Series] = {}
    concept: list[_Concept] = []
    groups: dict[str, None] = {}
    models: dict[str, None] = {}
    for ev in events:
        group = f"{_text(ev.get('topic'))}/{_text(ev.get('partition'))}"
        groups[group] = None
        signal = _text(ev.get("signal"))
        model = f"{_text(ev.get('model'))} v{_text(ev.get('version'))}"
        models[model] = None
        level = _text(ev.get("level"))
        if signal == "concept":
            concept.append(
                _Concept(
                    group,
                    _text(ev.get("statistic")),
                    level,
                    _int(ev.get("current_first_offset")),
                    _int(ev.get("current_last_offset")),
                    _float(ev.get("value")),
                    _float(ev.get("threshold")),
                    model,
                )
            )
            continue
        key = (group, signal, _text(ev.get("feature")), _text(ev.get("statistic")))
        s = series.get(key)
        if s is None:
            # Drift events carry the alarm threshold only.
            s = series[key] = _Series(*key, math.nan, _float(ev.get("threshold")))
        offset = _int(ev.get("current_last_offset"))
        s.points.append((offset if offset is not None else -1, _float(ev.get("value")), level))
    facts = [
        ("drift events", f"{len(events):,}"),
        ("partitions", f"{len(groups):,}"),
        ("statistics that changed level", f"{len(series):,}"),
        ("concept changes", f"{len(concept):,}"),
        ("models", ", ".join(models) or _NONE),
    ]
    notes = []
    if undecodable:
        shown = "; ".join(f"[{p}]@{o}: {why}" for p, o, why in undecodable[:5])
        more = f" (and {len(undecodable) - 5} more)" if len(undecodable) > 5 else ""
        notes.append(
            f"{len(undecodable)} record(s) of the topic are not drift events and are not "
            f"shown: {shown}{more}"
        )
    if not events:
        notes.append("The topic holds no drift event: no statistic left the ok level.")
    return _Page(
        title,
        source,
        facts,
        list(series.values()),
        concept,
        {},
        notes,
        "offset",
        "value at the last change",
        "level changes",
    )


# ---------------------------------------------------------------------------------------------
# Rendering. Every string from data goes through _e; numbers through _num.


def _e(v: Any) -> str:
    return html.escape(_text(v), quote=True)


def _num(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else _NONE


def _offset(v: int | None) -> str:
    return _NONE if v is None or v < 0 else f"{v:,}"


def _level(level: str) -> str:
    cls = level if level in _LEVEL_RANK else "unknown"
    return f'<span class="lv lv-{cls}">{_e(level)}</span>'


_CSS = """
.streamer-report{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
 color:#1d2433;max-width:1200px;margin:0 auto;padding:16px}
.streamer-report h1{font-size:22px;margin:0 0 4px}
.streamer-report h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dde6}
.streamer-report h3{font-size:15px;margin:0;display:inline}
.streamer-report .source{color:#5b6579;margin:0 0 12px}
.streamer-report .facts{display:flex;flex-wrap:wrap;gap:8px;padding:0;margin:0 0 12px}
.streamer-report .facts li{list-style:none;background:#f2f4f8;border-radius:6px;padding:6px 10px}
.streamer-report .facts b{display:block;font-size:16px}
.streamer-report table{border-collapse:collapse;width:100%;font-size:13px}
.streamer-report th,.streamer-report td{text-align:left;padding:4px 8px;
 border-bottom:1px solid #e6e9ef;vertical-align:top}
.streamer-report td.n{text-align:right;font-variant-numeric:tabular-nums}
.streamer-report .lv{border-radius:4px;padding:1px 6px;font-size:12px;white-space:nowrap}
.streamer-report .lv-ok{background:#e3f4e8;color:#1b6b35}
.streamer-report .lv-warning{background:#fff1d6;color:#8a5300}
.streamer-report .lv-alarm{background:#fde2e1;color:#a61b1b}
.streamer-report .lv-unknown{background:#eceef2;color:#3d4556}
.streamer-report details{border:1px solid #e0e4eb;border-radius:6px;margin:8px 0;padding:6px 10px}
.streamer-report summary{cursor:pointer}
.streamer-report .charts{display:flex;flex-wrap:wrap;gap:12px;margin-top:8px}
.streamer-report figure{margin:0}
.streamer-report figcaption{font-size:12px;color:#5b6579}
.streamer-report figcaption .warning{color:#8a5300;border-bottom:2px dashed #e0a100}
.streamer-report figcaption .alarm{color:#a61b1b;border-bottom:2px dashed #cc2b2b}
.streamer-report .note{background:#fff8e5;border-left:3px solid #e0a100;padding:6px 10px}
.streamer-report svg{background:#fbfcfd;border:1px solid #eef0f4}
.streamer-report svg text{font:10px system-ui,sans-serif;fill:#5b6579}
.streamer-report svg .line{fill:none;stroke:#3465a4;stroke-width:1.5}
.streamer-report svg .warning{stroke:#e0a100;stroke-dasharray:4 3}
.streamer-report svg .alarm{stroke:#cc2b2b;stroke-dasharray:4 3}
.streamer-report svg .axis{stroke:#9aa3b5}
.streamer-report svg .p-ok{fill:#3465a4}
.streamer-report svg .p-warning{fill:#e0a100}
.streamer-report svg .p-alarm{fill:#cc2b2b}
.streamer-report svg .p-unknown{fill:#5b6579}
.streamer-report svg .ref{fill:#aab3c2}
.streamer-report svg .band-ok{fill:#cfe9d7}
.streamer-report svg .band-warning{fill:#f5c451}
.streamer-report svg .band-alarm{fill:#e05252}
.streamer-report svg .cur{fill:#3465a4}
"""


def _downsample(points: list[tuple[int, float, str]]) -> list[tuple[int, float, str]]:
    """At most _MAX_POINTS points: of each stretch of offsets, the one with the largest value."""
    finite = [p for p in points if math.isfinite(p[1]) and p[0] >= 0]
    if len(finite) <= _MAX_POINTS:
        return finite
    lo, hi = finite[0][0], finite[-1][0]
    width = (hi - lo) / _MAX_POINTS or 1
    kept: dict[int, tuple[int, float, str]] = {}
    for p in finite:
        b = min(int((p[0] - lo) / width), _MAX_POINTS - 1)
        if b not in kept or p[1] > kept[b][1]:
            kept[b] = p
    return [kept[b] for b in sorted(kept)]


def _line_chart(s: _Series, offset_name: str) -> str:
    """The statistic over offsets, points coloured by level, dashed warning and alarm lines."""
    w, h, left, right, top, bottom = 330, 150, 44, 12, 10, 28
    pts = _downsample(s.points)
    thresholds = [
        (c, t) for c, t in (("warning", s.warning), ("alarm", s.alarm)) if math.isfinite(t)
    ]
    if pts:
        x0, x1 = pts[0][0], pts[-1][0]
    else:
        x0, x1 = 0, 1
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    ymax = max([p[1] for p in pts] + [t for _, t in thresholds] + [0.0]) * 1.1 or 1.0

    def x(o: float) -> float:
        return left + (o - x0) / (x1 - x0) * (w - left - right)

    def y(v: float) -> float:
        return h - bottom - v / ymax * (h - top - bottom)

    label = f"{s.feature} {s.statistic} over {offset_name}s"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{_e(label)}">',
        f'<line class="axis" x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" />',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" />',
        f'<text x="{left - 4}" y="{h - bottom + 3}" text-anchor="end">0</text>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{_num(ymax)}</text>',
        f'<text x="{left}" y="{h - bottom + 14}">{_offset(int(x0)) if pts else ""}</text>',
        f'<text x="{w - right}" y="{h - bottom + 14}" text-anchor="end">'
        f"{_offset(int(x1)) if pts else ''}</text>",
        f'<text x="{(left + w - right) / 2:.1f}" y="{h - 4}" text-anchor="middle">'
        f"{_e(offset_name)}</text>",
    ]
    for cls, t in thresholds:
        yy = y(t)
        out.append(
            f'<line class="{cls}" x1="{left}" y1="{yy:.1f}" x2="{w - right}" y2="{yy:.1f}">'
            f"<title>{cls} {_num(t)}</title></line>"
        )
    if len(pts) > 1:
        coords = " ".join(f"{x(o):.1f},{y(v):.1f}" for o, v, _ in pts)
        out.append(f'<polyline class="line" points="{coords}" />')
    for o, v, lv in pts:
        cls = lv if lv in _LEVEL_RANK else "unknown"
        r = 2 if cls == "ok" else 3
        out.append(
            f'<circle class="p-{cls}" cx="{x(o):.1f}" cy="{y(v):.1f}" r="{r}">'
            f"<title>{_e(offset_name)} {_offset(o)}: {_num(v)} ({_e(lv)})</title></circle>"
        )
    if not pts:
        out.append(
            f'<text x="{(left + w - right) / 2:.1f}" y="{h / 2:.1f}" text-anchor="middle">'
            "no finite value</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _threshold_caption(s: _Series) -> str:
    parts = [
        f'<span class="{cls}">{cls} {_num(t)}</span>'
        for cls, t in (("warning", s.warning), ("alarm", s.alarm))
        if math.isfinite(t)
    ]
    return " &#183; " + " &#183; ".join(parts) if parts else ""


def _histogram_chart(hist: Histogram) -> str:
    """Reference and current shares of each bin, side by side."""
    n = len(hist.bins)
    left, right, top, bottom = 40, 10, 22, 70
    group = 26
    w = max(330, left + right + group * n)
    h = 200
    ref_total = sum(hist.reference) or 1
    cur_total = sum(hist.current) or 1
    ref = [c / ref_total for c in hist.reference]
    cur = [c / cur_total for c in hist.current]
    ymax = max([*ref, *cur, 0.01]) * 1.1
    inner = h - top - bottom

    def y(v: float) -> float:
        return top + inner - v / ymax * inner

    label = f"{hist.feature}: reference and current distributions"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{_e(label)}">',
        f'<rect class="ref" x="{left}" y="6" width="10" height="10" />'
        f'<text x="{left + 14}" y="15">reference ({sum(hist.reference):,})</text>',
        f'<rect class="cur" x="{left + 140}" y="6" width="10" height="10" />'
        f'<text x="{left + 154}" y="15">current ({sum(hist.current):,})</text>',
        f'<line class="axis" x1="{left}" y1="{top + inner}" x2="{w - right}" y2="{top + inner}" />',
        f'<text x="{left - 4}" y="{top + inner + 3}" text-anchor="end">0</text>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{ymax:.0%}</text>',
    ]
    bar = (group - 6) / 2
    for i, name in enumerate(hist.bins):
        gx = left + i * group + 3
        for j, (cls, share, count) in enumerate(
            (("ref", ref[i], hist.reference[i]), ("cur", cur[i], hist.current[i]))
        ):
            yy = y(share)
            out.append(
                f'<rect class="{cls}" x="{gx + j * bar:.1f}" y="{yy:.1f}" width="{bar:.1f}" '
                f'height="{top + inner - yy:.1f}"><title>{_e(name)}: '
                f"{'reference' if cls == 'ref' else 'current'} {count:,} ({share:.1%})"
                "</title></rect>"
            )
        short = name if len(name) <= _LABEL_CHARS else name[: _LABEL_CHARS - 1] + "…"
        lx, ly = gx + bar, top + inner + 8
        out.append(
            f'<text x="{lx:.1f}" y="{ly:.1f}" text-anchor="end" '
            f'transform="rotate(-45 {lx:.1f} {ly:.1f})"><title>{_e(name)}</title>'
            f"{_e(short)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def _lane(ss: list[_Series]) -> list[tuple[int, int]]:
    """A column's worst level over offsets: (offset, level rank) where it changes.

    Each statistic holds the level of a point from its offset until its next point (a drift
    event is a change of level; an evaluation holds until the next one).
    """
    changes: list[tuple[int, int, int]] = []  # offset, statistic, rank
    for i, s in enumerate(ss):
        changes += [(o, i, _LEVEL_RANK.get(lv, 0)) for o, _, lv in s.points if o >= 0]
    changes.sort()
    current = [0] * len(ss)
    out: list[tuple[int, int]] = []
    for k, (o, i, rank) in enumerate(changes):
        current[i] = rank
        if k + 1 < len(changes) and changes[k + 1][0] == o:
            continue  # apply every change at this offset first
        worst = max(current)
        if not out or out[-1][1] != worst:
            out.append((o, worst))
    return out


def _timeline(
    lanes: list[tuple[str, list[tuple[int, int]]]],
    concept: list[_Concept],
    offset_name: str,
    end: int,
) -> str:
    """One lane per column coloured by its worst level over offsets, and the concept changes.

    ``end`` is the last offset evaluated: the last level of each lane holds until it.
    """
    offsets = [o for _, lane in lanes for o, _ in lane]
    offsets += [o for c in concept for o in (c.offset,) if o is not None and o >= 0]
    if not offsets:
        return ""
    x0, x1 = min(offsets), max(*offsets, end)
    if x1 == x0:
        x1 = x0 + 1
    left, right, top, row = 170, 16, 8, 18
    n = len(lanes) + (1 if concept else 0)
    w, h = 1000, top + n * row + 30

    def x(o: float) -> float:
        return left + (o - x0) / (x1 - x0) * (w - left - right)

    label = f"worst level of each column over {offset_name}s"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{_e(label)}">'
    ]
    for k, (name, lane) in enumerate(lanes):
        yy = top + k * row
        short = name if len(name) <= 28 else name[:27] + "…"
        out.append(
            f'<text x="{left - 6}" y="{yy + 12}" text-anchor="end"><title>{_e(name)}</title>'
            f"{_e(short)}</text>"
        )
        for j, (o, rank) in enumerate(lane):
            end = lane[j + 1][0] if j + 1 < len(lane) else x1
            level = LEVELS[rank]
            width = max(x(end) - x(o), 1.5)
            out.append(
                f'<rect class="band-{level}" x="{x(o):.1f}" y="{yy + 2}" width="{width:.1f}" '
                f'height="{row - 5}"><title>{_e(name)}: {level} from {_e(offset_name)} '
                f"{_offset(o)}</title></rect>"
            )
    if concept:
        yy = top + len(lanes) * row
        out.append(f'<text x="{left - 6}" y="{yy + 12}" text-anchor="end">model error</text>')
        for c in concept:
            if c.offset is None or c.offset < 0:
                continue
            cls = c.level if c.level in ("warning", "alarm") else "unknown"
            out.append(
                f'<rect class="p-{cls}" x="{x(c.offset) - 1.5:.1f}" y="{yy + 1}" width="3" '
                f'height="{row - 3}"><title>concept {_e(c.level)} at {_e(offset_name)} '
                f"{_offset(c.offset)} ({_e(c.detector)})</title></rect>"
            )
    base = top + n * row + 4
    out += [
        f'<line class="axis" x1="{left}" y1="{base}" x2="{w - right}" y2="{base}" />',
        f'<text x="{left}" y="{base + 12}">{_offset(x0)}</text>',
        f'<text x="{w - right}" y="{base + 12}" text-anchor="end">{_offset(x1)}</text>',
        f'<text x="{(left + w - right) / 2:.1f}" y="{base + 12}" text-anchor="middle">'
        f"{_e(offset_name)}</text>",
        "</svg>",
    ]
    return "".join(out)


def _sorted_series(series: list[_Series]) -> list[_Series]:
    """By partition, signal (the worker's order), then the order columns first appeared."""
    first: dict[tuple[str, str, str], int] = {}
    for i, s in enumerate(series):
        first.setdefault((s.group, s.signal, s.feature), i)
    return sorted(
        series,
        key=lambda s: (
            s.group,
            _SIGNAL_ORDER.get(s.signal, 99),
            first[(s.group, s.signal, s.feature)],
        ),
    )


def _render(page: _Page, fragment: bool) -> str:
    series = _sorted_series(page.series)
    columns: dict[tuple[str, str, str], list[_Series]] = {}
    for s in series:
        columns.setdefault((s.group, s.signal, s.feature), []).append(s)
    for key in page.histograms:
        columns.setdefault(key, [])
    ids = {key: f"c{i}" for i, key in enumerate(columns)}
    grouped = any(k[0] for k in columns) or any(c.group for c in page.concept)
    where = page.offset_name

    body: list[str] = [f"<h1>{_e(page.title)}</h1>"]
    if page.source:
        body.append(f'<p class="source">{_e(page.source)}</p>')
    body.append(
        '<ul class="facts">'
        + "".join(f"<li>{_e(k)}<b>{_e(v)}</b></li>" for k, v in page.facts)
        + "</ul>"
    )
    for note in page.notes:
        body.append(f'<p class="note">{_e(note)}</p>')

    # Summary: what reached alarm, first when.
    drifted = []
    for key, ss in columns.items():
        alarms = [(o, s) for s in ss if (o := s.first("alarm")) is not None]
        if alarms:
            o, s = min(alarms, key=lambda a: a[0])
            drifted.append((key, o, s, len(alarms)))
    body.append("<h2>Drift found</h2>")
    if drifted:
        items = []
        for (group, signal, feature), o, s, n in drifted:
            part = f" on {_e(group)}" if group else ""
            items.append(
                f'<li><a href="#{ids[(group, signal, feature)]}">{_e(feature) or "(none)"}</a> '
                f"({_e(signal)}{part}): alarm from {_e(where)} {_offset(o)}, "
                f"{_e(s.statistic)} first; {n} statistic(s) at alarm</li>"
            )
        body.append('<ul class="drifted">' + "".join(items) + "</ul>")
    else:
        body.append("<p>No statistic reached its alarm threshold.</p>")
    alarms_c = [c for c in page.concept if c.level == "alarm"]
    if page.concept:
        body.append(
            f"<p>The concept detector reported {len(alarms_c)} drift(s) and "
            f"{len(page.concept) - len(alarms_c)} warning(s) of the model's error.</p>"
        )

    # Every statistic.
    body.append("<h2>Statistics</h2>")
    head = ["partition"] if grouped else []
    # Drift events carry the alarm threshold only: no warning column for them.
    warnings = any(math.isfinite(s.warning) for s in series)
    head += ["signal", "column", "statistic", page.value_name]
    head += ["warning", "alarm"] if warnings else ["alarm"]
    head += ["latest level", "worst level", f"first alarm ({where})", page.points_name]
    rows = []
    for s in series:
        o, v, lv = s.points[-1]
        cells = [f"<td>{_e(s.group)}</td>"] if grouped else []
        cells += [
            f"<td>{_e(s.signal)}</td>",
            f'<td><a href="#{ids[(s.group, s.signal, s.feature)]}">{_e(s.feature)}</a></td>',
            f"<td>{_e(s.statistic)}</td>",
            f'<td class="n">{_num(v)}</td>',
            *([f'<td class="n">{_num(s.warning)}</td>'] if warnings else []),
            f'<td class="n">{_num(s.alarm)}</td>',
            f"<td>{_level(lv)}</td>",
            f"<td>{_level(s.worst)}</td>",
            f'<td class="n">{_offset(s.first("alarm"))}</td>',
            f'<td class="n">{len(s.points):,}</td>',
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    if rows:
        body.append(
            '<table class="statistics"><thead><tr>'
            + "".join(f"<th>{_e(c)}</th>" for c in head)
            + "</tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
        )
    else:
        body.append("<p>No statistic to show.</p>")

    # When: each column's worst level over offsets, per partition.
    body.append("<h2>Timeline</h2>")
    charts = []
    for group in dict.fromkeys([k[0] for k in columns] + [c.group for c in page.concept]):
        lanes = [
            (f"{signal}: {feature}" if signal != "feature" else feature, _lane(ss))
            for (g, signal, feature), ss in columns.items()
            if g == group and ss
        ]
        end = max(
            (
                o
                for (g, _, _), ss in columns.items()
                if g == group
                for s in ss
                for o, _, _ in s.points
            ),
            default=-1,
        )
        chart = _timeline(lanes, [c for c in page.concept if c.group == group], where, end)
        if chart:
            caption = f"{_e(group)}: " if group else ""
            charts.append(
                f"<figure>{chart}<figcaption>{caption}worst level of each column from the "
                f"{_e(where)} where it changed; model error: concept warnings and drifts"
                "</figcaption></figure>"
            )
    body += charts or ["<p>Nothing was evaluated.</p>"]

    # Concept drift.
    body.append("<h2>Concept drift</h2>")
    if page.concept:
        head = ["partition"] if grouped else []
        head += ["detector", "level", f"from {where}", f"at {where}", "error since the change"]
        head += ["error before"] + (["model"] if any(c.model for c in page.concept) else [])
        rows = []
        for c in page.concept:
            cells = [f"<td>{_e(c.group)}</td>"] if grouped else []
            cells += [
                f"<td>{_e(c.detector)}</td>",
                f"<td>{_level(c.level)}</td>",
                f'<td class="n">{_offset(c.first_offset)}</td>',
                f'<td class="n">{_offset(c.offset)}</td>',
                f'<td class="n">{_num(c.error)}</td>',
                f'<td class="n">{_num(c.baseline)}</td>',
            ]
            if "model" in head:
                cells.append(f"<td>{_e(c.model)}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        body.append(
            '<table class="concept"><thead><tr>'
            + "".join(f"<th>{_e(c)}</th>" for c in head)
            + "</tr></thead><tbody>"
            + "".join(rows)
            + "</tbody></table>"
        )
    else:
        body.append("<p>No warning or drift of the model's error.</p>")

    # One section per column.
    body.append("<h2>Columns</h2>")
    for key, ss in columns.items():
        group, signal, feature = key
        worst = max((s.worst for s in ss), key=lambda lv: _LEVEL_RANK.get(lv, -1), default="ok")
        part = f" · {_e(group)}" if group else ""
        charts = [
            f"<figure>{_line_chart(s, where)}<figcaption>{_e(s.statistic)}"
            f"{_threshold_caption(s)}</figcaption></figure>"
            for s in ss
        ]
        hist = page.histograms.get(key)
        if hist is not None:
            charts.append(
                f"<figure>{_histogram_chart(hist)}<figcaption>distribution ({_e(hist.kind)})"
                "</figcaption></figure>"
            )
        opened = ' open="open"' if worst == "alarm" else ""
        body.append(
            f'<details id="{ids[key]}"{opened}><summary>'
            f"<h3>{_e(feature) or '(none)'}</h3> {_e(signal)}{part} {_level(worst)}</summary>"
            f'<div class="charts">{"".join(charts)}</div></details>'
        )
    if not columns:
        body.append("<p>No column to show.</p>")

    content = '<div class="streamer-report">' + "\n".join(body) + "</div>"
    if fragment:
        return f"<div><style>{_CSS}</style>{content}</div>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8" />'
        '<meta name="viewport" content="width=device-width, initial-scale=1" />'
        '<meta name="generator" content="streamer report" />'
        f"<title>{_e(page.title)}</title><style>{_CSS}</style></head>"
        f"<body>{content}</body></html>\n"
    )


def render_report(
    report: Report, *, title: str = "Drift report", source: str = "", fragment: bool = False
) -> str:
    """A :class:`~streamer.monitoring.Report` as a self-contained HTML page.

    Parameters
    ----------
    report
        What a :class:`~streamer.monitoring.Monitor` (or :func:`~streamer.monitoring.compare`)
        found.
    title
        Page heading.
    source
        One line saying what was compared (file names, …).
    fragment
        A ``<div>`` with scoped styles instead of a whole page (for notebooks).
    """
    return _render(_page_from_report(report, title, source), fragment)


def render_events(
    events: Sequence[Mapping[str, Any]],
    *,
    title: str = "Drift report",
    source: str = "",
    undecodable: Sequence[tuple[int, int, str]] = (),
) -> str:
    """Drift events (as published on the drift-events topic) as a self-contained HTML page.

    Parameters
    ----------
    events
        Drift events as dicts (the fields of ``schemas/drift_event.avsc``), in the order they
        were published. Values are read defensively: a missing or mistyped field shows as a
        dash.
    title, source
        Page heading, and one line saying where the events came from.
    undecodable
        ``(partition, offset, why)`` of records that were not drift events, listed in a note.
    """
    return _render(_page_from_events(events, title, source, undecodable), False)
