"""The demo's pure parts: the stream it builds, where it switched, what it prints and plots."""

from __future__ import annotations

import io
import itertools
import os
import re
import xml.etree.ElementTree as ET

import pytest

from streamer.demo import (
    DEMO_SIGNING_KEY,
    Demo,
    Story,
    Switches,
    alternating,
    demo_settings,
    murmur2_partition,
    summary_lines,
)
from streamer.display import (
    WIDTH,
    EventLine,
    LiveDisplay,
    PartitionRow,
    PlainDisplay,
    Status,
    drift_line,
    make_display,
)
from streamer.errors import ConfigError
from streamer.plot import Mark, Plot, check_plot_path
from streamer.records import DriftEvent
from streamer.settings import load_settings
from streamer.summary import PartitionSummary, RunSummary

SVG = "{http://www.w3.org/2000/svg}"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _event(signal, level, offset, *, feature="", statistic="psi", value=0.3, partition=0):
    return DriftEvent(
        signal,
        feature,
        statistic,
        value,
        0.25,
        level,
        "events",
        partition,
        (0, 1999),
        (offset - 999, offset),
        "champion",
        1,
        0.0,
        offset + 1,
    )


# -- the stream -------------------------------------------------------------------------------


def test_sea_rows_have_readable_feature_names_and_are_deterministic():
    first = list(itertools.islice(alternating("sea", seed=3, every=50, bad_every=0), 120))
    again = list(itertools.islice(alternating("sea", seed=3, every=50, bad_every=0), 120))
    assert first == again
    assert set(first[0]) == {"id", "x1", "x2", "noise", "label"}
    assert [r["id"] for r in first[:3]] == ["0", "1", "2"]
    hyper = next(alternating("hyperplane", seed=3, every=50))
    assert {k for k in hyper if k not in ("id", "label")} == {f"x{i}" for i in range(10)}
    agrawal = next(alternating("agrawal", seed=3, every=50))
    assert "salary" in agrawal  # named features keep their names


def test_the_concept_switches_every_n_rows():
    # SEA labels x1 + x2 > threshold: 8 in the first concept, 9.5 in the second.
    rows = list(itertools.islice(alternating("sea", seed=1, every=400), 1200))

    def agree(threshold, block):
        return all((r["x1"] + r["x2"] > threshold) == r["label"] for r in block)

    blocks = [rows[:400], rows[400:800], rows[800:]]
    assert [agree(8, b) for b in blocks] == [True, False, True]
    assert [agree(9.5, b) for b in blocks] == [False, True, False]


def test_switch_offsets_follow_the_partitioner():
    rows = list(itertools.islice(alternating("sea", seed=1, every=100), 450))
    one = Switches(100, 1)
    for r in rows:
        one.produced(r)
    assert one.rows == [100, 200, 300, 400]
    assert one.in_partition(0) == [100, 200, 300, 400]
    assert one.last_before(0, 99) is None and one.last_before(0, 250) == (2, 200)

    three = Switches(100, 3)
    for r in rows:
        three.produced(r)
    for k, switch_row in enumerate(three.rows):
        for p in range(3):
            before = sum(
                1 for r in rows[:switch_row] if murmur2_partition(r["id"].encode(), 3) == p
            )
            assert three.offsets[k][p] == before
    assert Switches(100, 1, fresh=False).last_before(0, 500) is None


# -- event lines and displays -----------------------------------------------------------------


def test_event_lines_show_the_threshold_of_the_level_reached():
    settings = load_settings(env={"STREAMER_DRIFT__THRESHOLDS__FEATURES": '{"psi": [0.11, 0.3]}'})
    warn = drift_line(_event("feature", "warning", 5000, feature="x1", value=0.15), settings)
    alarm = drift_line(_event("feature", "alarm", 5250, feature="x1", value=0.4), settings)
    ok = drift_line(_event("feature", "ok", 6000, feature="x1", value=0.05), settings)
    assert warn.text.endswith("x1 psi 0.15 ≥ 0.11 (alarm at 0.3)")
    assert alarm.text.endswith("x1 psi 0.4 ≥ 0.3")
    assert ok.text.endswith("x1 psi 0.05 < 0.11")
    assert (warn.level, alarm.level, ok.level) == ("warning", "alarm", "ok")
    concept = drift_line(
        _event("concept", "alarm", 10_089, statistic="DualADWIN", value=0.31), settings, (1, 10_000)
    )
    assert concept.text == (
        "p0 @ 10,089  concept  DualADWIN error 0.31, was 0.25 · 89 after switch 1"
    )


