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
