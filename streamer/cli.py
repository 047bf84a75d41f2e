"""The ``streamer`` command: load settings once, build the app, run until SIGTERM.

Subcommands:

``run``             a worker of the consumer group (or N), until SIGTERM/SIGINT; a summary at
                    the end
``demo``            embedded broker + drifting stream + worker, with a live display
``produce``         replay a River dataset, CSV or JSONL file into a topic
``drift-reference`` build a pinned drift reference from a data set
``report``          an HTML drift report from the drift-events topic, or a reference and a CSV
``check-config``    print the effective settings, secrets masked
``example-config``  print the complete, commented example settings

Exit status: 0 on a clean stop, 2 for a configuration error (the message names the setting),
1 for any other failure, 130 after a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import orjson

from streamer._version import DISTRIBUTION, __version__
from streamer.errors import ConfigError, StreamerError
from streamer.logs import FORMATS, LEVELS, configure, parse_level
from streamer.settings import Settings, load_settings

__all__ = ["main"]

log = logging.getLogger("streamer")

_RAW = argparse.RawDescriptionHelpFormatter

_MAIN_EPILOG = """\
examples:
  streamer demo                                  the whole loop on an embedded broker
  streamer example-config > streamer.toml        a complete, commented settings file
  streamer check-config -c streamer.toml         the settings that apply, secrets masked
  streamer run -c streamer.toml                  one worker; start more for more partitions
  streamer produce --csv data.csv --create-topic replay a file into the events topic

