"""The HTML drift report: well-formed, self-contained, complete, and safe with hostile names."""

from __future__ import annotations

import math
import random
import re
import xml.etree.ElementTree as ET

import orjson
import pytest

from streamer.cli import main
from streamer.decode import AvroEncoder
from streamer.errors import RecordError
from streamer.monitoring import Monitor, compare
from streamer.outputs import DRIFT_EVENT_SCHEMA
from streamer.records import DriftEvent
from streamer.report import decode_drift_event, render_events, render_report

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "a&amp;b ]]> <!-- x -->",
    "' onmouseover='alert(1)",
    "ünï © 😀 \u2028",
]


def _parse(page: str) -> ET.Element:
    """The page as XML: every tag closed and every name escaped, or this raises."""
    return ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))


def _text(el: ET.Element) -> str:
    return "".join(el.itertext())


def _self_contained(root: ET.Element) -> None:
    tags = {el.tag.split("}")[-1] for el in root.iter()}
    assert not tags & {"script", "img", "iframe", "object", "embed", "link", "foreignObject"}
    for el in root.iter():
        for name, value in el.attrib.items():
            assert not name.lower().startswith("on"), (el.tag, name)
            if name in ("href", "src", "{http://www.w3.org/1999/xlink}href"):
                assert value.startswith("#"), value  # in-page anchors only


def _rows(n, *, mu=0.0, cats="ab", seed=1):
    rng = random.Random(seed)
    return [{"x": rng.gauss(mu, 1.0), "c": rng.choice(cats), "z": rng.random()} for _ in range(n)]


def _event(**kw):
    base = dict(
        signal="feature",
        feature="f2",
        statistic="psi",
        value=0.4,
        threshold=0.25,
        level="alarm",
        topic="events",
        partition=0,
        reference_offsets=(0, 1999),
        current_offsets=(4250, 5249),
        model="champion",
        version=1,
        time=1.0,
        events=5250,
    )
    base.update(kw)
    return DriftEvent(**base).as_dict()


def test_a_report_page_holds_every_feature_and_statistic_with_plots():
    report = Monitor(window_size=500).observe(_rows(3000) + _rows(2000, mu=1.0, cats="abz"))
    page = render_report(report, title="My run", source="rows.csv")
    root = _parse(page)
    _self_contained(root)
    assert _text(root.find(".//title")) == "My run"
    table = root.find(".//table[@class='statistics']")
    cells = [[_text(td) for td in tr.findall("td")] for tr in table.findall("./tbody/tr")]
    latest = report.latest()
    assert [(c[0], c[1], c[2]) for c in cells] == [
        (e.signal, e.feature, e.statistic) for e in latest
    ]
    for c, e in zip(cells, latest, strict=True):
        assert c[3] == f"{e.value:.4g}" and c[4] == f"{e.warning:.4g}" and c[5] == f"{e.alarm:.4g}"
        assert c[6] == e.level
    # The drift summary names the shifted features and links to their sections.
    drifted = root.find(".//ul[@class='drifted']")
    links = {_text(a): a.get("href") for a in drifted.iter("a")}
    assert set(links) == {"x", "c"}
    sections = {d.get("id"): d for d in root.iter("details")}
    for name, href in links.items():
        section = sections[href[1:]]
        assert _text(section.find("summary/h3")) == name
        assert section.get("open") == "open"
        # One chart per statistic (with dashed threshold lines) and a histogram.
        svgs = section.findall(f".//{SVG}svg")
        assert len(svgs) == len([e for e in latest if e.feature == name]) + 1
        assert svgs[0].find(f"{SVG}polyline") is not None
        assert {ln.get("class") for ln in svgs[0].iter(f"{SVG}line")} >= {"warning", "alarm"}
    assert (
        sections[next(k for k, d in sections.items() if _text(d.find("summary/h3")) == "z")].get(
            "open"
        )
        is None
    )


def test_histograms_show_reference_and_current_shares():
    report = compare(_rows(2000), _rows(1000, cats="abz", seed=2), categorical=["c"])
    root = _parse(render_report(report))
    hist = next(h for h in report.histograms if h.feature == "c")
    section = next(d for d in root.iter("details") if _text(d.find("summary/h3")) == "c")
    chart = section.findall(f".//{SVG}svg")[-1]
    bars = [r for r in chart.iter(f"{SVG}rect") if r.get("class") in ("ref", "cur")]
    bars = [b for b in bars if b.find(f"{SVG}title") is not None]
    assert len(bars) == 2 * len(hist.bins)
    tips = [_text(b.find(f"{SVG}title")) for b in bars]
    other = hist.bins.index("(other)")
    share = hist.current[other] / sum(hist.current)
    assert tips[2 * other + 1] == f"(other): current {hist.current[other]:,} ({share:.1%})"


