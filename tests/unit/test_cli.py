from __future__ import annotations

import argparse
import inspect
import logging
import pickle
import re
from pathlib import Path

import orjson
import pytest

from streamer.cli import main

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def _logging_restored():
    # main() configures the root logger, as the command does; give the next test pytest's.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


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


# -- conventions ------------------------------------------------------------------------------


def test_version_comes_from_the_installed_distribution(capsys):
    from importlib import metadata

    import streamer

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    installed = metadata.version("streamer-drift")
    assert streamer.__version__ == installed
    assert capsys.readouterr().out.strip() == f"streamer {installed} (streamer-drift {installed})"


def _subcommands():
    from streamer.cli import _parser

    parser = _parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, sub.choices


def test_every_subcommand_has_a_description_examples_and_help_for_every_option():
    parser, commands = _subcommands()
    assert set(commands) >= {"run", "demo", "produce", "drift-reference", "check-config"}
    for name, sp in [("streamer", parser), *commands.items()]:
        assert sp.description, name
        assert "examples:" in (sp.epilog or ""), name
        for action in sp._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help is not argparse.SUPPRESS, (name, action.dest)
    # Every command that talks to Kafka takes --bootstrap-servers, as produce always did.
    for name in ("run", "demo", "produce"):
        assert "--bootstrap-servers" in commands[name]._option_string_actions, name


@pytest.mark.parametrize("bad", ["verbose", "loud", ""])
def test_a_bad_log_level_is_a_configuration_error(capsys, bad):
    assert main(["check-config", "--log-level", bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("streamer: configuration error: --log-level: unknown level")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "level"),
    [
        ([], logging.INFO),
        (["-v"], logging.DEBUG),
        (["-vvv"], logging.DEBUG),
        (["-q"], logging.WARNING),
        (["-qq"], logging.ERROR),
        (["--log-level", "error", "-v"], logging.WARNING),
        (["check-config", "-q"], logging.WARNING),
    ],
)
def test_verbose_and_quiet_move_the_level(capsys, args, level):
    command = [] if "check-config" in args else ["check-config"]
    assert main([*args, *command]) == 0
    assert logging.getLogger().level == level


def test_json_log_lines_carry_time_level_logger_message_and_extra_fields():
    import io

    from streamer.logs import configure

    out = io.StringIO()
    configure(logging.DEBUG, "json", stream=out)
    log = logging.getLogger("streamer.test")
    log.info("assigned %s", [0, 1], extra={"partition": 3, "topic": "events"})
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    first, second = (orjson.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "INFO" and first["logger"] == "streamer.test"
    assert first["message"] == "assigned [0, 1]"
    assert (first["partition"], first["topic"]) == (3, "events")
    assert first["time"].endswith("Z") and first["time"][:2] == "20"
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]


# -- effective settings -----------------------------------------------------------------------


def test_check_config_prints_the_values_that_apply_not_empty_defaults(capsys, monkeypatch):
    from streamer.drift.concept import DualADWIN
    from streamer.drift.window import WindowMonitor

    monkeypatch.setenv("STREAMER_DRIFT__THRESHOLDS__FEATURES", '{"psi": [0.2, 0.3]}')
    assert main(["check-config"]) == 0
    drift = orjson.loads(capsys.readouterr().out)["drift"]
    assert drift["concept"]["detector"] == "DualADWIN"
    # Each default as the detector and the window monitor define it (one source of truth).
    defaults = inspect.signature(DualADWIN).parameters
    assert drift["concept"]["params"] == {k: p.default for k, p in defaults.items()}
    window = inspect.signature(WindowMonitor).parameters
    for key in ("reference_size", "window_size", "every", "bins", "top_k"):
        assert drift["windows"][key] == window[key].default, key
    assert drift["windows"]["reference_size"] == 2000
    assert drift["thresholds"]["features"]["psi"] == [0.2, 0.3]  # as set
    assert drift["thresholds"]["features"]["js"] == [0.12, 0.15]  # the default
    assert drift["thresholds"]["schema"]["new_field_rate"] == [0.0, 0.01]


def test_check_config_names_detector_by_its_canonical_name_with_given_and_default_params(
    capsys, monkeypatch
):
    monkeypatch.setenv("STREAMER_DRIFT__CONCEPT__DETECTOR", "adwin")
    monkeypatch.setenv("STREAMER_DRIFT__CONCEPT__PARAMS", '{"delta": 0.01}')
    assert main(["check-config"]) == 0
    concept = orjson.loads(capsys.readouterr().out)["drift"]["concept"]
    assert concept["detector"] == "ADWIN"
    assert concept["params"]["delta"] == 0.01 and concept["params"]["clock"] == 32