Settings come from a TOML file (-c) and STREAMER_<SECTION>__<KEY> environment variables.
`streamer COMMAND --help` describes a command. Exit status: 0 clean stop, 2 configuration
error (the message names the setting), 1 other failure."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streamer",
        description="Streaming drift monitor and online learner: Kafka in, River models that "
        "keep learning, drift statistics, predictions and Prometheus metrics out.",
        epilog=_MAIN_EPILOG,
        formatter_class=_RAW,
    )
    p.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {__version__} ({DISTRIBUTION} {__version__})",
        help="print the version and exit",
    )
    _logging_options(p, top=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sp: argparse.ArgumentParser, required: bool = False) -> None:
        # Also accepted after the subcommand, where people tend to type them.
        _logging_options(sp, top=False)
        sp.add_argument(
            "-c",
            "--config",
            required=required,
            metavar="FILE",
            help="settings file (TOML); STREAMER_* environment variables override it",
        )

    def with_brokers(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--bootstrap-servers",
            metavar="HOST:PORT[,…]",
            help="Kafka brokers (overrides kafka.bootstrap_servers)",
        )

    run = sub.add_parser(
        "run",
        help="run a worker of the consumer group until SIGTERM or SIGINT",
        description="Consume the events topic as one member of the consumer group: score "
        "every event, learn from its label, watch for drift, and publish predictions, dead "
        "letters and drift events; serve /metrics. SIGTERM or SIGINT finishes the batch in "
        "progress, flushes, commits and exits; a summary of the run is printed at the end.",
        epilog="examples:\n"
        "  streamer run -c streamer.toml\n"
        "  streamer run --bootstrap-servers kafka:9092 --max-events 10000\n"
        "  STREAMER_WORKER__BATCH_SIZE=1000 streamer run -c streamer.toml --log-format json",
        formatter_class=_RAW,
    )
    with_config(run)
    with_brokers(run)
    run.add_argument(
        "--max-events",
        type=int,
        metavar="N",
        help="stop after N records (default: run until a signal)",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N worker processes in the group (metrics on prometheus.port + index)",
    )
    run.add_argument(
        "--worker-index",
        type=int,
        metavar="I",
        help="this process is worker I of --workers N (set by the supervisor)",
    )

    demo = sub.add_parser(
        "demo",
        help="the whole loop on an embedded broker and a drifting stream",
        description="Start an embedded Kafka-compatible broker (unless brokers are "
        "configured), produce a seeded synthetic stream whose concept switches every "
        "--drift-every events, with a malformed record every --bad-every, and run a worker on "
        "it. A terminal gets a live table; a pipe or a file gets one status line a second. At "
        "the end, a summary says what drift was found and how long after each true switch.",
        epilog="examples:\n"
        "  streamer demo                                   until Ctrl-C\n"
        "  streamer demo --events 30000 --plot demo.html   then open demo.html\n"
        "  streamer demo --stream agrawal --rate 0 --events 50000\n"
        "  streamer demo --bootstrap-servers localhost:9092  on your Kafka; topics are kept",
        formatter_class=_RAW,
    )
    with_config(demo)
    with_brokers(demo)
    demo.add_argument(
        "--events", type=int, metavar="N", help="stop after N events (default: at Ctrl-C)"
    )
    demo.add_argument(
        "--rate",
        type=float,
        default=2000.0,
        metavar="PER_SECOND",
        help="events produced per second; 0 for as fast as possible (default 2000)",
    )
    demo.add_argument(
        "--stream",
        default="sea",
        choices=["sea", "agrawal", "stagger", "hyperplane"],
        help="River synthetic stream whose concept switches (default sea)",
    )
    demo.add_argument(
        "--drift-every",
        type=int,
        default=10_000,
        metavar="N",
        help="events between concept switches (default 10000)",
    )
    demo.add_argument(
        "--bad-every",
        type=int,
        default=5_000,
        metavar="N",
        help="every Nth record is malformed and goes to the dead-letter topic; 0 for none "
        "(default 5000)",
    )
    demo.add_argument(
        "--seed", type=int, default=7, help="seed of the stream (default 7): same seed, same run"
    )
    demo.add_argument(
        "--partitions",
        type=int,
        default=1,
        metavar="N",
        help="partitions of the events topic, one model each (default 1)",
    )
    demo.add_argument(
        "--port",
        type=int,
        metavar="PORT",
        help="port of /metrics; 0 to disable (default prometheus.port, 8000)",
    )
    demo.add_argument(
        "--plot",
        metavar="FILE",
        help="write accuracy and drift alarms over the run to FILE at the end: .html (a "
        "self-contained page) or .svg",
    )

    prod = sub.add_parser(
        "produce",
        help="replay a River dataset, a CSV or a JSONL file into a topic",
        description="Encode rows as JSON or Avro and produce them to a topic, keyed by their id "
        "(or --key-field) so that one key goes to one partition (murmur2, as the Java client). "
        "Rows without an id get their position. The topic must exist, or pass --create-topic.",
        epilog="examples:\n"
        "  streamer produce --dataset Phishing --create-topic\n"
        "  streamer produce --csv data.csv --rate 500\n"
        "  streamer produce --jsonl events.jsonl --key-field tenant --topic events\n"
        "  streamer produce --dataset Phishing --format avro --schema schemas/phishing.avsc "
        "--schema-id 1",
        formatter_class=_RAW,
    )
    with_config(prod)
    with_brokers(prod)
    src = prod.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--dataset",
        metavar="NAME",
        help="a River dataset: Phishing, Bananas, TrumpApproval, synth.SEA…",
    )
    src.add_argument("--csv", metavar="FILE", help="CSV file with a header line")
    src.add_argument("--jsonl", metavar="FILE", help="file with one JSON object per line")
    prod.add_argument("--topic", help="target topic (default topics.events)")
    prod.add_argument(
        "--format", choices=["json", "avro"], default="json", help="encoding (default json)"
    )
    prod.add_argument("--schema", metavar="FILE", help=".avsc file, for --format avro")
    prod.add_argument(
        "--schema-id",
        type=int,
        metavar="ID",
        help="write the Confluent wire format (magic byte + schema id) with this id",
    )
    prod.add_argument(
        "--rate",
        type=float,
        metavar="PER_SECOND",
        help="records per second (default: as fast as possible)",
    )
    prod.add_argument("--limit", type=int, metavar="N", help="stop after N records")
    prod.add_argument(
        "--id-field", default="id", metavar="NAME", help="field holding the id (default id)"
    )
    prod.add_argument(
        "--label-field",
        default="label",
        metavar="NAME",
        help="where --dataset rows put their label (default label)",
    )
    prod.add_argument(
        "--key-field", metavar="NAME", help="field whose value is the record key (default: id)"
    )
    prod.add_argument(
        "--create-topic",
        action="store_true",
        help="create the topic if it does not exist (with --partitions)",
    )
    prod.add_argument(
        "--partitions",
        type=int,
        metavar="N",
        help="partitions of a topic --create-topic creates (default topics.partitions, 3)",
    )

    ref = sub.add_parser(
        "drift-reference",
        help="build a pinned drift reference (features, predictions, labels) from a data set",
        description="Run the configured model prequentially over trusted data and keep the "
        "binned distributions of its features, predictions and labels: a file for "
        'drift.windows.reference = "pinned", so that drift is measured against it rather than '
        "against the first events after a start.",
        epilog="examples:\n"
        "  streamer drift-reference -c streamer.toml --csv training.csv -o reference.json\n"
        "  streamer drift-reference --dataset Phishing --limit 1000 -o reference.json",
        formatter_class=_RAW,
    )
    with_config(ref)
    rsrc = ref.add_mutually_exclusive_group(required=True)
    rsrc.add_argument(
        "--dataset", metavar="NAME", help="a River dataset: Phishing, Bananas, TrumpApproval…"
    )
    rsrc.add_argument("--csv", metavar="FILE", help="CSV file with a header line")
    rsrc.add_argument("--jsonl", metavar="FILE", help="file with one JSON object per line")
    ref.add_argument("--limit", type=int, metavar="N", help="use at most N rows")
    ref.add_argument("-o", "--output", required=True, metavar="FILE", help="JSON file to write")

    _report_parser(sub, with_config)
    _models_parser(sub, with_config)

    check = sub.add_parser(
        "check-config",
        help="print the effective settings, secrets masked",
        description="Load the settings as `run` would and print the values that apply, "
        "defaults included, as JSON, with secrets masked. Refuses what `run` refuses, "
        "librdkafka properties included (checked without connecting). A model given as "
        "module:factory is code from the configuration: it is imported only with "
        "--import-models.",
        epilog="examples:\n"
        "  streamer check-config -c deploy/streamer.toml\n"
        "  STREAMER_DRIFT__CONCEPT__DETECTOR=ADWIN streamer check-config\n"
        "  streamer check-config -c streamer.toml --import-models",
        formatter_class=_RAW,
    )
    with_config(check)
    check.add_argument(
        "--import-models",
        action="store_true",
        help="import a module:factory model and build it (runs code named by the settings)",
    )

    example = sub.add_parser(
        "example-config",
        help="print the complete, commented example settings",
        description="Print the example settings shipped with streamer: every section and "
        "setting, with its default and what it does.",
        epilog="examples:\n"
        "  streamer example-config > streamer.toml\n"
        "  streamer example-config -o /etc/streamer/streamer.toml",
        formatter_class=_RAW,
    )
    _logging_options(example, top=False)
    example.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default stdout)")
    return p


