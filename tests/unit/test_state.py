"""Partition state and its checkpoints: records, verification, restore."""

from __future__ import annotations

import itertools
import pickle

import orjson
import pytest

from streamer.pipeline import Pipeline
from streamer.settings import load_settings
from streamer.signing import Signer, dumps
from streamer.state import Restorer, checkpoint_records
from streamer.synth import concept_drift
from streamer.testing import json_records

SIGNER = Signer(b"unit-test-signing-key")


def _rows(n, seed=1):
    return [
        {"id": f"e{i}", **x, "label": y}
        for i, (x, y) in enumerate(concept_drift("sea", seed=seed, position=n // 2, n=n))
    ]


def _restore(records, **kw):
    r = Restorer("events", 0, signer=SIGNER, **kw)
    for key, value, headers in records:
        r.add(key.encode(), value, headers)
    return r


def _state(n=3000, **settings):
    s = load_settings(env={}, overrides=settings or None)
    pipeline = Pipeline(s)
    state = pipeline.new_state("events", 0)
    pipeline.process(state, list(json_records(_rows(n))))
    return pipeline, state


def test_a_restored_state_continues_exactly_like_the_original():
    pipeline, state = _state(4000)
    records = checkpoint_records(state, signer=SIGNER, chunk_bytes=10_000, writer="w")
    restored = _restore(records).best()
    assert restored is not None
    copy = restored.state
    more = list(json_records(_rows(8000)[4000:], start=4000))
    a = pipeline.process(state, more)
    b = pipeline.process(copy, more)
    assert [(e.offset, y, p) for e, y, p in a.predictions[0].scored] == [
        (e.offset, y, p) for e, y, p in b.predictions[0].scored
    ]
    assert a.drift_events == b.drift_events and a.drift_events
    assert copy.champion.evaluation.values() == state.champion.evaluation.values()
    assert copy.next_offset == state.next_offset == 8000


def test_a_large_state_is_chunked_and_each_checkpoint_alternates_its_chunk_keys():
    _, state = _state(500)
    first = checkpoint_records(state, signer=SIGNER, chunk_bytes=1024, writer="w")
    second = checkpoint_records(state, signer=SIGNER, chunk_bytes=1024, writer="w")
    assert len(first) > 3
    assert {k.split("-")[0] for k, _, _ in first[:-1]} == {"events/0#b"}
    assert {k.split("-")[0] for k, _, _ in second[:-1]} == {"events/0#a"}
    manifest = orjson.loads(first[-1][1])
    assert manifest["chunks"] == len(first) - 1 and manifest["next_offset"] == 500
    assert manifest["seq"] == 1 and orjson.loads(second[-1][1])["seq"] == 2
    # Interleaved with other partitions' records, the newest complete one wins.
    other = [
        ("events/1", b"{}", None),
        ("events/10#a-0", b"x", None),
    ]
    restored = _restore([*first, *other, *second]).best()
    assert restored is not None and restored.manifest["seq"] == 2


def _tamper(records, index, change):
    out = list(records)
    key, value, headers = out[index]
    out[index] = (key, change(value), headers)
    return out


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        (
            lambda rs: _tamper(
                rs, -1, lambda v: v.replace(b'"next_offset":300', b'"next_offset":301')
            ),
            "bad_signature",
        ),
        (lambda rs: _tamper(rs, 0, lambda v: v[:-1] + bytes([v[-1] ^ 1])), "bad_signature"),
        (lambda rs: [*rs[:1], rs[-1]], "truncated"),
        (
            lambda rs: _tamper(
                rs,
                -1,
                lambda v: orjson.dumps(
                    {k: x for k, x in orjson.loads(v).items() if k != "signature"}
                ),
            ),
            "unsigned",
        ),
        (lambda rs: _tamper(rs, -1, lambda v: b"not json"), "format"),
        (lambda rs: _tamper(rs, -1, lambda v: v.replace(b'"format":1', b'"format":9')), "format"),
    ],
    ids=["manifest", "chunk", "truncated", "unsigned", "garbage", "format"],
)
def test_a_bad_checkpoint_is_refused_and_the_previous_good_one_used(how, reason):
    _, state = _state(200)
    good = checkpoint_records(state, signer=SIGNER, chunk_bytes=2048, writer="w")
    state.next_offset = 300
    bad = how(checkpoint_records(state, signer=SIGNER, chunk_bytes=2048, writer="w"))
    r = _restore([*good, *bad])
    assert [why for why, _ in r.refused] == [reason]
    restored = r.best()
    assert restored is not None and restored.state.next_offset == 200


def test_a_checkpoint_signed_with_another_key_is_refused_with_both_key_ids():
    _, state = _state(200)
    other = Signer(b"another-key-of-length")
    r = _restore(checkpoint_records(state, signer=other, chunk_bytes=4096, writer="w"))
    assert r.best() is None
    ((reason, detail),) = r.refused
    assert reason == "foreign_key" and other.key_id in detail and SIGNER.key_id in detail


def test_a_checkpoint_of_other_model_settings_is_refused():
    _, state = _state(200)
    records = checkpoint_records(
        state, signer=SIGNER, chunk_bytes=4096, writer="w", state_digest="made-elsewhere"
    )
    r = _restore(records, state_digest="ours")
    assert r.best() is None and r.refused[0][0] == "settings_changed"


def test_a_signed_payload_that_names_forbidden_code_is_refused_on_unpickling(tmp_path):
    """Signed with the right key (a leaked key), still refused by the unpickler."""

    class Evil:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {tmp_path / 'canary'}",))

    _, state = _state(100)
    state.lifecycle = Evil()
    import zlib

    payload = zlib.compress(pickle.dumps(state, protocol=5))
    r = _restore(
        checkpoint_records(state, signer=SIGNER, chunk_bytes=4096, writer="w", payload=payload)
    )
    assert r.best() is None
    assert r.refused[0][0] == "unpickle"
    assert not (tmp_path / "canary").exists()


def test_state_pickles_without_settings_objects_inside():
    from pydantic import BaseModel

    _, state = _state(3000)
    found = []

    class Spy(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, BaseModel):
                found.append(type(obj).__name__)
            return None

    import io

    Spy(io.BytesIO(), protocol=5).dump(state)
    assert found == []
    assert len(dumps(state)) < 2_000_000
    assert all(s is not None for s in itertools.islice([state.drift, state.champion.drift], 2))