def test_check_config_refuses_what_librdkafka_refuses_without_connecting(capsys, monkeypatch):
    # Nothing listens on port 1: a connection attempt would show up as an error on stderr.
    monkeypatch.setenv("STREAMER_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("STREAMER_KAFKA__CONSUMER__AUTO_OFFSET_RESET", "sometimes")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert "configuration error: kafka.consumer: librdkafka refused" in err
    assert "sometimes" in err


def test_check_config_names_the_client_section_for_a_bad_shared_property(capsys, monkeypatch):
    monkeypatch.setenv("STREAMER_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("STREAMER_KAFKA__CLIENT__SECURITY_PROTOCOL", "bogus")
    assert main(["check-config"]) == 2
    err = capsys.readouterr().err
    assert "configuration error: kafka.client: librdkafka refused" in err
    assert "bogus" in err


@pytest.mark.parametrize(
    ("variable", "value", "section"),
    [
        ("STREAMER_KAFKA__CONSUMER__NO_SUCH_PROP", "1", "kafka.consumer"),
        ("STREAMER_KAFKA__PRODUCER__ACKS", "sometimes", "kafka.producer"),
    ],
)
def test_run_refuses_a_bad_client_property_before_waiting_for_a_cluster(
    capsys, monkeypatch, variable, value, section
):
    # Nothing listens on port 1: without the check, run would retry the connection forever.
    monkeypatch.setenv("STREAMER_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("STREAMER_SECURITY__SIGNING_KEY", "k" * 32)
    monkeypatch.setenv(variable, value)
    assert main(["run", "--max-events", "1"]) == 2
    err = capsys.readouterr().err
    assert f"configuration error: {section}: librdkafka refused" in err
    assert "unreachable" not in err


def test_check_config_passes_on_librdkafka_warnings(capsys, monkeypatch):
    monkeypatch.setenv("STREAMER_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("STREAMER_KAFKA__CLIENT__SASL_MECHANISM", "PLAIN")
    assert main(["check-config"]) == 0
    err = capsys.readouterr().err
    assert "warning: kafka." in err and "security.protocol" in err
    assert "127.0.0.1:1" not in err  # no connection was tried


def test_check_config_imports_a_model_factory_only_when_asked(capsys, monkeypatch, tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "side_effect_model.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('yes')\n"
        "from river import linear_model\n"
        "def make(seed=None):\n"
        "    return linear_model.LogisticRegression()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("STREAMER_MODEL__PRESET", "side_effect_model:make")
    assert main(["check-config"]) == 0
    assert not marker.exists()
    err = capsys.readouterr().err
    assert "was not imported" in err and "--import-models" in err
    assert main(["check-config", "--import-models"]) == 0
    assert marker.read_text() == "yes"


def test_check_config_without_importing_models_still_checks_the_rest(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("STREAMER_MODEL__PRESET", "not_imported_at_all:make")
    monkeypatch.setenv("STREAMER_INPUT__FORMAT", "avro")
    monkeypatch.setenv("STREAMER_INPUT__AVRO__SCHEMA", str(tmp_path / "none.avsc"))
    assert main(["check-config"]) == 2
    assert "input.avro.schema: Avro schema file" in capsys.readouterr().err


# -- the example settings ---------------------------------------------------------------------


def test_example_config_prints_the_shipped_file(capsys, tmp_path):
    from streamer.resources import example_settings

    assert main(["example-config"]) == 0
    text = capsys.readouterr().out
    assert text == example_settings() == (ROOT / "deploy" / "streamer.toml").read_text()
    assert main(["example-config", "-o", str(tmp_path / "s.toml")]) == 0
    assert (tmp_path / "s.toml").read_text() == text


def test_the_example_settings_list_every_setting_at_its_default():
    import tomllib

    from pydantic import BaseModel

    from streamer.settings import Settings, load_settings

    text = (ROOT / "deploy" / "streamer.toml").read_text()
    data = tomllib.loads(text)

    def missing(model: type[BaseModel], table: dict, where: str) -> list[str]:
        out = []
        for name, field in model.model_fields.items():
            key = field.alias or name
            if name == "source":
                continue
            # A setting whose default is "unset" (None) is shown commented out.
            unset = field.default is None and re.search(rf"^# {key} = ", text, re.MULTILINE)
            if key not in table and not unset:
                out.append(f"{where}{key}")
            elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
                out += missing(field.annotation, table[key], f"{where}{key}.")
        return out

    assert missing(Settings, data, "") == []
    example = load_settings(ROOT / "deploy" / "streamer.toml", env={})
    defaults = load_settings(env={})
    # Where the example does not show a value of its own (brokers, a schema file), it shows
    # the default.
    for section in ("topics", "fields", "drift", "worker", "checkpoint", "security"):
        assert getattr(example, section) == getattr(defaults, section), section


def _registry(*keys: tuple[str, int, int, int]) -> list[object]:
    from streamer.registry import Accepted, ModelUpdate

    return [
        Accepted(ModelUpdate(name, "events", partition, version, revision), f"model {partition}")
        for name, partition, version, revision in keys
    ]


def test_models_get_refuses_a_version_that_several_models_have(capsys, monkeypatch, tmp_path):
    # Two partitions, each with its own champion and versions: "version 2" names two models.
    history = _registry(
        ("champion", 0, 1, 500),
        ("champion", 0, 2, 900),
        ("champion", 1, 1, 500),
        ("champion", 1, 2, 700),
        ("champion", 1, 2, 2000),
    )
    monkeypatch.setattr("streamer.registry.read_registry", lambda settings, **kw: history)
    args = ["models", "get", "--bootstrap-servers", "k:9092", "--version", "2"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "version 2 matches 2 models: champion/events/0 (--model champion --partition 0), " in (
        captured.err
    )
    assert "champion/events/1 (--model champion --partition 1); choose one with --partition N" in (
        captured.err
    )

    out = tmp_path / "model.pkl"
    assert main([*args, "--partition", "1", "-o", str(out)]) == 0
    line = capsys.readouterr().out
    assert line.startswith("champion/events/1") and "rev 2000" in line  # the newest revision
    assert pickle.loads(out.read_bytes()) == "model 1"
    # One model with the version: no choice to make.
    assert (
        main(
            ["models", "get", "--bootstrap-servers", "k:9092", "--version", "1", "--partition", "0"]
        )
        == 0
    )