def _logging_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    # After the subcommand the defaults are suppressed, so that they do not undo the options
    # given before it.
    default: Any = argparse.SUPPRESS
    p.add_argument(
        "--log-level",
        default="INFO" if top else default,
        metavar="LEVEL",
        help=f"{', '.join(LEVELS)} (default INFO)",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0 if top else default,
        help="more log lines (repeatable: -vv)",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=0 if top else default,
        help="fewer log lines (repeatable: -qq)",
    )
    p.add_argument(
        "--log-format",
        choices=FORMATS,
        default="text" if top else default,
        help="text for people, json for log shippers: one object a line with time, level, "
        "logger, message and extra fields (default text)",
    )


def _models_parser(sub: Any, with_config: Any) -> None:
    models = sub.add_parser(
        "models",
        help="the model registry: list, get or watch the model-update topic",
        description="The model-update topic is the registry: every version of every partition's\n"
        "champion, signed. These commands verify each update (signature, SHA-256, key) before\n"
        "using it; they need the deployment's signing key (security.signing_key).",
        epilog="examples:\n"
        "  streamer models list -c streamer.toml\n"
        "  streamer models get --version 3 --partition 0 -o model.pkl\n"
        "  streamer models watch",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    msub = models.add_subparsers(dest="models_command", required=True)
    for name, text in (
        ("list", "every version of every model, with parent, reason, lineage and metrics"),
        ("get", "one verified model: its metadata, and the model pickled to a file"),
        ("watch", "follow new updates as they are published (Ctrl-C to stop)"),
    ):
        sp = msub.add_parser(name, help=text, description=text)
        with_config(sp)
        sp.add_argument("--bootstrap-servers", help="default kafka.bootstrap_servers")
        sp.add_argument("--topic", help="model-update topic (default topics.model_updates)")
        sp.add_argument("--model", help="only this model name")
        sp.add_argument(
            "--partition",
            type=int,
            help="only this input partition (each partition has its own model and versions)",
        )
        if name == "get":
            sp.add_argument("--version", type=int, required=True, help="the model version")
            sp.add_argument("--revision", type=int, help="the revision (default: the newest)")
            sp.add_argument("-o", "--output", help="write the model (a plain pickle) here")
        if name == "watch":
            sp.add_argument(
                "--from-beginning", action="store_true", help="replay the history first"
            )


def _report_parser(sub: Any, with_config: Any) -> None:
    rep = sub.add_parser(
        "report",
        help="write an HTML drift report from the drift-events topic, or a reference and a CSV",
        description="Write one self-contained HTML page (inline SVG plots, no script, nothing\n"
        "fetched) with per-feature drift statistics, thresholds, levels and plots, to share\n"
        "what the stream saw: from the drift-events topic, read from the start to its end\n"
        "(JSON or Avro), or from a pinned reference file compared with a CSV of current data.",
        epilog="examples:\n"
        "  streamer report -c streamer.toml -o drift.html\n"
        "  streamer report --bootstrap-servers localhost:9092 --topic drift-events -o drift.html\n"
        "  streamer report --reference reference.json --csv today.csv -o drift.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    with_config(rep)
    src = rep.add_mutually_exclusive_group()
    src.add_argument("--topic", help="drift-events topic to read (default topics.drift_events)")
    src.add_argument(
        "--reference",
        metavar="FILE",
        help="pinned reference file (from `streamer drift-reference`) to compare --csv with",
    )
    rep.add_argument(
        "--csv",
        metavar="FILE",
        help="current data (CSV with a header line, or .jsonl) compared with --reference",
    )
    rep.add_argument(
        "--bootstrap-servers", help="brokers to read from (default kafka.bootstrap_servers)"
    )
    rep.add_argument(
        "--format",
        choices=["auto", "json", "avro"],
        default="auto",
        help="encoding of the drift events (default auto: JSON or the worker's Avro)",
    )
    rep.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to reach the end of the topic (default 60)",
    )
    rep.add_argument("--title", default="Drift report", help="page heading")
    rep.add_argument("-o", "--output", required=True, help="HTML file to write")


def _settings(args: argparse.Namespace, **overrides: Any) -> Settings:
    brokers = getattr(args, "bootstrap_servers", None)
    if brokers:
        kafka = {**overrides.get("kafka", {}), "bootstrap_servers": brokers}
        overrides = {**overrides, "kafka": kafka}
    return load_settings(args.config, overrides=overrides or None)


def _stop_on_signals(stop: Any) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s: finishing the batch in progress, then stopping", signal.Signals(signum).name)
        stop()
        # A second Ctrl-C stops at once.
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _run(args: argparse.Namespace) -> int:
    from streamer import kafka
    from streamer.metrics import serve_worker_metrics
    from streamer.summary import summarize
    from streamer.worker import Worker

    settings = _settings(args)
    if args.workers < 1:
        raise ConfigError("--workers", f"needs at least 1 worker, got {args.workers}")
    worker = Worker(settings, instance=args.worker_index)
    # librdkafka's verdict on the client properties before any connection: a bad property
    # is a configuration error now, not after waiting for a cluster.
    for warning in kafka.check_configs(settings.kafka):
        log.warning("%s", warning)
    _stop_on_signals(worker.stop)
    # An unreachable cluster is one clear line per attempt until it answers (or SIGTERM).
    if not kafka.wait_for_cluster(settings.kafka, should_stop=lambda: worker.stopping):
        return 0
    created = worker.provision_topics()
    if created:
        log.info("created topics %s", created)
    if args.workers > 1:
        from streamer.supervisor import supervise

        # The children get the same options: logging, settings file, brokers.
        argv = ["--log-level", args.log_level, "--log-format", args.log_format]
        argv += ["-v"] * args.verbose + ["-q"] * args.quiet + ["run"]
        argv += ["-c", args.config] if args.config else []
        if args.bootstrap_servers:
            argv += ["--bootstrap-servers", args.bootstrap_servers]
        if args.max_events is not None:
            argv += ["--max-events", str(args.max_events)]
        return supervise(args.workers, argv, base_port=settings.prometheus.port)
    server = None
    if settings.prometheus.port:
        server = serve_worker_metrics(worker, settings)
    try:
        worker.run(max_events=args.max_events)
    finally:
        if server is not None:
            server.close()
        # What the run did, also after a signal or a failure: the final metrics are on
        # /metrics only while the worker runs.
        summary = summarize(worker)
        if args.log_format == "json":
            log.info("run summary", extra={"summary": summary.as_dict()})
        else:
            print("\n".join(["streamer run: summary", *summary.lines()]), flush=True)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from streamer.demo import Demo
    from streamer.plot import check_plot_path

    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["prometheus"] = {"port": args.port}
    settings = _settings(args, **overrides)
    if args.plot:
        check_plot_path(args.plot)
    # Probe the port first, so that a busy one is a clear error before anything starts.
    if settings.prometheus.port:
        import socket

        with socket.socket() as s:
            try:
                s.bind((settings.prometheus.host, settings.prometheus.port))
            except OSError as exc:
                raise ConfigError(
                    "prometheus.port",
                    f"port {settings.prometheus.port} is busy ({exc.strerror}); "
                    "pass --port N, or --port 0 to disable /metrics",
                ) from exc
    demo = Demo(
        settings,
        events=args.events,
        rate=args.rate or None,
        stream=args.stream,
        drift_every=args.drift_every,
        bad_every=args.bad_every,
        seed=args.seed,
        partitions=args.partitions,
        plot=args.plot,
    )
    _stop_on_signals(demo.stop)
    demo.run()
    return 0


def _produce(args: argparse.Namespace) -> int:
    from streamer import kafka
    from streamer.decode import AvroEncoder, Encoder, JsonEncoder, load_schema
    from streamer.produce import dataset_rows, file_rows, produce_rows

    settings = _settings(args)
    topic = args.topic or settings.topics.events
    encoder: Encoder
    if args.format == "avro":
        if not args.schema:
            raise ConfigError("--schema", "Avro output needs an .avsc file")
        encoder = AvroEncoder(load_schema(args.schema, setting="--schema"), args.schema_id)
    else:
        encoder = JsonEncoder()
    if args.partitions is not None and args.partitions < 1:
        raise ConfigError("--partitions", f"must be at least 1, got {args.partitions}")
    if args.dataset:
        rows = dataset_rows(args.dataset, id_field=args.id_field, label_field=args.label_field)
    else:
        rows = file_rows(args.csv or args.jsonl)
    _target_topic(kafka, settings, topic, create=args.create_topic, partitions=args.partitions)
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    stop: list[bool] = []
    _stop_on_signals(lambda: stop.append(True))
    n = produce_rows(
        rows,
        sink,
        topic,
        encoder,
        id_field=args.id_field,
        key_field=args.key_field,
        rate=args.rate,
        limit=args.limit,
        should_stop=lambda: bool(stop),
    )
    sink.flush()
    print(f"produced {n} records to {topic}", file=sys.stderr)
    return 0


def _target_topic(
    kafka: Any, settings: Settings, topic: str, *, create: bool, partitions: int | None
) -> None:
    """Make sure ``topic`` exists before producing: never let a broker auto-create it.

    A broker with ``auto.create.topics.enable`` would create a missing topic with its own
    partition count (4 on the embedded broker), silently spreading the rows over models.
    """
    admin = kafka.make_admin(settings.kafka)
    existing = kafka.partition_count(admin, topic) or None
    wanted = partitions or settings.topics.partitions
    setting = "--topic" if topic != settings.topics.events else "topics.events"
    if existing is None:
        if not create:
            raise ConfigError(
                setting,
                f"topic {topic!r} does not exist on {settings.kafka.bootstrap_servers}; pass "
                f"--create-topic to create it with --partitions N (default topics.partitions "
                f"= {settings.topics.partitions}), or create it yourself",
            )
        kafka.ensure_topics(
            admin,
            [topic],
            partitions=wanted,
            replication_factor=settings.topics.replication_factor,
        )
        print(f"created topic {topic} with {wanted} partition(s)", file=sys.stderr)
    elif partitions is not None and partitions != existing:
        log.warning(
            "topic %r already exists with %d partition(s): --partitions %d is ignored "
            "(streamer never changes an existing topic)",
            topic,
            existing,
            partitions,
        )


def _drift_reference(args: argparse.Namespace) -> int:
    import itertools

    from streamer.drift.reference import build_reference
    from streamer.produce import dataset_rows, file_rows

    settings = _settings(args)
    rows = dataset_rows(args.dataset) if args.dataset else file_rows(args.csv or args.jsonl)
    if args.limit:
        rows = itertools.islice(rows, args.limit)
    reference = build_reference(settings, rows)
    with open(args.output, "wb") as f:
        f.write(orjson.dumps(reference, option=orjson.OPT_INDENT_2))
    sizes = ", ".join(f"{k} {v['events']}" for k, v in reference.items())
    print(f"wrote {args.output} ({sizes} events)", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from streamer import report

    if args.reference or args.csv:
        if not (args.reference and args.csv):
            raise ConfigError(
                "--reference" if args.csv else "--csv",
                "a report from data needs both --reference FILE and --csv FILE",
            )
        from streamer.monitoring import load_reference
        from streamer.produce import file_rows

        settings = _settings(args)
        try:
            reference = load_reference(args.reference)
        except FileNotFoundError:
            raise ConfigError("--reference", f"{args.reference} does not exist") from None
        except ValueError as exc:
            raise ConfigError("--reference", str(exc)) from exc
        try:
            result = report.compare_rows(reference, file_rows(args.csv), settings)
        except ValueError as exc:
            raise StreamerError(f"cannot compare {args.csv} with {args.reference}: {exc}") from exc
        page = report.render_report(
            result, title=args.title, source=f"{args.csv} compared with {args.reference}"
        )
        what = (
            f"{result.events} rows, {len(result.drifted)} column(s) at alarm, "
            f"{len(result.latest())} statistics"
        )
    else:
        overrides = (
            {"kafka": {"bootstrap_servers": args.bootstrap_servers}}
            if args.bootstrap_servers
            else {}
        )
        settings = _settings(args, **overrides)
        topic = args.topic or settings.topics.drift_events
        events = report.read_drift_events(
            settings.kafka, topic, fmt=args.format, timeout=args.timeout
        )
        page = report.render_events(
            events.events,
            title=args.title,
            source=f"topic {topic} on {settings.kafka.bootstrap_servers}",
            undecodable=events.undecodable,
        )
        alarms = sum(1 for e in events.events if e.get("level") == "alarm")
        what = f"{len(events.events)} drift events, {alarms} alarms"
        if events.undecodable:
            what += f", {len(events.undecodable)} records that are not drift events"
    with open(args.output, "w", encoding="utf-8") as f:
        f.write(page)
    print(f"wrote {args.output} ({what})", file=sys.stderr)
    return 0


def _models(args: argparse.Namespace) -> int:
    import pickle

    from streamer.registry import Accepted, ModelUpdate, read_registry

    overrides: dict[str, Any] = {}
    if args.bootstrap_servers:
        overrides["kafka"] = {"bootstrap_servers": args.bootstrap_servers}
    if args.topic:
        overrides["topics"] = {"model_updates": args.topic}
    settings = _settings(args, **overrides)
    if settings.signing_key() is None:
        raise ConfigError(
            "security.signing_key",
            "model updates are verified with the deployment's signing key: set it "
            "(STREAMER_SECURITY__SIGNING_KEY)",
        )

    def wanted(u: ModelUpdate) -> bool:
        return (args.model is None or u.name == args.model) and (
            args.partition is None or u.partition == args.partition
        )

    def line(u: ModelUpdate, status: str = "ok") -> str:
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(u.metrics.items()))
        parent = f"v{u.parent_version}" if u.parent_version is not None else "-"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(u.created_at))
        return (
            f"{u.key:<28} v{u.version:<3} rev {u.revision:<8} parent {parent:<4} "
            f"{u.reason:<9} {when}  offsets {u.first_offset}-{u.last_offset} "
            f"({u.events_learned} learned)  {u.model_class}  {metrics}  [{status}]"
        )

    if args.models_command == "watch":
        from streamer.registry import ModelSubscriber

        stop: list[bool] = []
        _stop_on_signals(lambda: stop.append(True))
        print(f"watching {settings.topics.model_updates} (Ctrl-C to stop)", file=sys.stderr)
        with ModelSubscriber(
            settings,
            name=args.model,
            from_beginning=args.from_beginning,
            on_refused=lambda r: print(f"REFUSED {r.key}: {r.reason}: {r.detail}", flush=True),
        ) as sub:
            while not stop:
                for acc in sub.poll(0.5):
                    if wanted(acc.update):
                        print(line(acc.update, "verified"), flush=True)
        return 0
    results = read_registry(settings, verify_only=args.models_command == "list")
    if args.models_command == "list":
        shown = 0
        for r in results:
            if isinstance(r, Accepted):
                if wanted(r.update):
                    print(line(r.update))
                    shown += 1
            elif r.update is None or wanted(r.update):
                print(f"{r.key:<28} REFUSED ({r.reason}): {r.detail}")
        if not shown:
            print(f"no verified model updates on {settings.topics.model_updates}", file=sys.stderr)
        return 0
    found = [
        r
        for r in results
        if isinstance(r, Accepted)
        and wanted(r.update)
        and r.update.version == args.version
        and (args.revision is None or r.update.revision == args.revision)
    ]
    if not found:
        print(f"streamer: no verified update of version {args.version}", file=sys.stderr)
        return 1
    ambiguous = _ambiguous(found, args.version)
    if ambiguous:
        print(f"streamer: {ambiguous}", file=sys.stderr)
        return 2
    acc = max(found, key=lambda a: a.update.order)  # the newest revision
    print(line(acc.update, "verified"))
    if args.output:
        with open(args.output, "wb") as f:
            pickle.dump(acc.model, f, protocol=5)
        print(f"wrote the model to {args.output}", file=sys.stderr)
    return 0


