from __future__ import annotations

import orjson

from streamer.cli import main


def test_check_config_prints_effective_settings_with_secrets_masked(capsys, monkeypatch, tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[kafka]\nbootstrap_servers = "k:9092"\n[kafka.client]\n"sasl.password" = "pw"\n')
    monkeypatch.setenv("STREAMER_WORKER__BATCH_SIZE", "42")
    assert main(["check-config", "-c", str(f)]) == 0
    out = orjson.loads(capsys.readouterr().out)
    assert out["kafka"]["client"]["sasl.password"] == "******"
    assert out["kafka"]["bootstrap_servers"] == "k:9092"
    assert out["worker"]["batch_size"] == 42


def test_configuration_errors_exit_2_and_name_the_setting(capsys, monkeypatch):
    monkeypatch.setenv("STREAMER_MODEL__PRESET", "no_such_model")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamer: configuration error: model.preset: unknown preset")


def test_run_without_brokers_says_which_setting_to_set(capsys, monkeypatch):
    monkeypatch.delenv("STREAMER_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    assert main(["run"]) == 2
    assert "kafka.bootstrap_servers: no brokers configured" in capsys.readouterr().err


def test_bad_avro_schema_stops_check_config(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMER_INPUT__FORMAT", "avro")
    monkeypatch.setenv("STREAMER_INPUT__AVRO__SCHEMA", str(tmp_path / "none.avsc"))
    assert main(["check-config"]) == 2
    assert "input.avro.schema: Avro schema file" in capsys.readouterr().err


def test_log_level_is_accepted_after_the_subcommand(capsys):
    assert main(["check-config", "--log-level", "WARNING"]) == 0


def test_drift_reference_builds_a_pinned_reference_that_the_worker_uses(
    capsys, monkeypatch, tmp_path
):
    from river import datasets

    from streamer.drift.monitor import DriftMonitor
    from streamer.models import build_model
    from streamer.prequential import ModelSlot, prequential
    from streamer.testing import events_from, parsed
    from streamer.worker import Worker

    out = tmp_path / "ref.json"
    assert main(["drift-reference", "--dataset", "Phishing", "--limit", "800", "-o", str(out)]) == 0
    assert "features 800, predictions 800, labels 800" in capsys.readouterr().err
    monkeypatch.setenv("STREAMER_DRIFT__WINDOWS__REFERENCE", "pinned")
    monkeypatch.setenv("STREAMER_DRIFT__WINDOWS__REFERENCE_FILE", str(out))
    from streamer.settings import load_settings

    settings = load_settings()
    worker = Worker(settings)  # loads and checks the file
    assert worker.pipeline.pinned is not None and set(worker.pipeline.pinned) == {
        "features",
        "predictions",
        "labels",
    }
    # Replaying the same data against its own reference raises no feature alarm.
    mon = DriftMonitor(
        settings.drift,
        fields=settings.fields,
        task="classification",
        topic="t",
        partition=0,
        pinned=worker.pipeline.pinned,
    )
    slot = ModelSlot(build_model("logistic_regression"))
    slot.drift = mon.model_drift()
    events = list(events_from(datasets.Phishing()))[:800] * 2
    for i, e in enumerate(events):
        e.offset = i
    report_events = []
    for lo in range(0, len(events), 200):
        chunk = events[lo : lo + 200]
        rep = mon.observe(parsed(chunk), prequential([slot], chunk), slot.drift, version=1)
        report_events += rep.events
    assert mon.features is not None and mon.features.ready
    assert not [e for e in report_events if e.signal == "feature" and e.level == "alarm"]


def test_drift_reference_refuses_data_that_never_validates(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMER_FIELDS__ID", "no_such_field")
    assert main(["drift-reference", "--dataset", "Phishing", "-o", str(tmp_path / "r.json")]) == 1
    assert "no row passed validation" in capsys.readouterr().err
