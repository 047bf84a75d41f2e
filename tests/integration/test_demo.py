"""``streamer demo`` as a newcomer runs it: in a terminal (Ctrl-C included) and in a pipe."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from streamer import kafka
from streamer.broker import free_port
from streamer.decode import JsonEncoder
from streamer.demo import DEMO_SIGNING_KEY, murmur2_partition
from streamer.produce import produce_rows
from streamer.testing import read_topic, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
SVG = "{http://www.w3.org/2000/svg}"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# What librdkafka prints on its own when a broker goes away under a client, and what the
# sink says when outputs cannot be delivered.
ERRORS = re.compile(r"%\d\|\d+\.\d+\||rdkafka#|undelivered|Traceback|\bERROR\b|refused")


def _env() -> dict[str, str]:
    # No configured brokers: the demo starts its own.
    return {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}


class Terminal:
    """``streamer demo`` in a pseudo-terminal, as a shell runs a foreground job.

    The child is a session leader whose process group is the terminal's foreground group, so
    ``os.killpg(pid, SIGINT)`` is exactly what the terminal does when the user types Ctrl-C.
    """

    def __init__(self, *args: str) -> None:
        self.output = bytearray()
        pid, fd = pty.fork()
        if pid == 0:  # the child: become the program
            os.chdir(ROOT)
            os.execve(sys.executable, [sys.executable, "-m", "streamer", *args], _env())
        self.pid, self.fd = pid, fd
        # A terminal has a size; 120 columns is wider than anything the demo prints.
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.status: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: every process holding the terminal has exited
                return
            if not chunk:
                return
            self.output.extend(chunk)

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def exited(self) -> bool:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = status
        return self.status is not None

    def close(self) -> None:
        if not self.exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        self._reader.join(timeout=10)
        os.close(self.fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_ctrl_c_in_a_terminal_stops_the_demo_in_order_and_cleanly():
    term = Terminal("demo", "--port", "0", "--rate", "2000")
    try:
        # The demo is the terminal's foreground job (once the child has taken the terminal).
        wait_for(lambda: os.tcgetpgrp(term.fd) == term.pid, timeout=30, what="foreground")
        # Wait for the live table, redrawn in place, with events flowing.
        wait_for(
            lambda: (
                re.search(r"\x1b\[\d+F\x1b\[J", term.text)
                and re.search(r"p0 +[1-9][\d,]* ", ANSI.sub("", term.text))
            ),
            timeout=120,
            what="the live table with events",
        )
        broker = int(re.search(r"embedded broker \(Tansu\) on \S+, pid (\d+)", term.text)[1])
        os.killpg(term.pid, signal.SIGINT)  # Ctrl-C: the whole foreground process group
        wait_for(term.exited, timeout=120, what="the demo to exit after Ctrl-C")
    finally:
        term.close()
    out = ANSI.sub("", term.text)
    assert os.WIFEXITED(term.status) and os.WEXITSTATUS(term.status) == 0, out
    assert not ERRORS.search(out), out
    # In order: the worker finishes its batch and closes, the producer stops, the broker last;
    # then the summary.
    order = [
        out.index("SIGINT: finishing the batch in progress"),
        out.index("worker stopped after"),
        out.index("producer stopped after"),
        out.index("broker stopped"),
        out.index("\nsummary"),
    ]
    assert order == sorted(order), out
    assert not _alive(broker)
    assert "open next" in out


def test_demo_stops_cleanly_on_sigint_to_the_process():
    """SIGINT to the Python process only (``kill -INT``), not to its group."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "demo", "--port", "0", "--rate", "3000"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        for line in proc.stdout:  # wait for live progress with events flowing
            if line.startswith("[") and "events       500" not in line and "events " in line:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "SIGINT: finishing the batch in progress" in err
    assert "worker stopped after" in err


def _demo_in_a_pipe(tmp_path: Path, *extra: str) -> tuple[str, str]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "streamer",
            "demo",
            "--events",
            "4000",
            "--rate",
            "0",
            "--port",
            "0",
            "--drift-every",
            "1500",
            "--bad-every",
            "1000",
            "--plot",
            str(tmp_path / "demo.html"),
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, proc.stderr