def _status(events=1500, alarms=1):
    return Status(
        elapsed=3.5,
        events=events,
        rate=2000.0,
        dead=1,
        alarms=alarms,
        warnings=2,
        cleared=1,
        partitions=[
            PartitionRow(0, events, {"Accuracy": 0.91, "F1": 0.9, "LogLoss": 0.3}, "stable", 1),
            PartitionRow(1, events, {"Accuracy": 0.8, "F1": 0.7, "LogLoss": 0.5}, "drift", 2),
        ],
        model="champion",
    )


def test_the_plain_display_writes_plain_lines_and_never_cuts_them():
    out = io.StringIO()
    display = PlainDisplay(out)
    display.status(_status(), 1.0)
    long_event = "p0 @ 1,000,000  promoted v18 (mcnemar p=0.0057, +0.053 over 300) " + "x" * 200
    display.event(EventLine("model", long_event + " · 380 after switch 3"), 3.5)
    command = "STREAMER_SECURITY__SIGNING_KEY=k streamer models watch " + "-v " * 40 + "--end"
    display.message(command)
    display.message("worker stopped")
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0].startswith("[   3.5s] events     1,500   2,000/s  dead letters 1")
    assert "drift alarms 1 warnings 2 cleared 1" in lines[0]
    assert "p1 rolling Accuracy 0.800  F1 0.700  LogLoss 0.500 · concept drift" in lines[2]
    assert max(len(line) for line in lines[:3]) <= WIDTH  # the status lines are built to fit
    # A pipe or a file has no width: what a line ends with is kept.
    assert lines[3] == f"[   3.5s] model    {long_event} · 380 after switch 3"
    assert lines[4] == command
    assert lines[-1] == "worker stopped"


