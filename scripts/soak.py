"""Soak: one `streamer run` for a long time, with broker pauses and poison records.

Not a test (it takes as long as you let it, and nothing here is pass/fail): it starts its own
embedded broker, a producer of a drifting stream (SEA, whose concept switches at event
``--drift-at``) with a poison record every ``--poison-every`` records, and one worker
process; every ``--pause-every`` seconds it freezes the broker (SIGSTOP of its pid) for
``--pause`` seconds. A worker that exits is started again and counted as a restart (there
should be none). Every ``--report-every`` seconds it prints one line:

    time  produced  processed  predictions  dead  restarts  rss_mb  lag  broker  health

and at the end a summary. Run it with ``scripts/soak --minutes 30`` (``--help`` for the rest).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families

from streamer import kafka
from streamer.broker import FAST_GROUP_SETTINGS, EmbeddedBroker, free_port
from streamer.settings import load_settings
from streamer.synth import concept_drift

ROOT = Path(__file__).resolve().parents[1]


def _poisons(rng: random.Random) -> list[tuple[str, Any]]:
    """(name, value) of each poison kind; values are made when used (some are large)."""
    base = {"id": "p", "0": 1.0, "1": 2.0, "2": 3.0, "label": True}
    return [
        ("random bytes", lambda: rng.randbytes(rng.randint(0, 200))),
        ("not json", lambda: b'{"id": "p", "0": NaN}'),
        ("1e308", lambda: orjson.dumps({**base, "0": 1e308})),
        ("label 2", lambda: orjson.dumps({**base, "label": 2})),
        ("label 0.5", lambda: orjson.dumps({**base, "label": 0.5})),
        ("wrong type", lambda: orjson.dumps({**base, "1": "x"})),
        (
            "1000 random fields",
            lambda: orjson.dumps(
                {**base, **{f"r{rng.getrandbits(48):x}": 1.0 for _ in range(1000)}}
            ),
        ),
        ("10000 new fields", lambda: orjson.dumps({f"n{j}": 1 for j in range(10_000)})),
        (
            "long names",
            lambda: orjson.dumps({**base, **{"x" * 5000 + str(j): 1 for j in range(20)}}),
        ),
        ("1 MB without id", lambda: orjson.dumps({"pad": "x" * 1_010_000})),
        ("600 KB id", lambda: orjson.dumps({**base, "id": "i" * 600_000})),
    ]


def _flag(m: dict[str, float], name: str) -> str:
    v = m.get(name)
    return "n/a" if v is None or v < 0 else ("ok" if v else "no")


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stop = threading.Event()
        self.workdir = Path(tempfile.mkdtemp(prefix="streamer-soak-"))
        self.broker = EmbeddedBroker(log_path=self.workdir / "broker.log")
        self.produced = 0
        self.poisoned = 0
        self.restarts = 0
        self.exits: list[int] = []
        self.paused = False
        self.pauses = 0
        self.rss: list[float] = []
        self.metrics_port = free_port()
        self.worker: subprocess.Popen[bytes] | None = None

    # -- pieces ---------------------------------------------------------------------------------

    def settings_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
        env.update(
            {
                "STREAMER_KAFKA__BOOTSTRAP_SERVERS": self.broker.bootstrap_servers,
                "STREAMER_KAFKA__GROUP_ID": "soak",
                "STREAMER_KAFKA__CONSUMER__SESSION_TIMEOUT_MS": str(
                    FAST_GROUP_SETTINGS["session.timeout.ms"]
                ),
                "STREAMER_KAFKA__CONSUMER__HEARTBEAT_INTERVAL_MS": str(
                    FAST_GROUP_SETTINGS["heartbeat.interval.ms"]
                ),
                "STREAMER_TOPICS__PARTITIONS": str(self.args.partitions),
                "STREAMER_PROMETHEUS__PORT": str(self.metrics_port),
                "STREAMER_PROMETHEUS__HOST": "127.0.0.1",
                "STREAMER_SECURITY__SIGNING_KEY": secrets.token_hex(32),
            }
        )
        return env

    def start_worker(self) -> None:
        log = open(self.workdir / "worker.log", "ab")  # noqa: SIM115 - the child owns it
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "streamer", "run"],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C is ours to pass on
        )
        log.close()

    def produce(self) -> None:
        settings = load_settings(env=self.env)
        # Poisons of up to 1.1 MB: more than a producer sends by default (the worker's is not
        # this one; its outputs must fit the default).
        sink = kafka.KafkaSink(
            kafka.make_producer(settings.kafka, extra={"message.max.bytes": 2_000_000})
        )
        rng = random.Random(self.args.seed)
        poisons = _poisons(rng)
        stream = concept_drift("sea", seed=self.args.seed, position=self.args.drift_at, n=None)
        interval = 1.0 / self.args.rate if self.args.rate else 0.0
        next_at = time.monotonic()
        i = 0
        while not self.stop.is_set():
            if self.args.poison_every and i % self.args.poison_every == self.args.poison_every - 1:
                _, make = poisons[self.poisoned % len(poisons)]
                value, key = make(), b"poison"
                self.poisoned += 1
            else:
                x, y = next(stream)
                value = orjson.dumps(
                    {"id": f"e{i}", **{str(k): v for k, v in x.items()}, "label": y}
                )
                key = f"e{i}".encode()
            try:
                sink.produce(settings.topics.events, value, key)
            except Exception as exc:  # a poison the producer itself refuses: count and go on
                print(f"producer refused record {i}: {exc}", file=sys.stderr)
            self.produced += 1
            i += 1
            if i % 1000 == 0:
                sink.poll()
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        try:
            sink.flush(30)
        except Exception as exc:
            print(f"producer: {exc}", file=sys.stderr)

    def pauser(self) -> None:
        while not self.stop.wait(self.args.pause_every):
            pid = self.broker.pid
            if pid is None:
                return
            os.kill(pid, signal.SIGSTOP)
            self.paused, self.pauses = True, self.pauses + 1
            self.stop.wait(self.args.pause)
            os.kill(pid, signal.SIGCONT)
            self.paused = False

    def scrape(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.metrics_port}"
        out: dict[str, float] = {}
        try:
            with urllib.request.urlopen(f"{url}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return out
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in (
                    "streamer_events_total",
                    "streamer_predictions_total",
                    "streamer_dead_letters_total",
                    "streamer_consumer_lag",
                ):
                    out[sample.name] = out.get(sample.name, 0.0) + sample.value
        for path in ("healthz", "readyz"):
            try:
                with urllib.request.urlopen(f"{url}/{path}", timeout=2) as r:
                    out[path] = float(r.status == 200)
            except urllib.error.HTTPError as exc:
                out[path] = -1.0 if exc.code == 404 else 0.0
            except OSError:
                out[path] = 0.0
        return out

    def rss_mb(self) -> float:
        if self.worker is None:
            return float("nan")
        try:
            status = Path(f"/proc/{self.worker.pid}/status").read_text()
        except OSError:
            return float("nan")
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> int:
        a = self.args
        self.broker.start()
        self.env = self.settings_env()
        settings = load_settings(env=self.env)
        t = settings.topics
        kafka.ensure_topics(
            kafka.make_admin(settings.kafka),
            [t.events, t.predictions, t.dead_letters, t.drift_events],
            partitions=a.partitions,
            replication_factor=1,
        )
        print(
            f"soak: broker {self.broker.bootstrap_servers} (pid {self.broker.pid}), logs in "
            f"{self.workdir}; {a.minutes} min, {a.rate or 'unlimited'} events/s, a poison every "
            f"{a.poison_every}, a {a.pause}s broker pause every {a.pause_every}s",
            flush=True,
        )
        self.start_worker()
        threads = [
            threading.Thread(target=self.produce, name="producer", daemon=True),
            threading.Thread(target=self.pauser, name="pauser", daemon=True),
        ]
        for th in threads:
            th.start()
        header = (
            f"{'time':>6} {'produced':>9} {'processed':>9} {'predicted':>9} {'dead':>6} "
            f"{'restarts':>8} {'rss_mb':>7} {'lag':>7} {'broker':>7} {'healthz':>7} {'readyz':>6}"
        )
        print(header, flush=True)
        started = time.monotonic()
        end = started + a.minutes * 60
        last: dict[str, float] = {}
        try:
            while time.monotonic() < end:
                time.sleep(min(a.report_every, max(end - time.monotonic(), 0)))
                assert self.worker is not None
                code = self.worker.poll()
                if code is not None:
                    self.exits.append(code)
                    self.restarts += 1
                    print(f"worker exited with {code}: restarting (see worker.log)", flush=True)
                    self.start_worker()
                m = self.scrape() or last
                last = m
                rss = self.rss_mb()
                if rss == rss:
                    self.rss.append(rss)

                print(
                    f"{time.monotonic() - started:6.0f} {self.produced:9d} "
                    f"{m.get('streamer_events_total', 0):9.0f} "
                    f"{m.get('streamer_predictions_total', 0):9.0f} "
                    f"{m.get('streamer_dead_letters_total', 0):6.0f} {self.restarts:8d} "
                    f"{rss:7.1f} {m.get('streamer_consumer_lag', 0):7.0f} "
                    f"{'paused' if self.paused else 'up':>7} {_flag(m, 'healthz'):>7} "
                    f"{_flag(m, 'readyz'):>6}",
                    flush=True,
                )
        except KeyboardInterrupt:
            print("interrupted", flush=True)
        finally:
            self.stop.set()
            pid = self.broker.pid
            if self.paused and pid is not None:
                os.kill(pid, signal.SIGCONT)
            for th in threads:
                th.join(30)
            code = self.finish()
            self.broker.stop()
        return code

    def finish(self) -> int:
        """Let the worker drain what was produced, stop it with SIGTERM, print the summary."""
        deadline = time.monotonic() + self.args.drain
        m: dict[str, float] = {}
        while time.monotonic() < deadline:
            m = self.scrape() or m
            if m.get("streamer_events_total", 0) >= self.produced:
                break
            time.sleep(1)
        code = None
        if self.worker is not None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                code = self.worker.wait(60)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                code = self.worker.wait()
        rss = self.rss or [float("nan")]
        print(
            f"\nsummary: produced {self.produced} ({self.poisoned} poison), processed "
            f"{m.get('streamer_events_total', 0):.0f}, predictions "
            f"{m.get('streamer_predictions_total', 0):.0f}, dead letters "
            f"{m.get('streamer_dead_letters_total', 0):.0f}; broker paused {self.pauses} times; "
            f"worker restarts {self.restarts} (exit codes {self.exits or 'none'}), final exit "
            f"{code}; RSS MB first {rss[0]:.1f}, max {max(rss):.1f}, last {rss[-1]:.1f}",
            flush=True,
        )
        return 0 if self.restarts == 0 and code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s produced (0: unlimited)")
    p.add_argument("--poison-every", type=int, default=200, help="one poison in N records")
    p.add_argument("--pause-every", type=float, default=120.0, help="seconds between broker pauses")
    p.add_argument("--pause", type=float, default=30.0, help="seconds each pause lasts")
    p.add_argument("--report-every", type=float, default=10.0, help="seconds between lines")
    p.add_argument("--drift-at", type=int, default=50_000, help="event of the concept switch")
    p.add_argument("--partitions", type=int, default=1)
    p.add_argument("--drain", type=float, default=120.0, help="seconds to wait for the backlog")
    p.add_argument("--seed", type=int, default=7)
    return Soak(p.parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