def test_the_demo_in_a_pipe_tells_the_story_in_plain_lines_and_a_plot(tmp_path):
    out, err = _demo_in_a_pipe(tmp_path)
    assert "\x1b" not in out  # no escape codes in a pipe
    lines = out.splitlines()
    address = re.search(r"embedded broker \(Tansu\) on (\S+), pid", out)[1]
    # The commands to follow the run come while the broker is up, before the first status
    # line, whole (never cut), with the demo's signing key for `streamer models`.
    follow = lines.index("follow it from another shell, while the demo runs")
    first_status = next(i for i, line in enumerate(lines) if re.match(r"\[ *\d+\.\ds\] ", line))
    assert follow < first_status
    block = "\n".join(lines[follow:first_status])
    assert (
        f"STREAMER_SECURITY__SIGNING_KEY={DEMO_SIGNING_KEY} streamer models watch "
        f"--from-beginning --bootstrap-servers {address}\n" in block
    )
    assert f"kcat -C -b {address} -t predictions" in block
    # The closing hint names only what works once the broker has stopped.
    closing = out[out.index("\nopen next\n") :]
    assert address not in closing and "kcat" not in closing
    assert "STREAMER_SECURITY__SIGNING_KEY_FILE=" in closing
    status = [line for line in lines if re.match(r"\[ *\d+\.\ds\] events ", line)]
    assert "events     4,000" in status[-1] and "dead letters 4" in status[-1]
    assert status[0].split("events", 1)[1].split()[1] == "—/s"  # no rate over start-up
    assert any("p0 rolling Accuracy" in line for line in lines)

    # The drift counts shown are the lines printed: alarms, warnings and clears.
    printed = {
        level: [line for line in lines if re.match(rf"\[ *\d+\.\ds\] {tag} ", line)]
        for level, tag in (("alarm", "ALARM   "), ("warning", "warning "), ("ok", "cleared "))
    }
    counts = re.search(r"drift alarms (\d+) warnings (\d+) cleared (\d+)", status[-1])
    assert [int(n) for n in counts.groups()] == [len(printed[k]) for k in printed]
    summary = out[out.index("\nsummary\n") :]
    assert (
        f"drift events  alarms {len(printed['alarm'])}, warnings {len(printed['warning'])}, "
        f"cleared {len(printed['ok'])}" in summary
    )
    assert "events        4,000 in" in summary
    assert "dead letters  4 (validate/wrong_type 4)" in summary

    # The stream switched at 1,500 and 3,000: each switch found says where, how late, and
    # the accuracy around it; the alarm is the one printed while running.
    concept_alarms = [
        int(m[1].replace(",", ""))
        for line in printed["alarm"]
        if (m := re.search(r"p0 @ ([\d,]+)  concept  DualADWIN", line))
    ]
    found = re.findall(r"switch (\d) at offset ([\d,]+): concept alarm at ([\d,]+), ([\d,]+)", out)
    assert found, summary
    for number, start, at, lag in found:
        start, at, lag = (int(v.replace(",", "")) for v in (start, at, lag))
        assert start == 1500 * int(number)
        assert lag == at - start and at in concept_alarms
    assert re.search(r"Accuracy before 0\.\d{3} \(at [\d,]+\) · lowest 0\.\d{3}", summary)
    assert "final metrics (running" in summary and "open next" in summary

    # The plot: the accuracy line, the true switches, the concept alarms printed above.
    page = ET.parse(tmp_path / "demo.html").getroot()
    (svg,) = page.iter(f"{SVG}svg")
    assert len(list(svg.iter(f"{SVG}polyline"))) == 1
    switches = [int(e.get("data-offset")) for e in svg.iter(f"{SVG}line") if e.get("class")]
    assert switches == [1500, 3000]
    marked = sorted(
        int(e.get("data-offset"))
        for e in svg.iter(f"{SVG}polygon")
        if e.get("class") == "drift alarm concept"
    )
    assert marked == sorted(concept_alarms)
    assert "worker stopped after 4000 records" in err


def test_the_partition_of_a_key_is_what_librdkafka_chooses(make_settings):
    settings = make_settings(topics={"partitions": 3})
    topic = settings.topics.events
    kafka.ensure_topics(
        kafka.make_admin(settings.kafka), [topic], partitions=3, replication_factor=1
    )
    sink = kafka.KafkaSink(kafka.make_producer(settings.kafka))
    rows = [{"id": str(i)} for i in range(300)]
    produce_rows(rows, sink, topic, JsonEncoder())
    sink.close()
    records = read_topic(settings.kafka, topic, len(rows))
    chosen = {m.key().decode(): m.partition() for m in records}
    assert len(set(chosen.values())) == 3
    assert chosen == {r["id"]: murmur2_partition(r["id"].encode(), 3) for r in rows}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except urllib.error.URLError as exc:  # not serving yet
        return 0, str(exc.reason)


def _ready_metric(base: str) -> float | None:
    found = re.search(r"^streamer_ready (\S+)$", _get(base + "/metrics")[1], re.MULTILINE)
    return float(found[1]) if found else None


def test_the_demo_serves_readiness_as_run_does(tmp_path):
    """/readyz and streamer_ready follow the demo worker's health: ready while the broker
    answers, not ready while it is paused, ready again after."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "demo.out"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamer", "demo", "--port", str(port), "--rate", "1000"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=_env(),
        )
    broker = None
    try:
        found = wait_for(
            lambda: re.search(r"embedded broker \(Tansu\) on \S+, pid (\d+)", log.read_text()),
            timeout=60,
            what="the embedded broker",
        )
        broker = int(found[1])
        wait_for(
            lambda: _get(base + "/readyz") == (200, "ok\n") and _ready_metric(base) == 1.0,
            timeout=120,
            what="/readyz 200 and streamer_ready 1",
        )
        assert _get(base + "/healthz") == (200, "ok\n")
        os.kill(broker, signal.SIGSTOP)
        try:
            wait_for(
                lambda: _get(base + "/readyz")[0] == 503 and _ready_metric(base) == 0.0,
                timeout=60,
                what="/readyz 503 and streamer_ready 0 while the broker is paused",
            )
            status, reason = _get(base + "/readyz")
            assert status == 503 and "broker" in reason, reason
            assert _get(base + "/healthz")[0] == 200  # alive: a restart would not help
        finally:
            os.kill(broker, signal.SIGCONT)
        wait_for(
            lambda: _get(base + "/readyz")[0] == 200 and _ready_metric(base) == 1.0,
            timeout=120,
            what="ready again",
        )
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()[-3000:]
    assert broker is not None and not _alive(broker)
