from __future__ import annotations

from pathlib import Path

import pytest

from streamer.errors import ConfigError
from streamer.settings import load_settings, masked

ROOT = Path(__file__).parents[2]


def test_defaults_then_file_then_environment(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[worker]\nbatch_size = 100\npoll_timeout = 1.5\n[kafka]\ngroup_id = "file"\n')
    s = load_settings(f, env={"STREAMER_WORKER__BATCH_SIZE": "250"})
    assert s.worker.batch_size == 250  # env beats file
    assert s.worker.poll_timeout == 1.5  # file beats default
    assert s.kafka.group_id == "file"
    assert s.topics.events == "events"  # default
    assert s.source == str(f.resolve())


def test_settings_are_frozen():
    s = load_settings(env={})
    with pytest.raises(Exception, match="frozen"):
        s.worker.batch_size = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "setting", "fragment"),
    [
        (
            {"STREAMER_WORKER__BATCH_SIZE": "zero"},
            "worker.batch_size (from STREAMER_WORKER__BATCH_SIZE)",
            "valid integer",
        ),
        ({"STREAMER_WORKER__BATCH_SIZE": "0"}, "worker.batch_size", "greater than or equal to 1"),
        ({"STREAMER_INPUT__FORMAT": "xml"}, "input.format", "'json' or 'avro'"),
        (
            {"STREAMER_WORKER__BATCHSIZE": "3"},
            "worker.batchsize (from STREAMER_WORKER__BATCHSIZE)",
            "accepted here: batch_size",
        ),
        ({"STREAMER_TOPICS__PREDICTIONS": "events"}, "topics", "distinct"),
        ({"STREAMER_FIELDS__FEATURES": '["id", "a"]'}, "fields", "also the id"),
        (
            {"STREAMER_FIELDS__FEATURES": '["a"]', "STREAMER_FIELDS__CATEGORICAL": '["b"]'},
            "fields",
            "not in fields.features",
        ),
        (
            {"STREAMER_KAFKA__CONSUMER__ENABLE_AUTO_COMMIT": "true"},
            "kafka.consumer",
            "managed by streamer",
        ),
        ({"STREAMER_FIELDS__FEATURES": "[oops"}, "STREAMER_FIELDS__FEATURES", "JSON"),
    ],
)
def test_every_error_names_the_setting(env, setting, fragment):
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert str(info.value).startswith(setting)
    assert fragment in str(info.value)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[worker\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})
    typo = tmp_path / "typo.toml"
    typo.write_text("[wroker]\nbatch_size = 3\n")
    with pytest.raises(
        ConfigError, match=r"^wroker: unknown setting; accepted here: checkpoint, drift"
    ):
        load_settings(typo, env={})


def test_client_properties_from_env_map_underscores_to_dots():
    s = load_settings(
        env={
            "STREAMER_KAFKA__CLIENT__SASL_PASSWORD": "hunter2",
            "STREAMER_KAFKA__CLIENT__SECURITY_PROTOCOL": "SASL_SSL",
            "STREAMER_KAFKA__CONSUMER__SESSION_TIMEOUT_MS": "6000",
            "UNRELATED": "x",
        }
    )
    assert s.kafka.client == {"sasl.password": "hunter2", "security.protocol": "SASL_SSL"}
    assert s.kafka.consumer == {"session.timeout.ms": "6000"}


def test_masked_hides_secrets_and_nothing_else():
    s = load_settings(
        env={
            "STREAMER_KAFKA__CLIENT__SASL_PASSWORD": "hunter2",
            "STREAMER_KAFKA__CLIENT__SSL_KEY_PASSWORD": "k",
            "STREAMER_KAFKA__CLIENT__SASL_OAUTHBEARER_CLIENT_SECRET": "s",
            "STREAMER_KAFKA__CLIENT__SASL_USERNAME": "me",
        }
    )
    shown = masked(s)["kafka"]["client"]
    assert shown == {
        "sasl.password": "******",
        "ssl.key.password": "******",
        "sasl.oauthbearer.client.secret": "******",
        "sasl.username": "me",
    }
    assert "hunter2" not in repr(masked(s))
    assert s.kafka.client["sasl.password"] == "hunter2"  # only the printout is masked


