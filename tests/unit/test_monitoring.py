"""The public drift monitor (streamer.monitoring): the same statistics as the building blocks,
on lists of dicts, generators and DataFrames, in any chunks."""

from __future__ import annotations

import json
import math
import random
import sys

import pytest

from streamer.drift.concept import ConceptDriftMonitor
from streamer.drift.window import DEFAULT_THRESHOLDS, WindowMonitor
from streamer.monitoring import Evaluation, Monitor, Report, compare, iter_rows

pd = pytest.importorskip("pandas")  # in the dev extra: CI has it


def _rows(n, *, mu=0.0, cats="ab", seed=1, start=0):
    rng = random.Random(seed)
    return [
        {"id": f"r{start + i}", "x": rng.gauss(mu, 1.0), "c": rng.choice(cats)} for i in range(n)
    ]


def test_compare_equals_a_window_monitor_on_a_pinned_reference():
    ref, cur = _rows(2000), _rows(800, mu=0.7, cats="abz", seed=2)
    report = compare(ref, cur, features=["x", "c"], categorical=["c"], ignore=["id"])
    base = WindowMonitor(["x"], ["c"], reference_size=2000)
    base.observe(ref, range(2000))
    pinned = WindowMonitor(
        ["x"],
        ["c"],
        reference="pinned",
        pinned=base.reference_snapshot(),
        window_size=800,
        every=800,
    )
    findings = pinned.observe(cur, range(800))
    assert [(e.feature, e.statistic, e.value) for e in report.evaluations] == [
        (f.feature, f.statistic, f.value) for f in findings
    ]
    assert {(e.feature, e.statistic) for e in report.alarms()} == {
        ("x", "psi"),
        ("x", "js"),
        ("x", "ks"),
        ("c", "psi"),
        ("c", "js"),
        ("c", "new_category_rate"),
    }
    assert report.drifted == [("feature", "x"), ("feature", "c")]
    psi = report.evaluations[0]
    assert (psi.warning, psi.alarm) == DEFAULT_THRESHOLDS["psi"]
    assert psi.reference_offsets == (0, 1999) and psi.current_offsets == (0, 799)
    assert psi.events == 800 and report.events == 800


def test_a_stationary_data_set_does_not_drift():
    report = compare(_rows(2000, seed=3), _rows(1000, seed=4), ignore=["id"])
    assert report.evaluations and report.alarms() == ()
    assert {e.level for e in report.evaluations} == {"ok"}


def test_streaming_matches_the_window_monitor_and_does_not_depend_on_chunks():
    rows = _rows(3000) + _rows(3000, mu=0.5, seed=9, start=3000)
    options = {"features": ["x", "c"], "categorical": ["c"], "ignore": ["id"]}
    whole = Monitor(**options).observe(rows)
    direct = WindowMonitor(["x"], ["c"]).observe(rows, range(len(rows)))
    assert [(e.feature, e.statistic, e.value, e.current_offsets) for e in whole.evaluations] == [
        (f.feature, f.statistic, f.value, f.current_offsets) for f in direct
    ]
    assert {e.events for e in whole.evaluations} == set(range(3000, 6001, 250))

    pieces = Monitor(**options)
    for a, b in [(0, 1), (1, 1999), (1999, 2001), (2001, 4444), (4444, 6000)]:
        pieces.observe(iter(rows[a:b]))  # generators too
    assert pieces.report().to_dict() == whole.to_dict()
    assert pieces.events == whole.events == 6000


def test_features_are_inferred_from_the_first_rows():
    rows = [{"id": str(i), "n": i % 7, "s": "abc"[i % 3], "y": i % 2, "p": 0} for i in range(50)]
    rows[0]["s"] = None  # a missing value does not hide the kind
    mon = Monitor(prediction="p", label="y", ignore=["id"], reference_size=10, window_size=10)
    mon.observe(rows)
    assert mon.reference()["features"]["numeric"].keys() == {"n"}
    assert mon.reference()["features"]["categorical"].keys() == {"s"}
    assert "Monitor(features=['n', 's'], prediction='p', label='y', events=50" in repr(mon)


def test_a_dataframe_reads_as_its_rows_with_nan_as_missing():
    rows = _rows(3000, seed=5)
    for i in range(0, 3000, 7):
        rows[i]["c"] = None  # pandas stores a missing string as NaN
        rows[i]["x"] = None
    df = pd.DataFrame(rows)
    assert df["c"].isna().sum() == len(range(0, 3000, 7))
    options = {"categorical": ["c"], "features": ["x", "c"], "window_size": 500}
    from_df = Monitor(**options).observe(df)
    from_rows = Monitor(**options).observe(rows)
    assert from_df.to_dict() == from_rows.to_dict()
    # NaN is missing, not a new category each time.
    new = [e for e in from_df.evaluations if e.statistic == "new_category_rate"]
    assert new and all(e.value == 0.0 for e in new)
    missing = next(h for h in from_df.histograms if h.feature == "c")
    assert missing.bins[-1] == "(missing)" and missing.current[-1] == sum(
        1 for r in rows[2000:] if r["c"] is None
    )
    # numpy scalars read as Python values (the schema signal sees numbers, not objects).
    assert list(iter_rows(pd.DataFrame({"a": [1], "b": [2.5]}))) == [{"a": 1, "b": 2.5}]
    assert all(
        type(v) in (int, float) for r in iter_rows(pd.DataFrame({"a": [1]})) for v in r.values()
    )


