"""The HTML drift report from a real drift-events topic: a worker on a drifting stream, then
``streamer report`` reading what it published."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET

import orjson
import pytest

from streamer import kafka
from streamer.cli import main
from streamer.decode import AvroDecoder, JsonEncoder
from streamer.outputs import DRIFT_EVENT_SCHEMA
from streamer.produce import produce_rows
from streamer.report import read_drift_events
from streamer.synth import CovariateShift
from streamer.testing import read_until
from streamer.worker import Worker

pytestmark = pytest.mark.integration

N = 6000
SHIFT_AT = 3501  # 1-based: offsets from 3500 on are shifted


def _rows():
    stream = CovariateShift(
        n_features=3, shifted=["f1"], position=SHIFT_AT, magnitude=1.5, new_category=True, seed=5
    )
    return [
        {"id": f"e{i}", **x, "label": y} for i, (x, y) in enumerate(itertools.islice(stream, N))
    ]


def _parse(page: str) -> ET.Element:
    return ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))


def _text(el: ET.Element) -> str:
    return "".join(el.itertext())


@pytest.mark.parametrize(
    ("fmt", "guarantee"),
    [
        ("json", "at_least_once"),
        ("avro", "at_least_once"),
        # Transaction markers follow the last records: the reader must not wait for them.
        ("json", "exactly_once"),
    ],
)
def test_report_of_a_drift_events_topic(
    make_settings, bootstrap_servers, tmp_path, capsys, fmt, guarantee
):
    settings = make_settings(
        fields={"features": ["f0", "f1", "f2", "cat"], "categorical": ["cat"]},
        drift={"windows": {"reference_size": 2000, "window_size": 1000, "every": 250}},
        output={"format": fmt},
        worker={"processing_guarantee": guarantee},
    )
    worker = Worker(settings)
    worker.provision_topics()
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    produce_rows(_rows(), sink, settings.topics.events, JsonEncoder())
    sink.close()
    worker.run(max_events=N)
    topic = settings.topics.drift_events
    published = read_until(
        settings.kafka, topic, lambda out: len(out) >= worker.drift_total, what="drift events"
    )
    assert len(published) == worker.drift_total > 0
    decode = (
        orjson.loads if fmt == "json" else AvroDecoder(DRIFT_EVENT_SCHEMA, framing="plain").decode
    )
    expected = [decode(m.value()) for m in published]

    # The reader gets every event, in order, and stops at the end of the topic by itself.
    log = read_drift_events(settings.kafka, topic, timeout=60)
    assert log.undecodable == []
    assert [(e["feature"], e["statistic"], e["level"], e["events"]) for e in log.events] == [
        (e["feature"], e["statistic"], e["level"], e["events"]) for e in expected
    ]

    out = tmp_path / "drift.html"
    argv = ["report", "--bootstrap-servers", bootstrap_servers, "--topic", topic]
    assert main([*argv, "--title", f"stream {fmt}", "-o", str(out)]) == 0
    alarms = sum(1 for e in expected if e["level"] == "alarm")
    assert f"({len(expected)} drift events, {alarms} alarms)" in capsys.readouterr().err

    root = _parse(out.read_text())
    assert _text(root.find(".//h1")) == f"stream {fmt}"
    # The summary names exactly the features the stream shifted, from the offset of the shift on.
    summary = root.find(".//ul[@class='drifted']")
    drifted = {
        (
            _text(li.find("a")),
            int(re.search(r"from offset ([\d,]+)", _text(li))[1].replace(",", "")),
        )
        for li in summary.iter("li")
        if "(feature on " in _text(li)
    }
    assert {name for name, _ in drifted} == {"f1", "cat"}
    assert all(SHIFT_AT - 1 <= offset <= SHIFT_AT - 1 + 1000 for _, offset in drifted)
    # One table row per (partition, signal, feature, statistic) that changed level.
    rows = root.findall(".//table[@class='statistics']/tbody/tr")
    table = {tuple(_text(td) for td in tr.findall("td")[:4]) for tr in rows}
    changed = {
        (f"{e['topic']}/{e['partition']}", e["signal"], e["feature"], e["statistic"])
        for e in expected
        if e["signal"] != "concept"
    }
    assert table == changed
    # Each drifted column has a plot of its statistic over offsets, with the alarm threshold.
    section = root.find(".//details[@open='open']")
    assert section is not None
    assert section.find(".//{http://www.w3.org/2000/svg}polyline") is not None or section.findall(
        ".//{http://www.w3.org/2000/svg}circle"
    )


def test_report_of_a_missing_topic_says_so(make_settings, bootstrap_servers, tmp_path, capsys):
    settings = make_settings()
    out = tmp_path / "drift.html"
    argv = ["report", "--bootstrap-servers", bootstrap_servers, "--timeout", "5"]
    assert main([*argv, "--topic", settings.topics.drift_events, "-o", str(out)]) == 1
    assert f"topic {settings.topics.drift_events!r} does not exist" in capsys.readouterr().err
    assert not out.exists()
