"""State that survives: kills, graceful restarts, rebalances, broker pauses, bad checkpoints.

The promise (DESIGN.md, Guarantees): a worker killed at any point and restarted ends with the
same model, the same metrics and the same predictions as one never killed. Every test here
compares real worker processes on a real broker with :func:`streamer.testing.reference_run`,
the same pipeline run once, uninterrupted, in memory.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from streamer import kafka
from streamer.broker import free_port
from streamer.decode import JsonEncoder
from streamer.produce import produce_rows
from streamer.settings import Settings
from streamer.signing import Signer
from streamer.state import restore_all
from streamer.synth import concept_drift
from streamer.testing import (
    committed_count,
    read_committed_values,
    read_until,
    reference_run,
    settings_env,
    wait_for,
)
from streamer.worker import Worker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
# Short sessions: a killed member's partitions come back in about 7 s instead of 13.
QUICK_GROUP = {"session.timeout.ms": 3000, "heartbeat.interval.ms": 500}


def _rows(n: int, *, seed: int = 1, prefix: str = "e") -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{i}", **x, "label": y}
        for i, (x, y) in enumerate(concept_drift("sea", seed=seed, position=n // 2, n=n))
    ]


def _prepare(make_settings: Any, rows: list[dict[str, Any]], **sections: Any) -> Settings:
    sections.setdefault("kafka", {"consumer": dict(QUICK_GROUP)})
    settings = make_settings(**sections)
    Worker(settings).provision_topics()
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    produce_rows(rows, sink, settings.topics.events, JsonEncoder())
    sink.close()
    return settings


class Proc:
    """A ``streamer run`` process whose output goes to a file (a pipe could fill and block)."""

    def __init__(self, settings: Settings, tmp: Path, *args: str, **env: str) -> None:
        self.log = tmp / f"worker-{time.monotonic_ns()}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streamer", "run", *args],
                env=settings_env(settings, **env),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"worker did not stop:\n{self.text()[-3000:]}") from None


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _advance(settings: Settings, proc: Proc, more: int, *, end: int) -> None:
    """Wait until ``more`` events beyond the committed offset are committed (at most up to
    ``end - 1``), or the process exits."""
    target = min(committed_count(settings) + more, end - 1)
    wait_for(
        lambda: committed_count(settings) >= target or proc.proc.poll() is not None,
        timeout=120,
        what=f"offset {target} committed",
    )


def _predictions(settings: Settings, ids: set[str], timeout: float = 120) -> list[dict[str, Any]]:
    """Every prediction record (duplicates included) until each id has one."""

    def done(records: list[Any]) -> bool:
        return {orjson.loads(m.value())["event_id"] for m in records} >= ids

    records = read_until(
        settings.kafka, settings.topics.predictions, done, timeout=timeout, what="every id"
    )
    return [orjson.loads(m.value()) for m in records]


def _assert_same_predictions(docs: list[dict[str, Any]], reference: Any) -> None:
    seen = set()
    for doc in docs:
        want = reference.predictions[doc["event_id"]]
        got = {k: doc[k] for k in ("prediction", "proba", "version")}
        assert got == want, f"{doc['event_id']} at offset {doc['offset']}: {got} != {want}"
        seen.add(doc["event_id"])
    assert seen == set(reference.predictions)


def _final_states(settings: Settings, keys: list[tuple[str, int]]) -> dict[Any, Any]:
    """The newest checkpoint of each partition, read back from the changelog."""
    key = settings.signing_key()
    assert key is not None
    topic = settings.changelog_topic
    admin = kafka.make_admin(settings.kafka)
    n = kafka.partition_count(admin, topic)
    records = kafka.read_to_end(settings.kafka, topic, range(n))
    restorers = restore_all(records, keys, signer=Signer(key), state_digest=settings.state_digest())
    out = {}
    for k, r in restorers.items():
        restored = r.best()
        assert restored is not None, f"no checkpoint of {k}: {r.refused}"
        out[k] = restored.state
    return out


def _assert_same_state(state: Any, reference: Any) -> None:
    assert state.next_offset == reference.state.next_offset
    got, want = state.champion, reference.state.champion
    assert got.evaluation.values() == want.evaluation.values()  # exact
    assert (got.n_learned, got.version) == (want.n_learned, want.version)


def test_killed_at_20_random_points_ends_as_if_never_killed(make_settings, tmp_path):
    """SIGKILL at 20 seeded random points, a restart each time (with another PYTHONHASHSEED):
    every prediction record, duplicates included, equals the uninterrupted run's; the final
    metrics are equal; no event is missing."""
    n = 16_000
    rows = _rows(n)
    settings = _prepare(make_settings, rows, checkpoint={"every_events": 700})
    reference = reference_run(settings, rows, topic=settings.topics.events)
    rng = random.Random(20261127)
    env = {"STREAMER_WORKER__BATCH_SIZE": "50"}
    kills = 0
    restored_from_changelog = 0
    while kills < 20:
        proc = Proc(settings, tmp_path, PYTHONHASHSEED=str(rng.randrange(2**32)), **env)
        if kills % 5 == 4:
            # Some kills while starting: joining the group, restoring, replaying.
            time.sleep(rng.uniform(0.5, 4.0))
        else:
            _advance(settings, proc, rng.randrange(100, 450), end=n)
            time.sleep(rng.uniform(0.0, 0.05))  # anywhere in the next batch
        assert proc.proc.poll() is None, proc.text()[-3000:]
        proc.stop(signal.SIGKILL)
        kills += 1
        restored_from_changelog += "restored from the changelog" in proc.text()
    final = Proc(settings, tmp_path, **env)
    wait_for(lambda: committed_count(settings) == n, timeout=180, what="every event committed")
    assert final.stop() == 0, final.text()[-3000:]
    assert restored_from_changelog >= 10  # the kills did not all land before a checkpoint

    docs = _predictions(settings, set(reference.predictions))
    _assert_same_predictions(docs, reference)
    key = (settings.topics.events, 0)
    _assert_same_state(_final_states(settings, [key])[key], reference)
    drift = read_until(
        settings.kafka,
        settings.topics.drift_events,
        lambda out: len(out) >= len(reference.drift_events),
        what="the drift events",
    )
    published = {orjson.dumps({**orjson.loads(m.value()), "time": None}) for m in drift}
    assert published == {orjson.dumps(e) for e in reference.drift_events}
    assert any(e["signal"] == "concept" for e in reference.drift_events)


def test_sigterm_at_20_points_ends_as_if_never_stopped(make_settings, tmp_path):
    n = 16_000
    rows = _rows(n, seed=3)
    settings = _prepare(make_settings, rows, checkpoint={"every_events": 100_000})
    reference = reference_run(settings, rows, topic=settings.topics.events)
    rng = random.Random(7)
    env = {"STREAMER_WORKER__BATCH_SIZE": "40"}
    for _ in range(20):
        proc = Proc(settings, tmp_path, PYTHONHASHSEED=str(rng.randrange(2**32)), **env)
        start = committed_count(settings)
        # Stopped once it has joined (its signal handlers are in place by then).
        wait_for(lambda p=proc: "assigned [" in p.text(), timeout=60, what="the worker joins")
        _advance(settings, proc, rng.randrange(50, 350), end=n)
        assert proc.stop() == 0, proc.text()[-3000:]
        # Checkpoints are far apart here: each one was written at the graceful stop.
        assert "restored from the changelog" in proc.text() or start == 0, proc.text()[-2000:]
    final = Proc(settings, tmp_path, **env)
    # The previous run may have committed the last event already: the final one must still
    # have its signal handlers in place before it is stopped.
    wait_for(lambda: "assigned [" in final.text(), timeout=60, what="the worker joins")
    wait_for(lambda: committed_count(settings) == n, timeout=120, what="every event committed")
    assert final.stop() == 0
    docs = _predictions(settings, set(reference.predictions))
    _assert_same_predictions(docs, reference)
    # A graceful stop delivers and commits everything it processed: nothing is emitted twice.
    assert len(docs) == n
    key = (settings.topics.events, 0)
    _assert_same_state(_final_states(settings, [key])[key], reference)


def test_partitions_keep_their_models_across_a_rebalance(make_settings, tmp_path):
    """Two workers over four partitions: the second joins mid-stream, the first is killed
    mid-stream. Each partition's model and metrics continue where they were."""
    n = 12_000
    rows = _rows(n, seed=5)
    settings = _prepare(
        make_settings,
        rows,
        topics={"partitions": 4},
        # Small chunks: each checkpoint spans several changelog records.
        checkpoint={"every_events": 300, "chunk_bytes": 8192},
    )
    topic = settings.topics.events
    placed = {
        m.key().decode(): m.partition()
        for m in read_until(settings.kafka, topic, lambda out: len(out) >= n)
    }
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for row in rows:  # in offset order within each partition
        by_partition.setdefault(placed[row["id"]], []).append(row)
    references = {
        p: reference_run(settings, r, topic=topic, partition=p) for p, r in by_partition.items()
    }
    env = {"STREAMER_WORKER__BATCH_SIZE": "50"}
    first = Proc(settings, tmp_path, **env)
    wait_for(
        lambda: committed_count(settings, 4) >= n // 4, timeout=120, what="a quarter committed"
    )
    second = Proc(settings, tmp_path, **env)
    wait_for(lambda: "assigned [(" in second.text(), timeout=60, what="the second worker joins")
    wait_for(lambda: committed_count(settings, 4) >= n // 2, timeout=120, what="half committed")
    first.stop(signal.SIGKILL)
    wait_for(lambda: committed_count(settings, 4) == n, timeout=180, what="every event committed")
    assert second.stop() == 0, second.text()[-3000:]
    assert "restored from the changelog" in second.text()

    docs = _predictions(settings, {r["id"] for r in rows})
    for doc in docs:
        reference = references[doc["partition"]]
        got = {k: doc[k] for k in ("prediction", "proba", "version")}
        assert got == reference.predictions[doc["event_id"]], doc
    keys = [(topic, p) for p in by_partition]
    states = _final_states(settings, keys)
    for (_, p), state in states.items():
        _assert_same_state(state, references[p])


def test_a_paused_broker_is_ridden_out(make_settings, tmp_path):
    """SIGSTOP the broker for 40 s while the worker has a batch in flight, then SIGCONT: the
    worker does not exit, and its state carries on."""
    from streamer.broker import EmbeddedBroker

    n = 6000
    rows = _rows(n, seed=9)
    with EmbeddedBroker() as broker:
        base = make_settings(
            kafka={"bootstrap_servers": broker.bootstrap_servers, "consumer": dict(QUICK_GROUP)},
        )
        settings = base
        Worker(settings).provision_topics()
        sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
        produce_rows(rows, sink, settings.topics.events, JsonEncoder())
        sink.close()
        reference = reference_run(settings, rows, topic=settings.topics.events)
        # A slow pace (small batches, a rate-limited source is not needed: the pause lands
        # mid-stream) keeps batches in flight when the broker stops.
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        proc = Proc(
            settings,
            tmp_path,
            STREAMER_WORKER__BATCH_SIZE="20",
            STREAMER_PROMETHEUS__PORT=str(port),
        )
        wait_for(lambda: committed_count(settings) >= 1000, timeout=120, what="1000 committed")
        assert _http_status(base_url + "/readyz") == 200
        assert broker.pid is not None
        os.kill(broker.pid, signal.SIGSTOP)
        paused = time.monotonic()
        try:
            # Not ready while the broker does not answer (a load balancer stops sending it
            # work), but alive: restarting it would not bring the broker back.
            wait_for(
                lambda: _http_status(base_url + "/readyz") == 503,
                timeout=30,
                what="/readyz 503 during the outage",
            )
            time.sleep(max(0.0, 40 - (time.monotonic() - paused)))  # the outage under test
            assert proc.proc.poll() is None, f"worker exited during the pause:\n{proc.text()}"
            assert _http_status(base_url + "/healthz") == 200
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        wait_for(lambda: _http_status(base_url + "/readyz") == 200, timeout=120, what="ready again")
        # Its session expired during the pause: the partition was lost, then assigned to it
        # again, and it went on with the state it kept in memory (not a new model).
        wait_for(
            lambda: "restored from this worker's memory" in proc.text(),
            timeout=120,
            what="the partition back, from memory",
        )
        log = proc.text()
        assert log.rindex("assigned [") > log.index("lost ["), log[-3000:]
        wait_for(lambda: committed_count(settings) == n, timeout=180, what="every event committed")
        assert proc.proc.poll() is None, proc.text()[-3000:]
        assert proc.stop() == 0, proc.text()[-3000:]
        docs = _predictions(settings, set(reference.predictions))
        _assert_same_predictions(docs, reference)
        key = (settings.topics.events, 0)
        try:
            _assert_same_state(_final_states(settings, [key])[key], reference)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nthe worker's log:\n{proc.text()[-6000:]}") from None


def test_bad_checkpoints_are_refused_and_the_worker_still_starts(make_settings, caplog):
    """A tampered, a truncated and a foreign checkpoint are each refused with their reason;
    the worker restores the newest good one before them, and says so."""
    n = 1500
    rows = _rows(n, seed=11)
    settings = _prepare(make_settings, rows, checkpoint={"every_events": 100_000})
    worker = Worker(settings)
    worker.run(max_events=1000)  # one checkpoint, at the stop: offset 1000
    key = (settings.topics.events, 0)
    good = _final_states(settings, [key])[key]
    assert good.next_offset == 1000

    # Three bad checkpoints after the good one, each claiming to be newer.
    from streamer.state import checkpoint_records

    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    signer = Signer(settings.signing_key() or b"")
    topic = settings.changelog_topic

    def write(records):
        for k, value, headers in records:
            sink.produce(topic, value, k.encode(), headers, partition=0)
        sink.flush()

    newer = good
    newer.next_offset = 1400
    records = checkpoint_records(newer, signer=signer, chunk_bytes=2048, writer="x")
    k, manifest, h = records[-1]
    tampered = orjson.loads(manifest)
    tampered["next_offset"] = 1450
    write([*records[:-1], (k, orjson.dumps(tampered), h)])
    records = checkpoint_records(newer, signer=signer, chunk_bytes=2048, writer="y")
    write([records[0], records[-1]])  # chunks missing
    foreign = Signer(b"another-key-of-some-length")
    write(checkpoint_records(newer, signer=foreign, chunk_bytes=2048, writer="z"))

    caplog.set_level("INFO", logger="streamer")
    again = Worker(settings)
    again.run(max_events=n - 1000)
    text = caplog.text
    for reason in ("bad_signature", "truncated", "foreign_key"):
        assert f"checkpoint refused ({reason})" in text, text
    assert "restored from the changelog at offset 1000" in text
    state = again.states[key]
    assert state.next_offset == n
    reference = reference_run(settings, rows, topic=settings.topics.events)
    _assert_same_state(state, reference)
    m = again.metrics.registry.get_sample_value
    assert m("streamer_checkpoint_failures_total", {"reason": "foreign_key"}) == 1


def test_exactly_once_outputs_survive_kills_without_duplicates(make_settings, tmp_path):
    """exactly_once: kill the worker mid-stream, restart; read_committed readers see every
    prediction exactly once, each equal to the uninterrupted run's."""
    n = 6000
    rows = _rows(n, seed=13)
    settings = _prepare(
        make_settings,
        rows,
        checkpoint={"every_events": 400},
        worker={"processing_guarantee": "exactly_once", "poll_timeout": 0.1},
    )
    reference = reference_run(settings, rows, topic=settings.topics.events)
    env = {
        "STREAMER_WORKER__BATCH_SIZE": "50",
        "STREAMER_WORKER__PROCESSING_GUARANTEE": "exactly_once",
        "STREAMER_WORKER__TRANSACTIONAL_ID": f"tx-{settings.kafka.group_id}",
    }
    rng = random.Random(3)
    for _ in range(4):
        proc = Proc(settings, tmp_path, **env)
        _advance(settings, proc, rng.randrange(300, 1200), end=n)
        time.sleep(rng.uniform(0.0, 0.05))
        assert proc.proc.poll() is None, proc.text()[-3000:]
        proc.stop(signal.SIGKILL)
    final = Proc(settings, tmp_path, **env)
    wait_for(lambda: committed_count(settings) == n, timeout=180, what="every event committed")
    assert final.stop() == 0, final.text()[-3000:]
    # Kafka's read_committed rule, applied to the raw log: Tansu 0.6's fetch responses never
    # list aborted transactions, so its own read_committed consumers show aborted records.
    values = read_committed_values(settings.kafka.bootstrap_servers, settings.topics.predictions)
    docs = [orjson.loads(v) for v in values if v is not None]
    ids = [d["event_id"] for d in docs]
    assert len(ids) == len(set(ids)) == n  # no duplicates, nothing missing
    _assert_same_predictions(docs, reference)
    if os.environ.get("STREAMER_TEST_BOOTSTRAP_SERVERS"):
        # On a broker that lists aborted transactions, a read_committed consumer agrees.
        assert [
            orjson.loads(m.value())
            for m in read_until(
                settings.kafka, settings.topics.predictions, lambda out: len(out) >= n
            )
        ] == docs


@pytest.mark.parametrize(
    ("preset", "dataset"),
    [
        ("logistic_regression", "Phishing"),
        ("softmax_regression", "ImageSegments"),
        ("hoeffding_tree", "ImageSegments"),
        ("linear_regression", "TrumpApproval"),
        ("hoeffding_tree_regressor", "TrumpApproval"),
    ],
)
def test_every_preset_continues_identically_in_a_new_process(
    make_settings, tmp_path, preset, dataset
):
    """Stop after part of the stream and go on in a process with another PYTHONHASHSEED: the
    predictions equal those of one uninterrupted in-memory run (string classes included)."""
    from streamer.produce import dataset_rows

    rows = list(dataset_rows(dataset, limit=1200))
    settings = _prepare(
        make_settings,
        rows,
        model={"preset": preset},
        evaluation={"metrics": ["MAE"] if dataset == "TrumpApproval" else ["Accuracy"]},
    )
    reference = reference_run(settings, rows, topic=settings.topics.events)
    env = settings_env(settings)
    half = len(rows) // 2
    for seed, count in (("1", half), ("2", len(rows) - half)):
        run = subprocess.run(
            [sys.executable, "-m", "streamer", "run", "--max-events", str(count)],
            env={**env, "PYTHONHASHSEED": seed},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stderr[-3000:]
    docs = _predictions(settings, set(reference.predictions))
    _assert_same_predictions(docs, reference)


def test_workers_n_runs_n_processes_in_the_group_with_a_metrics_port_each(make_settings, tmp_path):
    import urllib.request

    from streamer.broker import free_port

    n = 4000
    rows = _rows(n, seed=17)
    settings = _prepare(make_settings, rows, topics={"partitions": 2})
    base = free_port()
    proc = Proc(settings, tmp_path, "--workers", "2", STREAMER_PROMETHEUS__PORT=str(base))

    def assigned(port: int) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        line = next(
            (x for x in text.splitlines() if x.startswith("streamer_assigned_partitions ")), None
        )
        return float(line.split()[1]) if line else None

    try:
        wait_for(
            lambda: committed_count(settings, 2) == n, timeout=120, what="every event committed"
        )
        wait_for(
            lambda: assigned(base) == 1.0 and assigned(base + 1) == 1.0,
            timeout=60,
            what="one partition for each worker",
        )
    finally:
        code = proc.stop()
    text = proc.text()
    assert code == 0, text[-3000:]
    assert "worker 0 started" in text and "worker 1 started" in text
    assert text.count("worker stopped after") == 2
    docs = _predictions(settings, {r["id"] for r in rows})
    assert len({d["event_id"] for d in docs}) == n