def test_report_to_dict_and_to_frame():
    report = compare(_rows(1000), _rows(500, mu=1.0, seed=2), ignore=["id"])
    data = json.loads(json.dumps(report.to_dict()))
    assert data["events"] == 500
    assert data["evaluations"][0] == report.evaluations[0].to_dict()
    assert {h["feature"] for h in data["histograms"]} == {"x", "c"}
    frame = report.to_frame()
    assert list(frame.columns) == [
        "signal",
        "feature",
        "statistic",
        "value",
        "warning",
        "alarm",
        "level",
        "reference_first_offset",
        "reference_last_offset",
        "current_first_offset",
        "current_last_offset",
        "events",
    ]
    assert len(frame) == len(report.evaluations)
    assert frame.loc[frame.level == "alarm", "feature"].unique().tolist() == ["x"]
    assert frame["value"].tolist() == [e.value for e in report.evaluations]


def test_to_frame_without_pandas_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    report = compare(_rows(300), _rows(300, seed=2))
    with pytest.raises(ImportError, match=r"needs pandas \(pip install pandas\)"):
        report.to_frame()
    assert report.to_dict()["events"] == 300


def test_histograms_count_reference_and_current_rows_in_the_reference_bins():
    ref = [{"x": float(i % 4), "c": "ab"[i % 2]} for i in range(400)]
    cur = [{"x": 9.0 if i % 5 == 0 else float(i % 4), "c": "abz"[i % 3]} for i in range(300)]
    cur[0]["x"] = None
    report = compare(ref, cur, categorical=["c"])
    x = next(h for h in report.histograms if h.feature == "x")
    assert x.kind == "numeric"
    # One bin per reference value, empty bins between them, out-of-range bins, missing.
    assert x.bins == ("< 0", "0", "(0, 1)", "1", "(1, 2)", "2", "(2, 3)", "3", "> 3", "(missing)")
    assert x.reference == (0, 100, 0, 100, 0, 100, 0, 100, 0, 0)
    assert x.current[-1] == 1  # the None
    assert x.current[-2] == sum(1 for r in cur if r["x"] == 9.0)  # above the reference range
    c = next(h for h in report.histograms if h.feature == "c")
    assert c.bins == ("a", "b", "(other)", "(missing)")
    assert c.reference == (200, 200, 0, 0)
    assert c.current == (100, 100, 100, 0)


def test_concept_changes_follow_the_detector():
    rng = random.Random(4)
    rows = []
    for i in range(6000):
        y = rng.random() < 0.5
        wrong = rng.random() < (0.1 if i < 3000 else 0.45)
        rows.append({"x": rng.random(), "pred": (not y) if wrong else y, "y": y})
    report = Monitor(prediction="pred", label="y").observe(rows)
    detector = ConceptDriftMonitor()
    states = [detector.update(r["pred"] != r["y"]) for r in rows]
    drifts = [i for i, s in enumerate(states) if s == 2]
    assert [c.offset for c in report.concept if c.level == "alarm"] == drifts
    first = next(c for c in report.concept if c.level == "alarm")
    assert 3000 <= first.offset < 3200
    assert first.detector == "DualADWIN" and first.first_offset == 0
    assert first.error > 2 * first.baseline and first.baseline < 0.15
    assert first.events == first.offset + 1
    # An error column gives the same changes.
    with_errors = [{"x": r["x"], "e": int(r["pred"] != r["y"])} for r in rows]
    assert Monitor(error="e").observe(with_errors).concept == report.concept


def test_regression_error_is_the_absolute_error():
    rng = random.Random(8)
    rows = [
        {"x": rng.random(), "p": 1.0, "y": 1.0 + rng.gauss(0, 0.1 if i < 2000 else 1.0)}
        for i in range(4000)
    ]
    report = Monitor(prediction="p", label="y", task="regression").observe(rows)
    assert any(c.level == "alarm" and c.offset >= 2000 for c in report.concept)
    labels = [e for e in report.evaluations if e.signal == "label"]
    assert {e.statistic for e in labels} >= {"psi", "ks"}  # a numeric column


def test_label_drift_and_a_reference_from_streamer_drift_reference():
    from streamer.drift.reference import build_reference
    from streamer.produce import dataset_rows
    from streamer.settings import load_settings

    rows = list(dataset_rows("Phishing"))
    ref = build_reference(load_settings(env={}), rows)
    same = Monitor(reference=ref, label="label", ignore=["id"], window_size=500).observe(rows)
    assert same.evaluations and same.alarms() == ()
    flipped = [{**r, "label": True} for r in rows]
    report = Monitor(reference=ref, label="label", ignore=["id"], window_size=500).observe(flipped)
    assert report.drifted == [("label", "label")]
    # A monitor's own reference has the same format, and pins the same way.
    mon = Monitor(ignore=["id"], label="label", reference_size=1250, window_size=500)
    mon.observe(rows)
    mine = mon.reference()
    assert mine.keys() == {"features", "labels"}
    assert mine["features"] == ref["features"] and mine["labels"] == ref["labels"]