@pytest.mark.parametrize("name", HOSTILE)
def test_names_from_data_are_escaped_in_a_report(name):
    # The name is a column and a category of the reference (so a histogram bin).
    rows = [{name: x["x"], "c": name if x["c"] == "a" else "b", "o": x["z"]} for x in _rows(3000)]
    shifted = [{name: x["x"], "c": "b", "o": x["z"]} for x in _rows(1000, mu=2.0, seed=3)]
    report = Monitor(window_size=500).observe(rows + shifted)
    assert ("feature", name) in report.drifted
    page = render_report(report, title=name, source=name)
    if "<" in name:
        assert name not in page
    root = _parse(page)
    _self_contained(root)
    assert _text(root.find(".//h1")) == name
    assert _text(root.find(".//title")) == name
    assert name in {_text(a) for a in root.find(".//ul[@class='drifted']").iter("a")}
    assert ("feature", "c") in report.drifted
    hist_labels = {_text(t) for t in root.iter(f"{SVG}title")}
    assert any(label.startswith(f"{name}: current") for label in hist_labels)


@pytest.mark.parametrize("name", HOSTILE)
def test_every_field_of_a_drift_event_is_escaped(name):
    events = [
        _event(feature=name, statistic=name, topic=name, model=name),
        _event(signal=name, level=name, feature=name),
        _event(signal="concept", feature="", statistic=name, level=name),
    ]
    page = render_events(events, title=name, source=name, undecodable=[(0, 7, name)])
    if "<" in name:
        assert name not in page
    root = _parse(page)
    _self_contained(root)
    text = _text(root)
    assert text.count(name) >= 8
    # An unknown level gets the neutral style, whatever it says.
    classes = {el.get("class") for el in root.iter() if el.get("class")}
    assert all(
        not c.startswith("lv lv-") or c.split("-", 1)[1] in {"ok", "warning", "alarm", "unknown"}
        for c in classes
    )


def test_a_page_from_drift_events():
    events = [
        _event(current_offsets=(250, 1249), value=0.12, level="warning"),
        _event(current_offsets=(500, 1499), value=0.3),
        _event(feature="cat", statistic="new_category_rate", threshold=0.01, value=0.02),
        _event(current_offsets=(1500, 2499), value=0.05, level="ok"),
        _event(partition=1, feature="f2", current_offsets=(700, 1699), value=0.5),
        _event(
            signal="concept",
            feature="",
            statistic="DualADWIN",
            value=math.nan,  # a drift before any baseline: null in JSON
            threshold=math.nan,
            level="alarm",
            reference_offsets=(-1, -1),
            current_offsets=(0, 3032),
        ),
    ]
    decoded = [orjson.loads(orjson.dumps(e)) for e in events]  # NaN -> null, as on the topic
    assert decoded[-1]["value"] is None
    root = _parse(render_events(decoded, title="t", source="topic drift-events"))
    _self_contained(root)
    facts = {
        _text(li)[: -len(_text(li.find("b")))]: _text(li.find("b"))
        for li in root.find(".//ul[@class='facts']")
    }
    assert facts["drift events"] == "6" and facts["partitions"] == "2"
    table = root.find(".//table[@class='statistics']")
    head = [_text(th) for th in table.findall("./thead/tr/th")]
    assert "warning" not in head  # drift events carry the alarm threshold only
    rows = {
        tuple(_text(td) for td in tr.findall("td")[:4]): [_text(td) for td in tr.findall("td")]
        for tr in table.findall("./tbody/tr")
    }
    assert set(rows) == {
        ("events/0", "feature", "f2", "psi"),
        ("events/0", "feature", "cat", "new_category_rate"),
        ("events/1", "feature", "f2", "psi"),
    }
    f2 = dict(zip(head, rows[("events/0", "feature", "f2", "psi")], strict=True))
    assert f2["value at the last change"] == "0.05"
    assert f2["latest level"] == "ok" and f2["worst level"] == "alarm"
    assert f2["first alarm (offset)"] == "1,499" and f2["level changes"] == "3"
    concept = root.find(".//table[@class='concept']/tbody/tr")
    cells = [_text(td) for td in concept.findall("td")]
    assert cells[:6] == ["events/0", "DualADWIN", "alarm", "0", "3,032", "\u2013"]
    # The timeline has a lane per column and partition.
    timelines = [
        s for s in root.iter(f"{SVG}svg") if s.get("aria-label", "").startswith("worst level")
    ]
    assert len(timelines) == 2