def test_relative_paths_resolve_against_the_settings_file(tmp_path):
    (tmp_path / "conf").mkdir()
    f = tmp_path / "conf" / "s.toml"
    f.write_text('[input.avro]\nschema = "../schemas/e.avsc"\n')
    s = load_settings(f, env={})
    assert (
        s.resolve_path(s.input.avro.schema_file) == tmp_path / "conf" / ".." / "schemas" / "e.avsc"
    )


def test_the_shipped_example_settings_are_valid():
    s = load_settings(ROOT / "deploy" / "streamer.toml", env={})
    assert s.kafka.bootstrap_servers
    # deploy/streamer.toml and schemas/ link to the files the package ships: the relative
    # schema path works from both places.
    schema = s.resolve_path(s.input.avro.schema_file).resolve()
    assert schema == (ROOT / "schemas" / "phishing.avsc").resolve()
    assert schema == ROOT / "streamer" / "schemas" / "phishing.avsc"


def test_digest_changes_with_any_setting():
    a = load_settings(env={})
    b = load_settings(env={"STREAMER_MODEL__SEED": "1"})
    assert a.digest() == load_settings(env={}).digest()
    assert a.digest() != b.digest()


# --------------------------------------------------------------------------------------------
# Edges: each a ConfigError naming the setting (exit status 2), never a traceback.


@pytest.mark.parametrize(
    ("env", "setting", "fragment"),
    [
        (
            {"STREAMER_DRIFT__CONCEPT__DETECTOR": "foo"},
            "drift.concept.detector (from STREAMER_DRIFT__CONCEPT__DETECTOR)",
            "unknown concept drift detector 'foo'; expected one of DualADWIN",
        ),
        (
            {"STREAMER_DRIFT__CONCEPT__PARAMS": '{"delta": 5}'},
            "drift.concept.params (from STREAMER_DRIFT__CONCEPT__PARAMS)",
            "detector 'DualADWIN' has no parameter 'delta'; accepted: fast_delta",
        ),
        (
            {
                "STREAMER_DRIFT__CONCEPT__DETECTOR": "ADWIN",
                "STREAMER_DRIFT__CONCEPT__PARAMS": '{"delta": 5}',
            },
            "drift.concept.params",
            "delta must be in (0, 1), got 5",
        ),
        (
            {
                "STREAMER_DRIFT__CONCEPT__DETECTOR": "HDDM_A",
                "STREAMER_DRIFT__CONCEPT__PARAMS__DRIFT_CONFIDENCE": "5",
            },
            "drift.concept.params (from STREAMER_DRIFT__CONCEPT__PARAMS__DRIFT_CONFIDENCE)",
            "fails with parameters {'drift_confidence': 5}",
        ),
        (
            {"STREAMER_EVALUATION__CLASSES": '["yes", "no"]'},
            "evaluation (from STREAMER_EVALUATION__CLASSES)",
            "positive_label True is not one of the 2 classes",
        ),
        (
            {"STREAMER_KAFKA__PRODUCER__MESSAGE_MAX_BYTES": "100000"},
            "settings (from STREAMER_KAFKA__PRODUCER__MESSAGE_MAX_BYTES)",
            "checkpoint.chunk_bytes (524288) + 1 KiB for its key and headers must fit",
        ),
        (
            {"STREAMER_INPUT__MAX_ABS_VALUE_BY_FEATURE__AMOUNT": "-1"},
            "input.max_abs_value_by_feature",
            "limits must be > 0",
        ),
    ],
)
def test_edges_are_configuration_errors(env, setting, fragment):
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert str(info.value).startswith(setting), str(info.value)
    assert fragment in str(info.value)


