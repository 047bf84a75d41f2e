"""Model updates through a real broker: publishing, the registry, subscribers, refusals."""

from __future__ import annotations

import importlib.util
import pickle
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any
from wsgiref.simple_server import make_server

import orjson
import pytest

from streamer import kafka
from streamer.decode import JsonEncoder
from streamer.produce import produce_rows
from streamer.registry import Accepted, ModelSubscriber, ModelUpdate, read_registry, update_records
from streamer.settings import Settings
from streamer.signing import Signer
from streamer.synth import concept_drift
from streamer.testing import read_until, settings_env, wait_for
from streamer.worker import Worker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
N = 9000


def _rows(n: int = N) -> list[dict[str, Any]]:
    return [
        {"id": f"e{i}", **x, "label": y}
        for i, (x, y) in enumerate(concept_drift("sea", seed=1, position=5001, n=n))
    ]


def _worker(make_settings: Any, **sections: Any) -> tuple[Settings, Worker]:
    sections.setdefault("models", {"every_events": 2000})
    settings = make_settings(**sections)
    worker = Worker(settings)
    worker.provision_topics()
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    produce_rows(_rows(), sink, settings.topics.events, JsonEncoder())
    sink.close()
    return settings, worker


def _streamer(settings: Settings, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        env=settings_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        **kw,
    )


