from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamer.decode import AvroDecoder, AvroEncoder, JsonDecoder, JsonEncoder, make_decoder
from streamer.errors import ConfigError, RecordError

SCHEMA = {
    "type": "record",
    "name": "E",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "x", "type": "double"},
        {"name": "n", "type": "long"},
        {"name": "c", "type": ["null", "string"], "default": None},
    ],
}
# A schema whose plain payloads begin with a zero byte (a zero long), like a framed header.
ZERO_FIRST = {
    "type": "record",
    "name": "Z",
    "fields": [{"name": "n", "type": "long"}, {"name": "s", "type": "string"}],
}


def test_json_decodes_objects_and_refuses_the_rest():
    assert JsonDecoder().decode(b'{"id": "a", "x": 1}') == {"id": "a", "x": 1}
    for bad, why in [
        (b"{nope", "not valid JSON"),
        (b"[1, 2]", "expected a JSON object"),
        (b"NaN", "not valid JSON"),
        (b'{"x": 1e999}', "not valid JSON"),
    ]:
        with pytest.raises(RecordError, match=why) as info:
            JsonDecoder().decode(bad)
        assert (info.value.stage, info.value.reason) == ("decode", "undecodable")


def test_avro_plain_and_framed_round_trip():
    row = {"id": "a", "x": 1.5, "n": 3, "c": "k"}
    plain = AvroEncoder(SCHEMA).encode(row)
    framed = AvroEncoder(SCHEMA, schema_id=9).encode(row)
    assert framed[:5] == struct.pack(">bI", 0, 9) and framed[5:] == plain
    auto = AvroDecoder(SCHEMA, {9: SCHEMA})
    assert auto.decode(plain) == row
    assert auto.decode(framed) == row
    assert AvroDecoder(schema_ids={9: SCHEMA}, framing="confluent").decode(framed) == row
    assert AvroDecoder(SCHEMA, framing="plain").decode(plain) == row


def test_avro_framing_errors():
    framed = AvroEncoder(SCHEMA, schema_id=4).encode({"id": "a", "x": 1.0, "n": 1, "c": None})
    with pytest.raises(RecordError, match="schema id 4 is not in") as info:
        AvroDecoder(schema_ids={9: SCHEMA}, framing="confluent").decode(framed)
    assert info.value.reason == "unknown_schema"
    with pytest.raises(RecordError, match="no Confluent wire-format header"):
        AvroDecoder(schema_ids={9: SCHEMA}, framing="confluent").decode(b"\x02ab")
    with pytest.raises(RecordError, match="ends at byte"):
        AvroDecoder(SCHEMA, framing="plain").decode(
            AvroEncoder(SCHEMA).encode({"id": "a", "x": 1.0, "n": 1, "c": None}) + b"junk"
        )
    with pytest.raises(RecordError, match="not Avro of the schema"):
        AvroDecoder(SCHEMA, framing="plain").decode(b"\x08ab")


def test_auto_framing_falls_back_to_plain_for_payloads_that_start_with_zero():
    row = {"n": 0, "s": "hello world"}
    plain = AvroEncoder(ZERO_FIRST).encode(row)
    assert plain[0] == 0
    # The bytes after the "header" are not a valid framed record of the mapped schema.
    dec = AvroDecoder(ZERO_FIRST, {int.from_bytes(plain[1:5], "big"): SCHEMA})
    assert dec.decode(plain) == row


def test_make_decoder_checks_schema_files(tmp_path):
    with pytest.raises(ConfigError, match=r"^input.avro.schema: Avro input needs"):
        make_decoder("avro", schema_file=None, schema_ids={}, framing="auto")
    with pytest.raises(ConfigError, match=r"^input.avro.schema: .* does not exist"):
        make_decoder("avro", schema_file=tmp_path / "x.avsc", schema_ids={}, framing="auto")
    bad = tmp_path / "bad.avsc"
    bad.write_text('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "nope"}]}')
    with pytest.raises(ConfigError, match=r"^input.avro.schema_ids.3: .* not a valid Avro schema"):
        make_decoder("avro", schema_file=None, schema_ids={3: bad}, framing="auto")
    ok = tmp_path / "ok.avsc"
    ok.write_text('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "long"}]}')
    with pytest.raises(ConfigError, match=r"^input.avro.schema_ids: confluent framing needs"):
        make_decoder("avro", schema_file=ok, schema_ids={}, framing="confluent")
    with pytest.raises(ConfigError, match=r"^input.avro.schema: plain framing needs"):
        make_decoder("avro", schema_file=None, schema_ids={1: ok}, framing="plain")
    assert isinstance(
        make_decoder("json", schema_file=None, schema_ids={}, framing="auto"), JsonDecoder
    )


finite = st.floats(allow_nan=False, allow_infinity=False)
rows = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=20),
        "x": finite,
        "n": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "c": st.none() | st.text(max_size=10),
    }
)


@given(rows, st.none() | st.integers(min_value=0, max_value=2**31 - 1))
def test_avro_round_trip_property(row, schema_id):
    data = AvroEncoder(SCHEMA, schema_id=schema_id).encode(row)
    framing = "plain" if schema_id is None else "confluent"
    ids = {} if schema_id is None else {schema_id: SCHEMA}
    got = AvroDecoder(SCHEMA if schema_id is None else None, ids, framing).decode(data)
    assert got == row


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | finite
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_json_round_trip_property(obj):
    got = JsonDecoder().decode(JsonEncoder().encode(obj))
    assert got == obj
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in got.values())