def test_edges_exit_with_status_2_and_no_traceback(monkeypatch, capsys):
    from streamer.cli import main

    for name, value in [
        ("STREAMER_DRIFT__CONCEPT__DETECTOR", "foo"),
        ("STREAMER_DRIFT__CONCEPT__PARAMS", '{"delta": 5}'),
    ]:
        monkeypatch.setenv(name, value)
        assert main(["check-config"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("streamer: configuration error: drift.concept.")
        assert "Traceback" not in err
        monkeypatch.delenv(name)


def test_detector_names_are_canonical_and_params_reach_it():
    s = load_settings(
        env={
            "STREAMER_DRIFT__CONCEPT__DETECTOR": "binary.hddma",
            # A free-form value is JSON when it parses as JSON: a number here, not a string.
            "STREAMER_DRIFT__CONCEPT__PARAMS__DRIFT_CONFIDENCE": "0.01",
        }
    )
    assert s.drift.concept.detector == "HDDM_A"
    assert s.drift.concept.params == {"drift_confidence": 0.01}


def test_environment_values_are_read_as_the_setting_expects():
    s = load_settings(
        env={
            "STREAMER_FIELDS__LABEL": "",  # the documented "no labels", from the environment
            "STREAMER_FIELDS__FEATURES": "",  # an empty list
            "STREAMER_KAFKA__CLIENT__SASL_PASSWORD": '{not-json["',
            "STREAMER_KAFKA__CLIENT__SASL_USERNAME": "[admin]",
            "STREAMER_KAFKA__GROUP_ID": "[g]",
            "STREAMER_MODEL__PARAMS__L2": "0.001",
            "STREAMER_MODEL__PARAMS__OPTIMIZER": "sgd",  # not JSON: a string
            "STREAMER_DRIFT__THRESHOLDS__FEATURES__PSI": "[0.1, 0.3]",
            "STREAMER_EVALUATION__CLASSES": "[true, false]",
        }
    )
    assert s.fields.label == ""
    assert s.fields.features == []
    assert s.kafka.client == {"sasl.password": '{not-json["', "sasl.username": "[admin]"}
    assert s.kafka.group_id == "[g]"
    assert s.model.params == {"l2": 0.001, "optimizer": "sgd"}
    # The effective table: what is set, over the defaults.
    assert s.drift.thresholds["features"]["psi"] == (0.1, 0.3)
    assert s.drift.thresholds["features"]["js"] == (0.12, 0.15)
    assert s.evaluation.classes == [True, False]


def test_oauthbearer_config_and_private_keys_are_masked():
    s = load_settings(
        env={
            "STREAMER_KAFKA__CLIENT__SASL_OAUTHBEARER_CONFIG": "clientId=me clientSecret=s3cr3t",
            "STREAMER_KAFKA__CLIENT__SASL_OAUTHBEARER_METHOD": "oidc",
            "STREAMER_KAFKA__CLIENT__SSL_KEY_PEM": "-----BEGIN PRIVATE KEY-----",
        }
    )
    shown = masked(s)["kafka"]["client"]
    assert shown == {
        "sasl.oauthbearer.config": "******",
        "sasl.oauthbearer.method": "oidc",
        "ssl.key.pem": "******",
    }
    assert "s3cr3t" not in repr(masked(s))


def test_a_wrongly_typed_secret_is_not_echoed(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[kafka.client]\n"sasl.password" = ["hunter2"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings(f, env={})
    assert str(info.value).startswith("kafka.client.sasl.password: Input should be a valid string")
    assert "hunter2" not in str(info.value)
    assert "not shown: a secret" in str(info.value)
    # Other settings still show what they got.
    with pytest.raises(ConfigError, match=r"\(got 'x'\)"):
        load_settings(env={"STREAMER_WORKER__BATCH_SIZE": "x"})