def test_a_subscriber_in_another_process_receives_every_version_in_order(make_settings, tmp_path):
    settings, worker = _worker(make_settings)
    log = tmp_path / "watch.log"
    with open(log, "w") as out:
        watch = subprocess.Popen(
            [sys.executable, "-m", "streamer", "models", "watch"],
            env=settings_env(settings),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_for(lambda: "watching" in log.read_text(), timeout=60, what="the watcher starts")
        worker.run(max_events=N)
        published = [r.update for r in read_registry(settings) if isinstance(r, Accepted)]
        assert [u.reason for u in published][:1] == ["initial"]
        assert "promotion" in {u.reason for u in published}

        def seen() -> list[tuple[int, int]]:
            return [
                (int(v), int(r)) for v, r in re.findall(r" v(\d+)\s+rev (\d+)\s", log.read_text())
            ]

        want = [u.order for u in published]
        wait_for(lambda: seen() == want, timeout=60, what=f"the watcher sees {want}")
        assert want == sorted(want)  # in order: versions and revisions only go up
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(30)
    assert watch.returncode == 0, log.read_text()[-2000:]
    assert "REFUSED" not in log.read_text()

    # The registry lists every version with its parent, reason and lineage.
    listed = _streamer(settings, "models", "list")
    assert listed.returncode == 0, listed.stderr
    promoted = next(u for u in published if u.reason == "promotion")
    line = next(x for x in listed.stdout.splitlines() if f" v{promoted.version} " in x)
    assert f"parent v{promoted.parent_version}" in line and "promotion" in line
    assert f"offsets {promoted.first_offset}-{promoted.last_offset}" in line
    # ...and `models get` writes the model, which predicts as the worker's champion did.
    out = tmp_path / "model.pkl"
    got = _streamer(settings, "models", "get", "--version", str(promoted.version), "-o", str(out))
    assert got.returncode == 0, got.stderr
    with open(out, "rb") as f:
        model = pickle.load(f)
    assert type(model).__name__ == "Pipeline"
    assert model.predict_proba_one({"0": 5.0, "1": 5.0, "2": 5.0})


def _publish_raw(settings: Settings, records: list[tuple[str, bytes, Any]]) -> None:
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    for key, value, headers in records:
        sink.produce(settings.topics.model_updates, value, key.encode(), headers, partition=0)
    sink.close()


class _Canary:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        import os

        return (os.system, (f"touch {self.path}",))


def test_tampered_foreign_unsafe_and_older_updates_are_refused(make_settings, tmp_path):
    """The subscriber keeps the last good model and says why it refused each of the others."""
    from river import linear_model

    settings = make_settings()
    Worker(settings).provision_topics()
    signer = Signer(settings.signing_key() or b"")

    def records(version: int, revision: int, model: Any = None, **kw: Any) -> list[Any]:
        update = ModelUpdate(
            name="m", topic="events", partition=0, version=version, revision=revision
        )
        return update_records(
            update,
            model or linear_model.LogisticRegression(),
            signer=kw.get("signer", signer),
            chunk_bytes=256,
        )

    good = records(1, 100)
    tampered = records(1, 200)
    manifest = orjson.loads(tampered[-1][1])
    manifest["events_learned"] = 999  # a signed field changed
    tampered[-1] = (tampered[-1][0], orjson.dumps(manifest), tampered[-1][2])
    flipped = records(1, 300)
    flipped[0] = (flipped[0][0], flipped[0][1][:-1] + bytes([flipped[0][1][-1] ^ 1]), flipped[0][2])
    foreign = records(1, 400, signer=Signer(b"somebody-else's-key"))
    unsigned = records(1, 500)
    manifest = orjson.loads(unsigned[-1][1])
    manifest["signature"] = ""
    unsigned[-1] = (unsigned[-1][0], orjson.dumps(manifest), unsigned[-1][2])
    canary = tmp_path / "canary"
    # Signed with the right key (as a leaked key would allow), naming os.system.
    update = ModelUpdate(name="m", topic="events", partition=0, version=1, revision=600)
    payload = zlib.compress(pickle.dumps(_Canary(str(canary))))
    evil = update_records(update, None, signer=signer, chunk_bytes=256, payload=payload)
    older = records(1, 50)
    newer = records(2, 10)
    for batch in (good, tampered, flipped, foreign, unsigned, evil, older, newer):
        _publish_raw(settings, batch)

    with ModelSubscriber(settings) as sub:
        accepted: list[Accepted] = []
        wait_for(
            lambda: (
                accepted.extend(sub.poll(0.5)) or (len(sub.refused) >= 6 and len(accepted) >= 2)
            ),
            timeout=60,
            what="every update judged",
        )
        assert [a.update.order for a in accepted] == [(1, 100), (2, 10)]
        assert [r.reason for r in sub.refused] == [
            "bad_signature",
            "bad_signature",
            "foreign_key",
            "unsigned",
            "unpickle",
            "older",
        ]
        assert "os.system" in sub.refused[4].detail or "posix.system" in sub.refused[4].detail
        assert type(sub.models["m/events/0"]).__name__ == "LogisticRegression"
    assert not canary.exists()


def test_a_subscriber_that_starts_late_follows_whole_updates_only(make_settings):
    """Following from the end: an update already on the topic is not shown (nor refused, when
    the start lands inside it, as it does on brokers whose end is the last batch's start); the
    next whole update is accepted, and a truncated one after it is still refused."""
    from river import linear_model

    settings = make_settings()
    Worker(settings).provision_topics()
    signer = Signer(settings.signing_key() or b"")

    def records(version: int, revision: int) -> list[Any]:
        update = ModelUpdate(
            name="m", topic="events", partition=0, version=version, revision=revision
        )
        model = linear_model.LogisticRegression()
        return update_records(update, model, signer=signer, chunk_bytes=128)

    first = records(1, 100)
    assert len(first) > 3  # chunks, then the manifest, in one batch
    _publish_raw(settings, first)
    with ModelSubscriber(settings, from_beginning=False) as sub:
        accepted: list[Accepted] = []
        accepted.extend(sub.poll(1.0))  # the start position is resolved
        _publish_raw(settings, records(2, 10))
        truncated = records(3, 10)
        _publish_raw(settings, truncated[1:])  # its first chunk lost
        wait_for(
            lambda: accepted.extend(sub.poll(0.5)) or (accepted and sub.refused),
            timeout=60,
            what="the next update and the truncated one",
        )
        assert [a.update.order for a in accepted] == [(2, 10)]
        assert [(r.reason, r.update and r.update.order) for r in sub.refused] == [
            ("truncated", (3, 10))
        ]


def test_the_scoring_service_example_swaps_to_the_promoted_model(make_settings):
    spec = importlib.util.spec_from_file_location(
        "scoring_service", ROOT / "docs" / "examples" / "scoring_service.py"
    )
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    settings, worker = _worker(make_settings)
    worker.run(max_events=N)
    scorer = example.Scorer(settings).start()
    try:
        final = max(
            (r.update for r in read_registry(settings) if isinstance(r, Accepted)),
            key=lambda u: u.order,
        )
        wait_for(
            lambda: scorer.update is not None and scorer.update.order == final.order,
            timeout=60,
            what="the newest model",
        )
        answer = scorer.predict({"0": 9.0, "1": 9.0, "2": 0.5})
        assert answer["version"] == final.version >= 2
        assert scorer.swaps >= 3  # initial, periodic and promoted models went by
        assert answer["prediction"] in (True, False)

        # Over HTTP: classes as the predictions topic writes them; a bad request is a 400
        # that says why, not a server error.
        server = make_server("127.0.0.1", 0, example.app(scorer))
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        try:
            url = f"http://127.0.0.1:{server.server_port}/predict"
            ok = _post(url, b'{"x": {"0": 9.0, "1": 9.0, "2": 0.5}}')
            bad = _post(url, b'{"x": [1]}')
            not_json = _post(url, b"x=1")
        finally:
            server.shutdown()
            server.server_close()
    finally:
        scorer.close()
    preds = read_until(settings.kafka, settings.topics.predictions, lambda out: len(out) >= N)
    docs = [orjson.loads(m.value()) for m in preds]
    assert {d["version"] for d in docs} == {1, final.version}
    assert ok[0] == 200, ok
    assert ok[1]["version"] == final.version
    assert set(ok[1]["proba"]) == set(docs[-1]["proba"]) == {"false", "true"}
    assert bad[0] == 400 and bad[1]["error"].startswith("bad request: "), bad
    assert "must be an object of features, got list" in bad[1]["error"]
    assert not_json[0] == 400 and "not JSON" in not_json[1]["error"], not_json


def _post(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())