def test_reference_files_load_from_a_path(tmp_path):
    mon = Monitor(reference_size=500, window_size=500)
    mon.observe(_rows(600))
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(mon.reference()))
    a = Monitor(reference=str(path), window_size=300).observe(_rows(900, seed=6))
    b = Monitor(reference=mon.reference(), window_size=300).observe(_rows(900, seed=6))
    assert a.to_dict() == b.to_dict() and a.evaluations
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"bad.json is not a reference file"):
        Monitor(reference=tmp_path / "bad.json")


def test_schema_reports_new_fields_but_not_ignored_ones():
    rows = _rows(3000)
    for i in range(2000, 3000, 10):
        rows[i]["surprise"] = 1
    report = Monitor(ignore=["id"], window_size=500, every=500).observe(rows)
    schema = [e for e in report.evaluations if e.signal == "schema"]
    assert {(e.feature, e.statistic) for e in schema if e.level == "alarm"} == {
        ("surprise", "new_field_rate")
    }
    assert ("schema", "surprise") in report.drifted


def test_latest_and_report_of_everything():
    mon = Monitor(features=["x"], window_size=500, schema=False)
    first = mon.observe(_rows(2500))
    second = mon.observe(_rows(1000, mu=2.0, seed=3))
    assert first.events == 2500 and second.events == 1000
    everything = mon.report()
    assert everything.evaluations == first.evaluations + second.evaluations
    latest = everything.latest()
    assert [e.statistic for e in latest] == [
        "psi",
        "js",
        "ks",
        "missing_rate",
        "out_of_range_rate",
    ]
    assert all(e.current_offsets == (3000, 3499) for e in latest)
    assert sum(everything.histograms[0].current) == 1500
    assert sum(second.histograms[0].current) == 1000
    assert repr(everything).startswith("Report(events=3500, evaluations=")
    mon.reset()
    assert mon.events == 0 and mon.report().evaluations == ()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": ["x", "y"], "label": "y"}, r"features \['y'\] are also the prediction"),
        ({"features": ["x"], "categorical": ["c"]}, r"categorical columns \['c'\] are not in"),
        ({"features": "x"}, "lists of column names, not a string"),
        ({"prediction": "y", "label": "y"}, "must be different columns"),
        ({"task": "ranking"}, "task must be 'classification' or 'regression'"),
        ({"thresholds": {"psi": (0.3, 0.2)}}, r"thresholds\['psi'\] must be \(warning, alarm\)"),
        ({"detector": "NoSuch", "error": "e"}, "unknown concept drift detector 'NoSuch'"),
        ({"reference": {"x": [1, 2]}}, "a mapping must be a reference file's content"),
        ({"reference": []}, "reference: no rows"),
    ],
)
def test_bad_settings_are_refused_with_a_message_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Monitor(**kwargs).observe(_rows(10))


def test_bad_rows_are_refused_with_a_message_naming_them():
    with pytest.raises(TypeError, match="got dict .*for one row pass \\[row\\]"):
        Monitor().observe({"x": 1.0})
    with pytest.raises(TypeError, match="row 1 is a list, not a mapping"):
        Monitor().observe([{"x": 1.0}, [1.0]])
    with pytest.raises(ValueError, match=r"row 2: a classifier's error must be 0 or 1, got 0.5"):
        Monitor(error="e").observe([{"x": 1.0, "e": 0}, {"x": 1.0, "e": 1}, {"x": 1.0, "e": 0.5}])
    with pytest.raises(ValueError, match="no 'labels' snapshot for the label column"):
        mon = Monitor(reference_size=5)
        mon.observe(_rows(10))
        Monitor(reference=mon.reference(), label="y").observe(_rows(3))
    with pytest.raises(ValueError, match="no feature columns to watch"):
        Monitor(ignore=["x"]).observe([{"x": 1}])
    with pytest.raises(ValueError, match="compare sets window_size itself"):
        compare(_rows(10), _rows(10), window_size=5)
    with pytest.raises(ValueError, match="compare: no current rows"):
        compare(_rows(10), [])


def test_evaluation_to_dict_names_offsets_as_drift_events_do():
    e = Evaluation("feature", "x", "psi", 0.3, 0.1, 0.25, "alarm", (0, 9), (10, 19), 20)
    assert e.to_dict() == {
        "signal": "feature",
        "feature": "x",
        "statistic": "psi",
        "value": 0.3,
        "warning": 0.1,
        "alarm": 0.25,
        "level": "alarm",
        "reference_first_offset": 0,
        "reference_last_offset": 9,
        "current_first_offset": 10,
        "current_last_offset": 19,
        "events": 20,
    }
    assert Report([e]).drifted == [("feature", "x")]
    assert math.isclose(Report([e]).latest()[0].value, 0.3)