def test_undecodable_records_and_an_empty_topic_are_said():
    root = _parse(render_events([], undecodable=[(0, 3, "not valid JSON")]))
    notes = [_text(p) for p in root.iter("p") if p.get("class") == "note"]
    assert notes[0].startswith("1 record(s) of the topic are not drift events")
    assert "[0]@3: not valid JSON" in notes[0]
    assert "no drift event" in notes[1]


def test_rendering_is_deterministic():
    a = render_report(compare(_rows(1000), _rows(500, mu=1.0, seed=2)))
    b = render_report(compare(_rows(1000), _rows(500, mu=1.0, seed=2)))
    assert a == b
    events = [_event(), _event(feature="g")]
    assert render_events(events) == render_events(events)


def test_long_series_are_drawn_with_a_bounded_number_of_points():
    rows = _rows(20000) + _rows(2000, mu=3.0, seed=2)
    report = Monitor(features=["x"], window_size=50, every=5, schema=False).observe(rows)
    assert len(report.evaluations) > 5 * 3000
    root = _parse(render_report(report))
    psi = next(s for s in root.iter(f"{SVG}svg") if s.get("aria-label") == "x psi over rows")
    circles = list(psi.iter(f"{SVG}circle"))
    assert 100 < len(circles) <= 300
    # The largest value survives the thinning.
    top = max(e.value for e in report.evaluations if e.statistic == "psi")
    assert any(f": {top:.4g} (" in _text(c.find(f"{SVG}title")) for c in circles)


def test_a_notebook_gets_a_fragment_with_scoped_styles():
    report = compare(_rows(500), _rows(500, seed=2))
    fragment = report._repr_html_()
    root = _parse(fragment)
    assert root.tag == "div" and root.find(".//html") is None
    css = _text(root.find("style"))
    selectors = [s.strip() for rule in re.findall(r"([^{}]+)\{", css) for s in rule.split(",")]
    assert selectors and all(s.startswith(".streamer-report") for s in selectors)
    assert report.to_html().startswith("<!DOCTYPE html>")


def test_decode_drift_events_in_json_and_avro():
    event = _event()
    json_value = orjson.dumps(event)
    avro_value = AvroEncoder(DRIFT_EVENT_SCHEMA).encode(event)
    assert decode_drift_event(json_value) == decode_drift_event(json_value, "json") == event
    assert decode_drift_event(avro_value) == decode_drift_event(avro_value, "avro") == event
    for bad, fmt in [
        (b"", "auto"),
        (b"{not json", "auto"),
        (b"\x02\xff", "auto"),
        (avro_value, "json"),
    ]:
        with pytest.raises(RecordError):
            decode_drift_event(bad, fmt)


def test_cli_report_from_a_reference_and_a_csv(tmp_path, capsys):
    from streamer.produce import dataset_rows

    ref = tmp_path / "ref.json"
    assert (
        main(["drift-reference", "--dataset", "Phishing", "--limit", "1000", "-o", str(ref)]) == 0
    )
    rows = list(dataset_rows("Phishing"))
    csv = tmp_path / "today.csv"
    names = list(rows[0])
    lines = [",".join(names)]
    for i, r in enumerate(rows):
        if i >= 400:
            r["empty_server_form_handler"] = 1.0  # a shift in the current data
        lines.append(",".join(str(r[n]) for n in names))
    csv.write_text("\n".join(lines) + "\n")
    out = tmp_path / "report.html"
    argv = ["report", "--reference", str(ref), "--csv", str(csv), "-o", str(out)]
    assert main([*argv, "--title", "Phishing today"]) == 0
    assert "(1250 rows, 1 column(s) at alarm" in capsys.readouterr().err
    root = _parse(out.read_text())
    _self_contained(root)
    assert _text(root.find(".//p[@class='source']")) == f"{csv} compared with {ref}"
    drifted = [_text(a) for a in root.find(".//ul[@class='drifted']").iter("a")]
    assert drifted == ["empty_server_form_handler"]
    table = root.find(".//table[@class='statistics']")
    columns = {_text(tr.findall("td")[1]) for tr in table.findall("./tbody/tr")}
    assert columns == {n for n in names if n != "id"}  # features and the label; not the id
    # A CSV shorter than a window is compared whole.
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:101]) + "\n")
    assert main(["report", "--reference", str(ref), "--csv", str(short), "-o", str(out)]) == 0
    assert "(100 rows," in capsys.readouterr().err


def test_cli_report_refuses_half_a_comparison(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", "--csv", "x.csv", "-o", str(out)]) == 2
    assert (
        "configuration error: --reference: a report from data needs both" in capsys.readouterr().err
    )
    assert main(["report", "--reference", "x.json", "--csv", "x.csv", "-o", str(out)]) == 2
    assert "--reference: x.json does not exist" in capsys.readouterr().err
    assert not out.exists()