def _ambiguous(found: Sequence[Any], version: int) -> str | None:
    """Why ``models get`` cannot choose among ``found`` (verified updates of ``version``).

    Every partition's champion has its own versions (each starts at 1), so a version number
    alone often names several models; picking one of them silently would hand out another
    partition's model. None when all are revisions of one model.
    """
    updates = {a.update.key: a.update for a in found}
    if len(updates) < 2:
        return None
    options = []
    if len({u.partition for u in updates.values()}) > 1:
        options.append("--partition N")
    if len({u.name for u in updates.values()}) > 1:
        options.append("--model NAME")
    candidates = ", ".join(
        f"{key} (--model {u.name} --partition {u.partition})" for key, u in sorted(updates.items())
    )
    return (
        f"version {version} matches {len(updates)} models: {candidates}; choose one with "
        f"{' and '.join(options) or '--model NAME and --partition N'}"
    )


def _check_config(args: argparse.Namespace) -> int:
    from streamer import kafka
    from streamer.settings import effective

    settings = _settings(args)
    for warning in kafka.check_configs(settings.kafka):
        print(f"streamer: warning: {warning}", file=sys.stderr)
    task = "classification"
    if ":" in settings.model.preset and not args.import_models:
        # A module:factory model runs code named by the configuration: not without asking.
        _check_without_model(settings)
        print(
            f"streamer: note: model.preset {settings.model.preset!r} was not imported (it runs "
            "code named by the settings); pass --import-models to build it and check "
            "everything that depends on it",
            file=sys.stderr,
        )
    else:
        # Build what a worker would build, so that check-config finds what `run` would refuse.
        from streamer.worker import Worker

        task = Worker(settings).task
    if not settings.kafka.bootstrap_servers:
        print(
            "streamer: note: kafka.bootstrap_servers is empty: `run` and `produce` need it; "
            "`demo` starts an embedded broker instead",
            file=sys.stderr,
        )
    data = effective(settings, task=task)
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def _check_without_model(settings: Settings) -> None:
    """The checks of a worker's start-up that do not need the model."""
    from streamer.decode import make_decoder
    from streamer.drift.monitor import load_reference

    s = settings
    make_decoder(
        s.input.format,
        schema_file=s.resolve_path(s.input.avro.schema_file) if s.input.avro.schema_file else None,
        schema_ids={k: s.resolve_path(v) for k, v in s.input.avro.schema_ids.items()},
        framing=s.input.avro.framing,
    )
    w = s.drift.windows
    if s.drift.enabled and w.reference == "pinned":
        load_reference(s.resolve_path(w.reference_file))
    s.signing_key()  # a key file that cannot be read


def _example_config(args: argparse.Namespace) -> int:
    from streamer.resources import example_settings

    text = example_settings()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "run": _run,
        "demo": _demo,
        "produce": _produce,
        "drift-reference": _drift_reference,
        "report": _report,
        "models": _models,
        "check-config": _check_config,
        "example-config": _example_config,
    }
    try:
        level = parse_level(args.log_level, verbose=args.verbose, quiet=args.quiet)
        configure(level, args.log_format)
        return commands[args.command](args)
    except ConfigError as exc:
        print(f"streamer: configuration error: {exc}", file=sys.stderr)
        return 2
    except StreamerError as exc:
        print(f"streamer: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
