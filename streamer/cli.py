"""The ``streamer`` command: load settings once, build the app, run until SIGTERM.

Subcommands:

``run``           a worker of the consumer group, until SIGTERM/SIGINT
``demo``          embedded broker + drifting stream + worker, with live progress
``produce``       replay a River dataset, CSV or JSONL file into a topic
``drift-reference``  build a pinned drift reference from a data set
``report``        an HTML drift report from the drift-events topic, or a reference and a CSV
``check-config``  print the effective settings, secrets masked

Exit status: 0 on a clean stop, 2 for a configuration error (the message names the setting),
1 for any other failure.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

import orjson

from streamer.errors import ConfigError, StreamerError
from streamer.settings import Settings, load_settings, masked

__all__ = ["main"]

log = logging.getLogger("streamer")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="streamer",
        description="Streaming drift monitor and online learner: Kafka in, River models, "
        "Prometheus out.",
    )
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING… (default INFO)")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser, required: bool = False) -> None:
        # Also accepted after the subcommand, where people tend to type it.
        sp.add_argument("--log-level", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        sp.add_argument(
            "-c",
            "--config",
            required=required,
            help="settings file (TOML); STREAMER_* environment variables override it",
        )

    run = sub.add_parser("run", help="run a worker until SIGTERM or SIGINT")
    with_config(run)
    run.add_argument("--max-events", type=int, help="stop after this many records")
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        help="run N worker processes in the group (metrics on prometheus.port + index)",
    )
    run.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)

    demo = sub.add_parser("demo", help="the whole loop on an embedded broker and a drifting stream")
    with_config(demo)
    demo.add_argument("--events", type=int, help="stop after this many events (default: Ctrl-C)")
    demo.add_argument("--rate", type=float, default=2000.0, help="events/s produced (0: unlimited)")
    demo.add_argument(
        "--stream", default="sea", choices=["sea", "agrawal", "stagger", "hyperplane"]
    )
    demo.add_argument(
        "--drift-every", type=int, default=10_000, help="events between concept switches"
    )
    demo.add_argument(
        "--bad-every", type=int, default=5_000, help="every Nth record is malformed (0: none)"
    )
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--partitions", type=int, default=1, help="partitions of the events topic")
    demo.add_argument("--port", type=int, help="metrics port (default prometheus.port)")

    prod = sub.add_parser("produce", help="replay a dataset or file into a topic")
    with_config(prod)
    src = prod.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--dataset", help="River dataset: Phishing, Bananas, TrumpApproval, synth.SEA…"
    )
    src.add_argument("--csv", help="CSV file with a header line")
    src.add_argument("--jsonl", help="file with one JSON object per line")
    prod.add_argument("--topic", help="target topic (default topics.events)")
    prod.add_argument("--bootstrap-servers", help="default kafka.bootstrap_servers")
    prod.add_argument("--format", choices=["json", "avro"], default="json")
    prod.add_argument("--schema", help=".avsc file (Avro)")
    prod.add_argument("--schema-id", type=int, help="write the Confluent wire format with this id")
    prod.add_argument(
        "--rate", type=float, help="records per second (default: as fast as possible)"
    )
    prod.add_argument("--limit", type=int, help="stop after this many records")
    prod.add_argument("--id-field", default="id")
    prod.add_argument("--label-field", default="label", help="label field for --dataset rows")
    prod.add_argument("--key-field", help="field whose value is the record key (default: id)")
    prod.add_argument("--create-topic", action="store_true", help="create the topic if missing")
    prod.add_argument("--partitions", type=int, default=1, help="partitions for --create-topic")

    ref = sub.add_parser(
        "drift-reference",
        help="build a pinned drift reference (features, predictions, labels) from a data set",
    )
    with_config(ref)
    rsrc = ref.add_mutually_exclusive_group(required=True)
    rsrc.add_argument("--dataset", help="River dataset: Phishing, Bananas, TrumpApproval…")
    rsrc.add_argument("--csv", help="CSV file with a header line")
    rsrc.add_argument("--jsonl", help="file with one JSON object per line")
    ref.add_argument("--limit", type=int, help="use at most this many rows")
    ref.add_argument("-o", "--output", required=True, help="JSON file to write")

    _report_parser(sub, with_config)
    _models_parser(sub, with_config)

    check = sub.add_parser("check-config", help="print the effective settings, secrets masked")
    with_config(check)
    return p


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
        sp.add_argument("--partition", type=int, help="only this input partition")
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
    from streamer.metrics import MetricsServer
    from streamer.worker import Worker

    settings = _settings(args)
    if args.workers < 1:
        raise ConfigError("--workers", f"needs at least 1 worker, got {args.workers}")
    worker = Worker(settings, instance=args.worker_index)
    _stop_on_signals(worker.stop)
    # An unreachable cluster is one clear line per attempt until it answers (or SIGTERM).
    if not kafka.wait_for_cluster(settings.kafka, should_stop=lambda: worker.stopping):
        return 0
    created = worker.provision_topics()
    if created:
        log.info("created topics %s", created)
    if args.workers > 1:
        from streamer.supervisor import supervise

        argv = ["--log-level", args.log_level, "run"]
        argv += ["-c", args.config] if args.config else []
        if args.max_events is not None:
            argv += ["--max-events", str(args.max_events)]
        return supervise(args.workers, argv, base_port=settings.prometheus.port)
    server = None
    if settings.prometheus.port:
        server = _metrics_server(MetricsServer, worker, settings)
    try:
        worker.run(max_events=args.max_events)
    finally:
        if server is not None:
            server.close()
    return 0


def _metrics_server(cls: Any, worker: Any, settings: Settings) -> Any:
    health = worker.health

    def live() -> str | None:
        return None if health.live() else "the worker loop has stopped turning"

    def ready() -> str | None:
        ok, why = health.ready()
        return None if ok else str(why)

    try:
        return cls(
            worker.metrics.registry,
            host=settings.prometheus.host,
            port=settings.prometheus.port,
            live=live,
            ready=ready,
        )
    except OSError as exc:
        raise ConfigError(
            "prometheus.port",
            f"cannot serve metrics on {settings.prometheus.host}:"
            f"{settings.prometheus.port}: {exc.strerror} (set another port, or 0 to disable)",
        ) from exc


def _demo(args: argparse.Namespace) -> int:
    from streamer.demo import run_demo

    overrides: dict[str, Any] = {}
    if args.port is not None:
        overrides["prometheus"] = {"port": args.port}
    settings = _settings(args, **overrides)
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
    stopper: list[Any] = []
    _stop_on_signals(lambda: stopper and stopper[0]())
    run_demo(
        settings,
        events=args.events,
        rate=args.rate or None,
        stream=args.stream,
        drift_every=args.drift_every,
        bad_every=args.bad_every,
        seed=args.seed,
        partitions=args.partitions,
        worker_hook=lambda w: stopper.append(w.stop),
    )
    return 0


def _produce(args: argparse.Namespace) -> int:
    from streamer import kafka
    from streamer.decode import AvroEncoder, Encoder, JsonEncoder, load_schema
    from streamer.produce import dataset_rows, file_rows, produce_rows

    overrides = (
        {"kafka": {"bootstrap_servers": args.bootstrap_servers}} if args.bootstrap_servers else {}
    )
    settings = _settings(args, **overrides)
    topic = args.topic or settings.topics.events
    encoder: Encoder
    if args.format == "avro":
        if not args.schema:
            raise ConfigError("--schema", "Avro output needs an .avsc file")
        encoder = AvroEncoder(load_schema(args.schema, setting="--schema"), args.schema_id)
    else:
        encoder = JsonEncoder()
    if args.dataset:
        rows = dataset_rows(args.dataset, id_field=args.id_field, label_field=args.label_field)
    else:
        rows = file_rows(args.csv or args.jsonl)
    if args.create_topic:
        kafka.ensure_topics(
            kafka.make_admin(settings.kafka),
            [topic],
            partitions=args.partitions,
            replication_factor=settings.topics.replication_factor,
        )
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
    acc = found[-1]
    print(line(acc.update, "verified"))
    if args.output:
        with open(args.output, "wb") as f:
            pickle.dump(acc.model, f, protocol=5)
        print(f"wrote the model to {args.output}", file=sys.stderr)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    settings = _settings(args)
    # Build what a worker would build, so that check-config finds what `run` would refuse.
    from streamer.worker import Worker

    Worker(settings)
    sys.stdout.write(orjson.dumps(masked(settings), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    commands = {
        "run": _run,
        "demo": _demo,
        "produce": _produce,
        "drift-reference": _drift_reference,
        "report": _report,
        "models": _models,
        "check-config": _check_config,
    }
    try:
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
