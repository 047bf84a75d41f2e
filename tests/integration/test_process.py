"""Worker processes, as operators run them: signals, a hard kill, the CLI, outside clients."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from streamer import kafka
from streamer.decode import JsonEncoder
from streamer.produce import produce_rows
from streamer.settings import Settings
from streamer.synth import concept_drift
from streamer.testing import committed_count, read_topic, read_until, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]


def _env(settings: Settings, **extra: str) -> dict[str, str]:
    t, k = settings.topics, settings.kafka
    env = {
        **os.environ,
        "STREAMER_KAFKA__BOOTSTRAP_SERVERS": k.bootstrap_servers,
        "STREAMER_KAFKA__GROUP_ID": k.group_id,
        "STREAMER_KAFKA__CONSUMER__SESSION_TIMEOUT_MS": "6000",
        "STREAMER_KAFKA__CONSUMER__HEARTBEAT_INTERVAL_MS": "500",
        "STREAMER_TOPICS__EVENTS": t.events,
        "STREAMER_TOPICS__PREDICTIONS": t.predictions,
        "STREAMER_TOPICS__DEAD_LETTERS": t.dead_letters,
        "STREAMER_TOPICS__DRIFT_EVENTS": t.drift_events,
        "STREAMER_TOPICS__PARTITIONS": str(t.partitions),
        "STREAMER_PROMETHEUS__PORT": "0",
        "STREAMER_WORKER__POLL_TIMEOUT": "0.1",
        "STREAMER_SECURITY__SIGNING_KEY": settings.security.signing_key,
        "STREAMER_TOPICS__CHANGELOG": settings.changelog_topic,
    }
    env.update(extra)
    return env


def _streamer(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "streamer", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _produce_stream(settings: Settings, n: int) -> list[str]:
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    rows = [
        {"id": f"e{i}", **x, "label": y}
        for i, (x, y) in enumerate(concept_drift("sea", seed=1, position=n // 2, n=n))
    ]
    produce_rows(rows, sink, settings.topics.events, JsonEncoder())
    sink.close()
    return [r["id"] for r in rows]


def _provision(settings: Settings) -> None:
    t = settings.topics
    kafka.ensure_topics(
        kafka.make_admin(settings.kafka),
        [t.events, t.predictions, t.dead_letters, t.drift_events],
        partitions=t.partitions,
        replication_factor=1,
    )


def test_sigterm_finishes_the_batch_commits_and_exits_cleanly(make_settings):
    settings = make_settings()
    _provision(settings)
    n = 30_000
    _produce_stream(settings, n)
    proc = _streamer("run", env=_env(settings, STREAMER_WORKER__BATCH_SIZE="100"))
    try:
        wait_for(lambda: committed_count(settings) > 0, timeout=60, what="a first commit")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM" in err
    done = committed_count(settings)
    assert 0 < done < n, "stopped before the end of the topic"
    assert f"worker stopped after {done} records" in err
    # The summary of the run, on stdout, also after a signal.
    assert f"events        {done:,} in" in out
    assert f"predictions   {done:,}" in out
    assert f"next offset {done:,}" in out
    preds = read_topic(settings.kafka, settings.topics.predictions, done)
    assert [orjson.loads(m.value())["offset"] for m in preds] == list(range(done))


def test_a_killed_worker_loses_no_event(make_settings):
    """SIGKILL mid-stream, restart: every event has a prediction (at-least-once)."""
    settings = make_settings()
    _provision(settings)
    n = 20_000
    ids = _produce_stream(settings, n)
    env = _env(settings, STREAMER_WORKER__BATCH_SIZE="50")
    first = _streamer("run", env=env)
    try:
        wait_for(lambda: committed_count(settings) >= 1000, timeout=60, what="1000 committed")
    finally:
        first.kill()
        first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL
    killed_at = committed_count(settings)
    assert killed_at < n

    second = _streamer("run", env=env)
    try:
        wait_for(lambda: committed_count(settings) == n, timeout=120, what="all committed")
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    # Every event has a prediction; a replay may have re-emitted up to one batch in flight.
    wanted = set(ids)

    def all_seen(records) -> bool:
        return {orjson.loads(m.value())["event_id"] for m in records} >= wanted

    preds = read_until(settings.kafka, settings.topics.predictions, all_seen, what="every id")
    assert n <= len(preds)


def test_cli_produce_avro_confluent_framing_into_a_worker(make_settings):
    schema = ROOT / "schemas" / "phishing.avsc"
    settings = make_settings()
    _provision(settings)
    env = _env(
        settings,
        STREAMER_INPUT__FORMAT="avro",
        STREAMER_INPUT__AVRO__FRAMING="confluent",
        STREAMER_INPUT__AVRO__SCHEMA_IDS=orjson.dumps({"12": str(schema)}).decode(),
        STREAMER_OUTPUT__FORMAT="avro",
    )
    prod = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "produce",
            "--dataset",
            "Phishing",
            "--format",
            "avro",
            "--schema",
            str(schema),
            "--schema-id",
            "12",
            "--limit",
            "300",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert prod.returncode == 0, prod.stderr
    assert "produced 300 records" in prod.stderr
    run = subprocess.run(
        [sys.executable, "-m", "streamer", "run", "--max-events", "300"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    from streamer.decode import AvroDecoder
    from streamer.outputs import PREDICTION_SCHEMA

    decoder = AvroDecoder(PREDICTION_SCHEMA, framing="plain")
    preds = [
        decoder.decode(m.value())
        for m in read_topic(settings.kafka, settings.topics.predictions, 300)
    ]
    assert [p["event_id"] for p in preds] == [str(i) for i in range(300)]
    assert all(isinstance(p["label"], bool) for p in preds)
    assert preds[-1]["proba"] is not None and set(preds[-1]["proba"]) == {"True", "False"}


def _kcat_env(tmp_path: Path) -> dict[str, str]:
    """Environment for Debian's kcat.

    Debian 12's kcat links librdkafka 2.0.2, whose ApiVersions parsing fails on the embedded
    Tansu broker ("Read underflow"); real Kafka is fine. librdkafka keeps its ABI, so kcat runs
    on the newer librdkafka that the confluent-kafka wheel carries.
    """
    import confluent_kafka

    libs = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    found = sorted(libs.glob("librdkafka*.so*"))
    env = dict(os.environ)
    if found:
        (tmp_path / "lib").mkdir()
        (tmp_path / "lib" / "librdkafka.so.1").symlink_to(found[0])
        env["LD_LIBRARY_PATH"] = str(tmp_path / "lib")
    return env


@pytest.mark.skipif(shutil.which("kcat") is None and not os.environ.get("CI"), reason="no kcat")
def test_kcat_feeds_the_worker_and_reads_its_predictions(make_settings, tmp_path):
    kcat_env = _kcat_env(tmp_path)
    settings = make_settings()
    _provision(settings)
    bs = settings.kafka.bootstrap_servers
    lines = [
        f'e{i}:{{"id":"e{i}","x":{i % 7},"label":{str(i % 2 == 0).lower()}}}' for i in range(200)
    ]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n")
    subprocess.run(
        ["kcat", "-P", "-b", bs, "-t", settings.topics.events, "-K:", "-l", str(src)],
        check=True,
        timeout=60,
        env=kcat_env,
    )
    run = subprocess.run(
        [sys.executable, "-m", "streamer", "run", "--max-events", "200"],
        env=_env(settings),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    out = subprocess.run(
        [
            "kcat",
            "-C",
            "-b",
            bs,
            "-t",
            settings.topics.predictions,
            "-c",
            "200",
            "-e",
            "-q",
            "-f",
            "%k\t%s\n",
        ],
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
        env=kcat_env,
    ).stdout.splitlines()
    assert len(out) == 200
    keys = [line.split("\t", 1)[0] for line in out]
    assert keys == [f"e{i}" for i in range(200)]
    assert orjson.loads(out[-1].split("\t", 1)[1])["label"] is False


def test_two_workers_share_the_partitions_of_one_group(make_settings):
    settings = make_settings(topics={"partitions": 3})
    _provision(settings)
    n = 6000
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    rows = [{"id": f"e{i}", "x": i % 13, "label": i % 3 == 0} for i in range(n)]
    produce_rows(rows, sink, settings.topics.events, JsonEncoder())
    sink.close()
    env = _env(settings, STREAMER_WORKER__BATCH_SIZE="100")
    workers = [_streamer("run", "--log-level", "INFO", env=env) for _ in range(2)]
    try:
        wait_for(lambda: committed_count(settings, 3) == n, timeout=60, what="all committed")
    except TimeoutError as exc:
        raise AssertionError(f"committed {committed_count(settings, 3)} of {n}") from exc
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        errs = [w.communicate(timeout=60)[1] for w in workers]
        print("\n".join(errs))
    assert [w.returncode for w in workers] == [0, 0], errs
    preds = read_topic(settings.kafka, settings.topics.predictions, n)
    assert {orjson.loads(m.value())["event_id"] for m in preds} == {r["id"] for r in rows}
    # Both processes were given partitions at some point.
    assert all("assigned [('" in e for e in errs), errs


def test_run_with_max_events_prints_a_summary_text_or_json(make_settings):
    settings = make_settings()
    _provision(settings)
    rows = [{"id": f"e{i}", "x": i % 7, "label": i % 3 == 0} for i in range(200)]
    rows[10]["x"] = "seven"
    rows[20]["x"] = "eight"
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    produce_rows(rows, sink, settings.topics.events, JsonEncoder())
    sink.produce(settings.topics.events, b"{not json", b"bad")
    sink.close()
    # Brokers from the command line, like produce: nothing in the environment.
    env = _env(settings)
    del env["STREAMER_KAFKA__BOOTSTRAP_SERVERS"]
    args = ["run", "--bootstrap-servers", settings.kafka.bootstrap_servers, "--max-events", "201"]
    run = subprocess.run(
        [sys.executable, "-m", "streamer", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert out.startswith("streamer run: summary\n")
    assert "events        201 in" in out
    assert "predictions   198" in out
    assert "dead letters  3: decode/undecodable 1, validate/wrong_type 2" in out
    assert "drift events  " in out
    assert f"  {settings.topics.events}[0]: 201 events, model v1, next offset 201\n" in out
    assert re.search(r"\n    Accuracy 0\.\d{4}  F1 0\.\d{4}  LogLoss \d\.\d{4}\n", out)

    # The same as one JSON log line, for log shippers (another group, with a changelog of its
    # own, reads from the start).
    env["STREAMER_KAFKA__GROUP_ID"] = settings.kafka.group_id + "-json"
    env["STREAMER_TOPICS__CHANGELOG"] = settings.changelog_topic + "-json"
    run = subprocess.run(
        [sys.executable, "-m", "streamer", "--log-format", "json", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    lines = [orjson.loads(x) for x in run.stderr.splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    (summary,) = [x["summary"] for x in lines if x["message"] == "run summary"]
    assert summary["events"] == 201 and summary["predictions"] == 198
    assert summary["dead_letters"] == {"decode/undecodable": 1, "validate/wrong_type": 2}
    (partition,) = summary["partitions"]
    assert partition["next_offset"] == 201 and 0 < partition["running"]["Accuracy"] <= 1


@pytest.fixture
def _signals_restored():
    # main() installs SIGINT/SIGTERM handlers, as the command does; put pytest's back.
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def _produce_cli(settings: Settings, *extra: str) -> int:
    from streamer.cli import main

    return main(
        [
            "produce",
            "--bootstrap-servers",
            settings.kafka.bootstrap_servers,
            "--topic",
            settings.topics.events,
            "--dataset",
            "Phishing",
            "--limit",
            "5",
            *extra,
        ]
    )


def test_produce_never_lets_the_broker_create_a_missing_topic(
    make_settings, capsys, _signals_restored
):
    settings = make_settings()
    admin = kafka.make_admin(settings.kafka)
    assert _produce_cli(settings) == 2
    err = capsys.readouterr().err
    assert f"configuration error: --topic: topic {settings.topics.events!r} does not exist" in err
    assert "--create-topic" in err
    assert kafka.partition_count(admin, settings.topics.events) == 0


def test_produce_creates_the_topic_with_topics_partitions_and_warns_on_another_count(
    make_settings, capsys, monkeypatch, _signals_restored
):
    settings = make_settings()
    admin = kafka.make_admin(settings.kafka)
    monkeypatch.setenv("STREAMER_TOPICS__PARTITIONS", "3")
    assert _produce_cli(settings, "--create-topic") == 0
    assert kafka.partition_count(admin, settings.topics.events) == 3
    assert f"created topic {settings.topics.events} with 3 partition(s)" in capsys.readouterr().err
    assert _produce_cli(settings, "--create-topic", "--partitions", "2") == 0
    err = capsys.readouterr().err
    assert "already exists with 3 partition(s): --partitions 2 is ignored" in err
    assert kafka.partition_count(admin, settings.topics.events) == 3
    assert len(read_topic(settings.kafka, settings.topics.events, 10)) == 10