def test_the_live_display_cuts_only_its_table_to_the_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm")
    out = _Terminal()
    display = make_display(out)
    display.status(_status(1500), 1.0)
    event = "p0 @ 10,400  promoted v2 (mcnemar p=0.0057, +0.053 over 300) · 400 after switch 1"
    display.event(EventLine("model", event), 2.0)
    command = "STREAMER_SECURITY__SIGNING_KEY=k streamer models watch --bootstrap-servers h:1"
    display.message(command)
    display.status(_status(3000), 2.0)
    display.close()
    lines = ANSI.sub("", out.getvalue()).splitlines()
    # Event and message lines scroll above the table, whole (the terminal wraps them)...
    assert f"[   2.0s] model    {event}" in lines and command in lines
    # ...the table, redrawn in place, must not wrap: cut to the terminal's width, not to 100.
    table = lines[lines.index(command) + 1 :]
    assert table and all(len(line) <= 59 for line in table)
    assert any(len(line) == 59 for line in table)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_live_display_redraws_its_table_in_place(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    out = _Terminal()
    display = make_display(out)
    assert isinstance(display, LiveDisplay)
    display.status(_status(1500), 1.0)
    table = out.getvalue()
    height = table.count("\n")
    display.event(EventLine("alarm", "p0 @ 10,089  concept  DualADWIN error 0.31"), 3.6)
    display.message("a log line")
    display.status(_status(3000, alarms=2), 2.0)
    redraw = out.getvalue()[len(table) :]
    # Back up over the old table, clear, the new lines, then the table again.
    assert redraw.startswith(f"\x1b[{height}F\x1b[J")
    plain = ANSI.sub("", redraw).splitlines()
    assert plain[0].endswith("ALARM    p0 @ 10,089  concept  DualADWIN error 0.31")
    assert plain[1] == "a log line"
    assert any("3,000 events" in line and "alarms 2" in line for line in plain)
    assert "\x1b[1;31m" in redraw  # colour
    assert all(len(line) <= 79 for line in ANSI.sub("", out.getvalue()).splitlines())
    display.close()
    assert out.getvalue().endswith(redraw.split("\x1b[J", 1)[1].split("a log line\n")[-1])


def test_no_color_and_pipes(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm")
    out = _Terminal()
    display = make_display(out)
    display.status(_status(), 1.0)
    assert "\x1b[1;31m" not in out.getvalue() and "\x1b[2m" not in out.getvalue()
    assert isinstance(make_display(io.StringIO()), PlainDisplay)
    monkeypatch.setenv("TERM", "dumb")
    assert isinstance(make_display(_Terminal()), PlainDisplay)


def test_a_real_terminal_gets_the_live_display(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as tty:
            assert isinstance(make_display(tty), LiveDisplay)
    finally:
        os.close(leader)
        os.close(follower)


# -- the summary ------------------------------------------------------------------------------


def _story_and_switches():
    story = Story("Accuracy", 1000)
    for offset in range(499, 3000, 250):
        # Good, a dip after each switch (1000, 2000), recovering.
        since = offset % 1000
        value = 0.95 if offset < 1000 else 0.95 - (0.3 if since < 500 else 0.05)
        story.sample(0, offset, value)
    story.drift = [
        (2.0, _event("concept", "warning", 1050, statistic="DualADWIN")),
        (2.1, _event("concept", "alarm", 1089, statistic="DualADWIN")),
        (2.5, _event("label", "alarm", 1250, feature="label")),
        (3.0, _event("label", "ok", 1750, feature="label", value=0.02)),
        (4.0, _event("concept", "alarm", 2120, statistic="DualADWIN")),
        (0.5, _event("concept", "alarm", 600, statistic="DualADWIN")),  # a false alarm
    ]
    switches = Switches(1000, 1)
    for i in range(3000):
        switches.produced({"id": str(i)})
    return story, switches


def test_the_summary_tells_where_drift_was_found_and_how_late():
    story, switches = _story_and_switches()
    summary = RunSummary(
        3000,
        5.0,
        2998,
        {"validate/wrong_type": 2},
        {"alarm": 4, "warning": 1, "ok": 1},
        {"concept": 3, "label": 1},
        [PartitionSummary("events", 0, 3000, 2998, 1, 3000, {"Accuracy": 0.9}, {})],
    )
    from types import SimpleNamespace

    story.decisions = [
        (
            2.2,
            SimpleNamespace(
                decision="promoted",
                partition=0,
                offset=1360,
                role="champion",
                version=2,
                reason="promotion",
                test="mcnemar",
                statistic=0.006,
                gain=0.05,
                compared=300,
            ),
        )
    ]
    lines = summary_lines(
        summary,
        story,
        switches,
        load_settings(env={}),
        steady_rate=1500.0,
        next_steps=[("metrics", "http://localhost:8000/metrics")],
    )
    text = "\n".join(lines)
    assert "events        3,000 in 5.0 s, 1,500 events/s after start-up" in text
    assert "dead letters  2 (validate/wrong_type 2)" in text
    assert "drift events  alarms 4, warnings 1, cleared 1" in text
    assert "switch 1 at offset 1,000: concept alarm at 1,089, 89 events later" in text
    assert "switch 2 at offset 2,000: concept alarm at 2,120, 120 events later" in text
    assert "Accuracy before 0.950 (at 999) · lowest 0.650 (at 1,249) · after 0.900 (at 1,999)" in (
        text
    )
    # Every alarm, with its offset and lag; the false alarm says so; clears are not alarms.
    alarms = lines[lines.index("drift alarms (4; offset, and how long after the latest switch)") :]
    assert "  p0 @ 1,089  concept  DualADWIN error 0.3, was 0.25 · 89 after switch 1" in alarms
    assert any("p0 @ 1,250  label    psi 0.3 ≥ 0.25 · 250 after switch 1" in a for a in alarms)
    assert any(a.endswith("· before any switch") and "@ 600" in a for a in alarms)
    assert "model lifecycle (1 decision)" in lines
    assert "  p0 @ 1,360  promoted v2 (mcnemar p=0.006, +0.050 over 300) · 360 after switch 1" in (
        lines
    )
    assert "open next" in lines and "  metrics     http://localhost:8000/metrics" in lines
    assert max(map(len, lines)) <= WIDTH


def test_the_summary_says_when_switch_offsets_are_unknown():
    story, _ = _story_and_switches()
    summary = RunSummary(3000, 5.0, 3000, {}, {}, {}, [])
    lines = summary_lines(summary, story, Switches(1000, 1, fresh=False), load_settings(env={}))
    assert any("offsets of the switches are unknown" in line for line in lines)
    assert not any("after switch" in line for line in lines)


def _demo(env, *, embedded=True, address="127.0.0.1:41234", **settings):
    demo = Demo(load_settings(env=env, overrides=settings or None), out=io.StringIO())
    demo.settings = demo_settings(demo.settings, address)
    demo.broker_address, demo.embedded = address, embedded
    demo.metrics_url = "http://localhost:8000/metrics"
    return demo


def test_the_commands_to_follow_the_demo_carry_its_broker_and_signing_key():
    steps = dict(_demo({}).follow_along())
    # `streamer models` verifies every update: it needs the key the demo signs with.
    assert steps["models"] == (
        f"STREAMER_SECURITY__SIGNING_KEY={DEMO_SIGNING_KEY} streamer models watch "
        "--from-beginning --bootstrap-servers 127.0.0.1:41234"
    )
    assert steps["drift"] == "streamer report --bootstrap-servers 127.0.0.1:41234 -o drift.html"
    assert steps["kcat"].startswith("kcat -C -b 127.0.0.1:41234 -t predictions ")
    assert steps["metrics"].startswith("http://localhost:8000/metrics")
    # A key of the user's is not printed; topics of the user's are passed on.
    own = dict(
        _demo(
            {"STREAMER_SECURITY__SIGNING_KEY": "a-key-of-my-own-0123456789"},
            topics={"model_updates": "m-u", "drift_events": "d-e"},
        ).follow_along()
    )
    assert "a-key-of-my-own" not in str(own) and "SIGNING_KEY" not in own["models"]
    assert "--topic m-u" in own["models"] and "(with your signing key)" in own["models"]
    assert "--topic d-e" in own["drift"]


def test_the_closing_hint_names_only_what_works_after_the_run():
    closing = _demo({}).next_steps("demo.html")
    text = "\n".join(f"{k} {v}" for k, v in closing)
    # The embedded broker has stopped: nothing that reads it.
    assert "127.0.0.1:41234" not in text and "kcat" not in text and "metrics" not in text
    assert ("the plot", "demo.html") in closing
    # Running it on your own Kafka, with the signing key `run` needs.
    assert "signing.key" in text and "STREAMER_SECURITY__SIGNING_KEY_FILE=" in text
    assert "streamer run -c streamer.toml" in text
    # On a broker of the user's the topics stay: the commands that read them still work.
    kept = dict(_demo({}, embedded=False).next_steps(None))
    assert "--bootstrap-servers 127.0.0.1:41234" in kept["models"] and "metrics" not in kept


# -- the plot ---------------------------------------------------------------------------------


def _plot():
    story, _ = _story_and_switches()
    marks = [
        Mark(
            t,
            ev.partition,
            ev.current_offsets[1],
            ev.level,
            ev.signal,
            ev.feature,
            ev.statistic,
            ev.value,
            "",
        )
        for t, ev in story.drift
    ]
    return story, Plot("a <demo> run", "Accuracy", 1000, story.samples, {0: [1000, 2000]}, marks)


def test_the_plot_shows_the_metric_the_switches_and_the_drift():
    story, plot = _plot()
    svg = ET.fromstring(plot.svg())
    (line,) = svg.iter(f"{SVG}polyline")
    points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert len(points) == len(story.samples[0])
    # Lower values are drawn lower (SVG y grows downwards).
    values = [v for _, v in story.samples[0]]
    ys = [y for _, y in points]
    for (v1, y1), (v2, y2) in itertools.combinations(zip(values, ys, strict=True), 2):
        assert (v1 < v2) == (y1 > y2) or v1 == v2
    xs = {
        float(s.get("x1")): int(s.get("data-offset"))
        for s in svg.iter(f"{SVG}line")
        if s.get("class") == "switch"
    }
    assert sorted(xs.values()) == [1000, 2000]
    # Offsets map to x in order, on the same scale as the metric's points.
    first_x = points[0][0]
    assert first_x < min(xs) < max(xs) < points[-1][0]
    drawn = [e for e in svg.iter() if (e.get("class") or "").startswith("drift ")]
    assert sorted(int(e.get("data-offset")) for e in drawn) == [600, 1050, 1089, 1250, 2120]
    assert sum("alarm concept" in e.get("class") for e in drawn) == 3
    assert sum("warning concept" in e.get("class") for e in drawn) == 1
    assert sum("alarm window" in e.get("class") for e in drawn) == 1


def test_the_plot_files_are_self_contained_and_well_formed(tmp_path):
    _, plot = _plot()
    html = tmp_path / "p.html"
    plot.write(html)
    page = ET.parse(html).getroot()  # well-formed XHTML
    assert "a &lt;demo&gt; run" in html.read_text()
    assert page.find(".//{http://www.w3.org/1999/xhtml}body") is not None
    assert len(page.findall(f".//{SVG}svg")) == 1
    rows = page.findall(".//{http://www.w3.org/1999/xhtml}tbody/{http://www.w3.org/1999/xhtml}tr")
    assert len(rows) == 5  # warnings and alarms; the clear is left out
    assert "http" not in html.read_text().replace("http://www.w3.org/", "")  # nothing fetched
    svg = tmp_path / "p.svg"
    plot.write(svg)
    assert ET.parse(svg).getroot().tag == f"{SVG}svg"


@pytest.mark.parametrize("name", ["plot.png", "plot", "plot.pdf"])
def test_a_plot_file_that_cannot_be_written_is_refused_up_front(tmp_path, name):
    with pytest.raises(ConfigError, match="--plot"):
        check_plot_path(tmp_path / name)
    with pytest.raises(ConfigError, match="does not exist"):
        check_plot_path(tmp_path / "no" / "plot.html")
    check_plot_path(tmp_path / "plot.html")
