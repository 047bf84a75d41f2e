from __future__ import annotations

import orjson
import pytest

from streamer.decode import JsonEncoder
from streamer.errors import StreamerError
from streamer.produce import csv_rows, dataset_rows, file_rows, jsonl_rows, produce_rows
from streamer.testing import ListSink


def test_csv_types_cells_and_drops_empty_ones():
    rows = list(csv_rows(["id,a,b,c,label", "x1,1,2.5,TRUE,cat", "x2,,-3,false,"]))
    assert rows == [
        {"id": "x1", "a": 1, "b": 2.5, "c": True, "label": "cat"},
        {"id": "x2", "b": -3, "c": False},
    ]


def test_jsonl_skips_blank_lines_and_names_bad_ones():
    assert list(jsonl_rows(['{"a": 1}', "", '{"b": 2}'])) == [{"a": 1}, {"b": 2}]
    with pytest.raises(StreamerError, match="line 2 is not JSON"):
        list(jsonl_rows(['{"a": 1}', "{oops"]))
    with pytest.raises(StreamerError, match="line 1 is not a JSON object"):
        list(jsonl_rows(["[1]"]))


def test_file_rows_by_extension(tmp_path):
    (tmp_path / "a.csv").write_text("id,x\n1,2\n")
    (tmp_path / "a.jsonl").write_text('{"id": 1, "x": 2}\n')
    assert list(file_rows(tmp_path / "a.csv")) == [{"id": 1, "x": 2}]
    assert list(file_rows(tmp_path / "a.jsonl")) == [{"id": 1, "x": 2}]
    with pytest.raises(StreamerError, match="does not exist"):
        list(file_rows(tmp_path / "none.csv"))


def test_river_datasets_by_name():
    rows = list(dataset_rows("TrumpApproval", limit=3))
    assert [r["id"] for r in rows] == ["0", "1", "2"]
    assert isinstance(rows[0]["label"], float)
    assert len(list(dataset_rows("synth.SEA", limit=5))) == 5
    with pytest.raises(StreamerError, match="River has no dataset 'Nope'"):
        dataset_rows("Nope")


def test_produce_rows_adds_ids_keys_and_stops_on_request():
    sink = ListSink()
    rows = [{"x": 1}, {"id": "given", "x": 2, "tenant": "t1"}, {"x": 3}]
    assert produce_rows(rows, sink, "t", JsonEncoder()) == 3
    assert [(k, orjson.loads(v)["id"]) for _, v, k, _ in sink.records] == [
        (b"0", "0"),
        (b"given", "given"),
        (b"2", "2"),
    ]
    keyed = ListSink()
    produce_rows(rows, keyed, "t", JsonEncoder(), key_field="tenant")
    assert [k for _, _, k, _ in keyed.records] == [None, b"t1", None]
    stopped = ListSink()
    n = produce_rows(
        iter(rows), stopped, "t", JsonEncoder(), should_stop=lambda: len(stopped.records) >= 2
    )
    assert n == 2
    assert produce_rows(rows, ListSink(), "t", JsonEncoder(), limit=1) == 1
