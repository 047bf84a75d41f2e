"""``streamer demo``: the whole loop on a drifting stream, on an embedded broker.

With no brokers configured it starts the embedded Tansu broker, creates the topics, produces a
seeded synthetic stream whose concept switches every ``drift_every`` events (with a malformed
record now and then, to show the dead-letter path), and runs a worker on it. It stops on
Ctrl-C or after ``events`` records, in order: the worker finishes its batch, flushes, commits
and closes; the producer stops; the broker stops last.

What it shows:

* **at the start**, once the broker is up: the commands that follow the run from another
  shell (``/metrics``, ``streamer models watch`` with the demo's signing key, ``streamer
  report``, kcat), which work only while the demo's broker runs;
* **live**: on a terminal, a table that updates in place (events, rate, dead letters, drift
  counts, each partition's rolling metrics, concept state and model), with a coloured line
  above it for every drift event; anywhere else (a pipe, a file, CI), plain lines: one status
  line a second, and the same event lines;
* **at the end**: a summary: events, predictions, dead letters, every drift alarm with its
  offset and how long after the true switch it came (the demo knows where the stream
  switched), the rolling accuracy before, at the lowest point and after each switch, and what
  to open next (what still works once the broker has stopped);
* ``plot``: the rolling accuracy and the drift alarms over the run, in a self-contained HTML
  page (inline SVG) or an SVG file.

The displays are in :mod:`streamer.display` (an event of a new kind, such as a model
lifecycle decision, is one formatter returning an ``EventLine``), the plot in
:mod:`streamer.plot`.
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from streamer import kafka, synth
from streamer.broker import FAST_GROUP_SETTINGS, EmbeddedBroker
from streamer.decode import JsonEncoder
from streamer.display import (
    WIDTH,
    LiveDisplay,
    LogToDisplay,
    PartitionRow,
    Status,
    drift_line,
    lifecycle_line,
    make_display,
)
from streamer.errors import ConfigError
from streamer.plot import Mark, Plot
from streamer.produce import produce_rows, sample_rows
from streamer.records import DriftEvent
from streamer.settings import Settings, TopicSettings
from streamer.summary import RunSummary, summarize
from streamer.worker import Worker

__all__ = [
    "DEMO_SIGNING_KEY",
    "Demo",
    "Story",
    "Switches",
    "alternating",
    "demo_settings",
    "murmur2_partition",
    "run_demo",
    "summary_lines",
]

log = logging.getLogger(__name__)

# Readable names for streams whose features are numbered. SEA labels a point by x1 + x2 against
# a threshold that the concept changes; its third feature is noise.
_FEATURE_NAMES: dict[str, dict[str, str]] = {"sea": {"0": "x1", "1": "x2", "2": "noise"}}


def _renamer(stream: str) -> Callable[[str], str]:
    names = _FEATURE_NAMES.get(stream, {})
    return lambda k: names.get(k) or (f"x{k}" if k.isdigit() else k)


def alternating(
    name: str, *, seed: int, every: int, bad_every: int = 0
) -> Iterator[dict[str, Any]]:
    """Rows of a named concept stream whose concept switches every ``every`` events.

    Rows ``0 … every - 1`` come from the first concept, the next ``every`` from the second,
    and so on. Numbered features get names (SEA's ``x1``, ``x2``, ``noise``; ``x0``… for the
    others). Every ``bad_every``-th row (if set) has a feature replaced by a string, which the
    worker must dead-letter. Deterministic for a seed.

    Examples
    --------
    >>> rows = list(itertools.islice(alternating("sea", seed=1, every=3, bad_every=4), 5))
    >>> [sorted(r) for r in rows][0]
    ['id', 'label', 'noise', 'x1', 'x2']
    >>> rows[3]["x1"]
    'not a number'
    """
    before, after = synth.CONCEPT_STREAMS[name](seed)
    concepts = [iter(before), iter(after)]
    rename = _renamer(name)
    samples = (
        ({rename(str(k)): v for k, v in x.items()}, y)
        for x, y in (next(concepts[(t // every) % 2]) for t in itertools.count())
    )
    for i, row in enumerate(sample_rows(samples)):
        if bad_every and i % bad_every == bad_every - 1:
            feature = next(k for k in row if k not in ("id", "label"))
            row[feature] = "not a number"
        yield row


#: Signs the demo's checkpoints and model updates when no key is configured. It is public, so
#: it protects nothing: a deployment sets its own (security.signing_key).
DEMO_SIGNING_KEY = "streamer-demo-key-not-a-secret"


def demo_settings(base: Settings, bootstrap_servers: str, partitions: int = 1) -> Settings:
    """The settings the demo runs with: the given ones, pointed at the demo broker, with the
    public demo signing key when none is configured."""
    kafka_settings = base.kafka.model_copy(
        update={
            "bootstrap_servers": bootstrap_servers,
            "consumer": {**FAST_GROUP_SETTINGS, **base.kafka.consumer},
        }
    )
    topics = base.topics.model_copy(update={"partitions": partitions})
    return _with_demo_key(base.model_copy(update={"kafka": kafka_settings, "topics": topics}))


def _with_demo_key(settings: Settings) -> Settings:
    if settings.signing_key() is not None:
        return settings
    security = settings.security.model_copy(update={"signing_key": DEMO_SIGNING_KEY})
    return settings.model_copy(update={"security": security})


# -- where the stream switched -----------------------------------------------------------------


def _murmur2(data: bytes) -> int:
    """Kafka's murmur2 (as the Java client and librdkafka's murmur2 partitioners), unsigned.

    Examples
    --------
    The values of Kafka's own tests, as signed 32-bit integers:

    >>> [h - 2**32 if h >= 2**31 else h for h in map(_murmur2, [b"21", b"foobar"])]
    [-973932308, -790332482]
    """
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail, rest = length & ~3, length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    return h ^ (h >> 15)


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition a keyed record goes to with the ``murmur2_random`` partitioner.

    Examples
    --------
    >>> [murmur2_partition(str(i).encode(), 3) for i in range(8)]
    [2, 0, 2, 2, 1, 0, 1, 0]
    """
    return (_murmur2(key) & 0x7FFFFFFF) % partitions


class Switches:
    """Where the stream's concept switched: row numbers, and offsets in each partition.

    The producer calls :meth:`produced` for every row, in order. Rows are keyed by id and
    partitioned with murmur2, so the offset a row gets in its partition is known without
    asking the broker, as long as the topic started empty (``fresh``).
    """

    def __init__(self, every: int, partitions: int, *, fresh: bool = True) -> None:
        self.every = every
        self.partitions = partitions
        self.fresh = fresh
        self._counts = [0] * partitions
        self._n = 0
        #: Row number of each switch seen so far.
        self.rows: list[int] = []
        #: For each switch, partition -> offset of the first row of the new concept there.
        self.offsets: list[dict[int, int]] = []

    def produced(self, row: Mapping[str, Any]) -> Mapping[str, Any]:
        n = self._n
        self._n += 1
        if n and n % self.every == 0:
            self.offsets.append(dict(enumerate(self._counts)))
            self.rows.append(n)
        key = str(row["id"]).encode()
        self._counts[murmur2_partition(key, self.partitions) if self.partitions > 1 else 0] += 1
        return row

    def in_partition(self, partition: int) -> list[int]:
        """Offsets of the switches in one partition (the first offset of each new concept)."""
        return [o[partition] for o in list(self.offsets) if partition in o]

    def last_before(self, partition: int, offset: int) -> tuple[int, int] | None:
        """(switch number from 1, its offset) of the latest switch at or before ``offset``.

        None before the first switch, and when the offsets are unknown (not ``fresh``).
        """
        if not self.fresh:
            return None
        found = None
        for i, o in enumerate(self.in_partition(partition), 1):
            if o <= offset:
                found = (i, o)
        return found


# -- what the run saw ------------------------------------------------------------------------


@dataclass
class Story:
    """What the demo saw, batch by batch: enough for the summary and the plot.

    ``samples`` holds, per partition, ``(last offset of a batch, rolling metric after it)``
    for the metric the demo follows (``Accuracy`` when configured).
    """

    metric: str
    window: int
    samples: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    drift: list[tuple[float, DriftEvent]] = field(default_factory=list)
    missed_drift: int = 0
    decisions: list[tuple[float, Any]] = field(default_factory=list)
    """Model lifecycle decisions (``streamer.lifecycle.Decision``), with when they came."""

    def sample(self, partition: int, offset: int, value: float) -> None:
        if math.isfinite(value):
            self.samples.setdefault(partition, []).append((offset, value))

    def around(self, partition: int, start: int, end: int | None) -> dict[str, Any]:
        """The metric just before ``start``, at its lowest in ``[start, end)``, and at the end.

        Examples
        --------
        >>> s = Story("Accuracy", 1000)
        >>> for o, v in [(99, 0.9), (199, 0.6), (299, 0.5), (399, 0.8), (499, 0.85)]:
        ...     s.sample(0, o, v)
        >>> s.around(0, 100, 450)
        {'before': (99, 0.9), 'lowest': (299, 0.5), 'after': (399, 0.8)}
        """
        points = self.samples.get(partition, [])
        before = [p for p in points if p[0] < start]
        during = [p for p in points if p[0] >= start and (end is None or p[0] < end)]
        return {
            "before": before[-1] if before else None,
            "lowest": min(during, key=lambda p: p[1]) if during else None,
            "after": during[-1] if during else None,
        }


# -- the demo ----------------------------------------------------------------------------------


class Demo:
    """The demo run: broker, topics, producer thread, worker, display, summary, plot.

    :meth:`stop` is safe to call from a signal handler; :meth:`run` returns the stopped worker
    (its metrics and states stay readable) once everything has stopped in order.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        events: int | None = None,
        rate: float | None = 2000.0,
        stream: str = "sea",
        drift_every: int = 10_000,
        bad_every: int = 5_000,
        seed: int = 7,
        partitions: int = 1,
        out: TextIO | None = None,
        plot: str | None = None,
    ) -> None:
        if drift_every < 1:
            raise ConfigError("--drift-every", f"must be at least 1, got {drift_every}")
        if partitions < 1:
            raise ConfigError("--partitions", f"must be at least 1, got {partitions}")
        self.settings = settings
        self.events = events
        self.rate = rate
        self.stream = stream
        self.drift_every = drift_every
        self.bad_every = bad_every
        self.seed = seed
        self.partitions = partitions
        self.out = out if out is not None else sys.stdout
        self.plot = plot
        self.display = make_display(self.out)
        metrics = settings.evaluation.metrics or ["Accuracy"]
        self.story = Story(
            "Accuracy" if "Accuracy" in metrics else metrics[0], settings.evaluation.window
        )
        self.switches = Switches(drift_every, partitions)
        self.worker: Worker | None = None
        self.produced = 0
        self.metrics_url = ""
        self.broker_address = ""
        self.embedded = False
        self._stop = threading.Event()
        self._first: tuple[float, int] | None = None
        self._rate_from: tuple[float, int] | None = None
        self._drift_seen = 0
        self._counts = {"alarm": 0, "warning": 0, "ok": 0}
        self._sampled: dict[int, int] = {}
        self._last_decision: Any = None

    def stop(self) -> None:
        """Stop producing and let the worker finish its batch (safe from a signal handler)."""
        self._stop.set()
        if self.worker is not None:
            self.worker.stop()

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> Worker:
        routed = self._route_logs()
        try:
            worker = self._run()
            self._finish(worker)
            return worker
        finally:
            self.display.close()
            if routed is not None:
                root = logging.getLogger()
                root.removeHandler(routed[1])
                for h in routed[0]:
                    root.addHandler(h)

    def _run(self) -> Worker:
        """Everything up to the stop, in order: worker, producer, then the broker."""
        from streamer.metrics import Metrics, serve_worker_metrics

        settings, say = self.settings, self.display.message
        broker: EmbeddedBroker | None = None
        server = None
        try:
            servers = settings.kafka.bootstrap_servers
            if not servers:
                broker = EmbeddedBroker().start()
                say(f"embedded broker (Tansu) on {broker.bootstrap_servers}, pid {broker.pid}")
                servers = broker.bootstrap_servers
                self.embedded = True
            # On any broker, the topics the demo creates get --partitions: the switch offsets
            # are computed for that many.
            settings = self.settings = demo_settings(settings, servers, self.partitions)
            self.broker_address = servers
            metrics = Metrics()
            worker = Worker(settings, metrics=metrics, on_batch=self._on_batch)
            self.worker = worker
            if self._stop.is_set():  # Ctrl-C during start-up
                worker.stop()
            created = worker.provision_topics()
            if created:
                say(
                    textwrap.fill(
                        ", ".join(created),
                        WIDTH,
                        initial_indent="created topics: ",
                        break_on_hyphens=False,
                    )
                )
            self.switches.fresh = settings.topics.events in created
            if settings.prometheus.port:
                # Served as `streamer run` serves it: /healthz, /readyz and streamer_ready
                # follow the worker's health.
                server = serve_worker_metrics(worker, settings)
                self.metrics_url = f"http://localhost:{server.port}/metrics"
                say(f"metrics: {self.metrics_url}")
            # Printed now, while the broker is up: none of these works once the demo stops
            # an embedded broker.
            say(_steps("follow it from another shell, while the demo runs", self.follow_along()))
            say(
                f"producing the {self.stream!r} stream, concept switching every "
                f"{self.drift_every:,} events"
                + (f", at {self.rate:,.0f} events/s" if self.rate else "")
                + (f", {self.events:,} events" if self.events else ", until Ctrl-C")
            )
            self._run_loop(worker)
            return worker
        finally:
            self._stop.set()
            if server is not None:
                server.close()
            if broker is not None:
                broker.stop()
                say("broker stopped")

    def _run_loop(self, worker: Worker) -> None:
        sink = kafka.KafkaSink(kafka.make_producer(self.settings.kafka))
        producer_error: list[BaseException] = []

        def produce() -> None:
            try:
                rows = alternating(
                    self.stream, seed=self.seed, every=self.drift_every, bad_every=self.bad_every
                )
                self.produced = produce_rows(
                    (self.switches.produced(r) for r in rows),
                    sink,
                    self.settings.topics.events,
                    JsonEncoder(),
                    rate=self.rate,
                    limit=self.events,
                    should_stop=self._stop.is_set,
                )
                sink.flush()
            except BaseException as exc:  # reported by the main thread
                producer_error.append(exc)
                worker.stop()

        thread = threading.Thread(target=produce, name="demo-producer", daemon=True)
        thread.start()
        try:
            worker.run(max_events=self.events)
        finally:
            # The worker has finished its batch, flushed, committed and closed; now the
            # producer, then (in run) the broker.
            self._stop.set()
            thread.join(timeout=30)
            sink.close()
            # The last table stays where it is; what follows prints below it.
            self.display.close()
            self.display.message(
                f"worker stopped after {worker.processed:,} events; producer stopped after "
                f"{self.produced:,}"
            )
        if producer_error:
            raise producer_error[0]

    def _route_logs(self) -> tuple[list[logging.Handler], logging.Handler] | None:
        if not isinstance(self.display, LiveDisplay):
            return None
        root = logging.getLogger()
        old = list(root.handlers)
        formatter = old[0].formatter if old else None
        handler = LogToDisplay(self.display, formatter)
        for h in old:
            root.removeHandler(h)
        root.addHandler(handler)
        return old, handler

    # -- per batch ----------------------------------------------------------------------------

    def _on_batch(self, worker: Worker) -> None:
        now = time.monotonic()
        if self._first is None:
            # The first batch ends start-up (broker, topics, group join): rates start here.
            self._first = self._rate_from = (now, worker.processed)
        for (_, partition), state in worker.states.items():
            offset = state.next_offset
            if offset is not None and self._sampled.get(partition) != offset:
                self._sampled[partition] = offset
                values = state.champion.evaluation.values()
                value = values.get((self.story.metric, "rolling"), math.nan)
                self.story.sample(partition, offset - 1, value)
        for ev in self._new_drift(worker):
            self._counts[ev.level] = self._counts.get(ev.level, 0) + 1
            self.story.drift.append((now - worker.started, ev))
            switch = self.switches.last_before(ev.partition, ev.current_offsets[1])
            self.display.event(drift_line(ev, self.settings, switch), now - worker.started)
        for decision in self._new_decisions(worker):
            self.story.decisions.append((now - worker.started, decision))
            switch = self.switches.last_before(decision.partition, decision.offset)
            self.display.event(lifecycle_line(decision, switch), now - worker.started)
        final = self.events is not None and worker.processed >= self.events
        if final or self.display.due(now):
            self.display.status(self._status(worker, now), now)

    def _new_drift(self, worker: Worker) -> list[DriftEvent]:
        new = worker.drift_total - self._drift_seen
        self._drift_seen = worker.drift_total
        recent = list(worker.recent_drift)
        if new > len(recent):
            self.story.missed_drift += new - len(recent)
        return recent[-new:] if new > 0 else []

    def _new_decisions(self, worker: Worker) -> list[Any]:
        recent = list(getattr(worker, "recent_decisions", ()))
        last = self._last_decision
        if last is not None:
            # Decisions are appended in order; the new ones follow the last one shown.
            for i in range(len(recent) - 1, -1, -1):
                if recent[i] is last:
                    recent = recent[i + 1 :]
                    break
        if recent:
            self._last_decision = recent[-1]
        return recent

    def _status(self, worker: Worker, now: float) -> Status:
        rate = None
        if self._rate_from is not None and now > self._rate_from[0]:
            t, n = self._rate_from
            if worker.processed > n:
                rate = (worker.processed - n) / (now - t)
                self._rate_from = (now, worker.processed)
        rows = []
        for (_, partition), state in sorted(worker.states.items()):
            values = state.champion.evaluation.values()
            concept = getattr(getattr(state.champion.drift, "concept", None), "state", None)
            rows.append(
                PartitionRow(
                    partition=partition,
                    events=state.events,
                    metrics={m: v for (m, w), v in values.items() if w == "rolling"},
                    concept={0: "stable", 1: "warning", 2: "drift"}.get(concept, "off")
                    if concept is not None
                    else "off",
                    version=state.champion.version,
                )
            )
        return Status(
            elapsed=now - worker.started,
            events=worker.processed,
            rate=rate,
            dead=worker.dead_total,
            alarms=self._counts.get("alarm", 0),
            warnings=self._counts.get("warning", 0),
            cleared=self._counts.get("ok", 0),
            partitions=rows,
            model=self.settings.model.name,
        )

    # -- the end ------------------------------------------------------------------------------

    def _finish(self, worker: Worker) -> None:
        now = time.monotonic()
        summary = summarize(worker)
        steady = None
        if self._first is not None and now > self._first[0]:
            steady = (worker.processed - self._first[1]) / (now - self._first[0])
        written = None
        if self.plot:
            self.make_plot().write(self.plot)
            written = self.plot
        for line in summary_lines(
            summary,
            self.story,
            self.switches,
            self.settings,
            steady_rate=steady,
            next_steps=self.next_steps(written),
        ):
            self.display.message(line)

    def make_plot(self) -> Plot:
        """The run as a :class:`~streamer.plot.Plot`: metric, true switches, drift marks."""
        parts = range(self.switches.partitions)
        marks = []
        for seconds, ev in self.story.drift:
            offset = ev.current_offsets[1]
            switch = self.switches.last_before(ev.partition, offset)
            marks.append(
                Mark(
                    seconds,
                    ev.partition,
                    offset,
                    ev.level,
                    ev.signal,
                    ev.feature,
                    ev.statistic,
                    ev.value,
                    f"{offset - switch[1]:,} after switch {switch[0]}" if switch else "",
                )
            )
        return Plot(
            self.title(),
            self.story.metric,
            self.story.window,
            series=dict(self.story.samples),
            switches={p: self.switches.in_partition(p) for p in parts}
            if self.switches.fresh
            else {},
            marks=marks,
        )

    def title(self) -> str:
        return (
            f"streamer demo: the {self.stream!r} stream, concept switching every "
            f"{self.drift_every:,} events (seed {self.seed})"
        )

    def follow_along(self) -> list[tuple[str, str]]:
        """Commands that follow the run from another shell, while the broker runs.

        ``streamer models`` needs the signing key the demo signs with: the public
        :data:`DEMO_SIGNING_KEY` unless one is configured (then the user has it).
        """
        t, at = self.settings.topics, self.broker_address
        default = TopicSettings()
        steps = []
        if self.metrics_url:
            steps.append(("metrics", f"{self.metrics_url} (and /healthz, /readyz)"))
        outputs = [t.predictions, t.drift_events, t.lifecycle_events, t.dead_letters]
        steps.append(("topics", f"{', '.join(o for o in outputs if o)} (and {t.events})"))
        demo_key = self.settings.security.signing_key == DEMO_SIGNING_KEY
        watch = (
            (f"STREAMER_SECURITY__SIGNING_KEY={DEMO_SIGNING_KEY} " if demo_key else "")
            + f"streamer models watch --from-beginning --bootstrap-servers {at}"
            + (f" --topic {t.model_updates}" if t.model_updates != default.model_updates else "")
            + ("" if demo_key else "  (with your signing key)")
        )
        steps.append(("models", watch))
        steps.append(
            (
                "drift",
                f"streamer report --bootstrap-servers {at}"
                + (f" --topic {t.drift_events}" if t.drift_events != default.drift_events else "")
                + " -o drift.html",
            )
        )
        steps.append(("kcat", f"kcat -C -b {at} -t {t.predictions} -o -5 -e"))
        if self.embedded:
            steps.append(
                ("", "(a kcat on librdkafka 2.0.2, Debian 12's, cannot read the embedded broker:")
            )
            steps.append(("", ' see "Reading the topics" in the README)'))
        return steps

    def next_steps(self, plot: str | None) -> list[tuple[str, str]]:
        """What to open after the run: only what still works once the demo has stopped.

        The embedded broker has stopped with the demo, and its topics with it; on a broker
        of the user's the topics stay, and the commands to read them still work.
        """
        steps = [("the plot", plot if plot else "streamer demo --events 30000 --plot demo.html")]
        if self.embedded:
            steps.append(
                ("your Kafka", "streamer demo --bootstrap-servers HOST:PORT (topics stay)")
            )
        else:
            steps += [s for s in self.follow_along() if s[0] != "metrics"]
        steps += [
            ("a worker", "streamer example-config > streamer.toml  (set kafka.bootstrap_servers)"),
            ("", "python3 -c 'import secrets; print(secrets.token_hex(32))' > signing.key"),
            (
                "",
                "STREAMER_SECURITY__SIGNING_KEY_FILE=$PWD/signing.key "
                "streamer run -c streamer.toml",
            ),
            ("your data", "streamer produce -c streamer.toml --csv data.csv --create-topic"),
        ]
        return steps


def _steps(title: str, steps: Sequence[tuple[str, str]]) -> str:
    """A titled block of ``name   command`` lines."""
    return "\n".join([title, *(f"  {k:<11} {v}" for k, v in steps)])


def summary_lines(
    summary: RunSummary,
    story: Story,
    switches: Switches,
    settings: Settings,
    *,
    steady_rate: float | None = None,
    next_steps: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """The demo's closing summary (lines are never cut: a pipe or a file keeps them whole)."""
    dead = ", ".join(f"{k} {n:,}" for k, n in sorted(summary.dead_letters.items()))
    rate = f", {steady_rate:,.0f} events/s after start-up" if steady_rate else ""
    out = [
        "",
        "summary",
        f"  events        {summary.events:,} in {summary.seconds:.1f} s{rate}",
        f"  predictions   {summary.predictions:,}",
        f"  dead letters  {summary.dead_total:,}" + (f" ({dead})" if dead else ""),
        f"  drift events  alarms {summary.drift_events.get('alarm', 0)}, "
        f"warnings {summary.drift_events.get('warning', 0)}, "
        f"cleared {summary.drift_events.get('ok', 0)} (back under the warning threshold)",
    ]
    alarms = [(t, ev) for t, ev in story.drift if ev.level == "alarm"]
    partitions = sorted({p.partition for p in summary.partitions} | set(story.samples))
    if switches.fresh and switches.offsets:
        out.append(
            f"concept switches, and rolling {story.metric} over {story.window:,} labelled events"
        )
        for p in partitions:
            offsets = switches.in_partition(p)
            concept = [ev for _, ev in alarms if ev.partition == p and ev.signal == "concept"]
            for i, start in enumerate(offsets):
                end = offsets[i + 1] if i + 1 < len(offsets) else None
                found = [
                    o
                    for o in (ev.current_offsets[1] for ev in concept)
                    if o >= start and (end is None or o < end)
                ]
                where = f"p{p} offset {start:,}" if len(partitions) > 1 else f"offset {start:,}"
                if found:
                    seen = f"concept alarm at {found[0]:,}, {found[0] - start:,} events later"
                else:
                    seen = "no concept alarm" + (" yet" if end is None else " before the next")
                out.append(f"  switch {i + 1} at {where}: {seen}")
                a = story.around(p, start, end)
                parts = []
                for key in ("before", "lowest", "after"):
                    point = a[key]
                    if point is not None:
                        parts.append(f"{key} {point[1]:.3f} (at {point[0]:,})")
                if parts:
                    out.append(f"      {story.metric} " + " · ".join(parts))
    elif switches.fresh:
        out.append(f"concept switches: none yet (the stream switches every {switches.every:,})")
    else:
        out.append("concept switches: the events topic held records before this run, so the")
        out.append("  offsets of the switches are unknown (the embedded broker starts empty)")
    out.append(f"drift alarms ({len(alarms)}; offset, and how long after the latest switch)")
    shown = alarms[:20]
    for _, ev in shown:
        switch = switches.last_before(ev.partition, ev.current_offsets[1])
        line = drift_line(ev, settings, switch).text
        if switch is None and switches.fresh:
            line += " · before any switch"
        out.append(f"  {line}")
    if len(alarms) > len(shown):
        out.append(f"  … and {len(alarms) - len(shown)} more (see the drift-events topic)")
    if story.missed_drift:
        out.append(f"  ({story.missed_drift} drift events came too fast to be shown)")
    if story.decisions:
        n = len(story.decisions)
        out.append(f"model lifecycle ({n} decision{'' if n == 1 else 's'})")
        for _, decision in story.decisions[:20]:
            switch = switches.last_before(decision.partition, decision.offset)
            out.append(f"  {lifecycle_line(decision, switch).text}")
        if len(story.decisions) > 20:
            out.append(f"  … and {len(story.decisions) - 20} more (see the lifecycle topic)")
    if summary.partitions:
        out.append("final metrics (running, since the champion started)")
        for part in summary.partitions:
            metrics = "  ".join(f"{k} {v:.4f}" for k, v in part.running.items())
            out.append(f"  p{part.partition}  {metrics}  ·  {part.events:,} events")
    if next_steps:
        out.extend(_steps("open next", next_steps).splitlines())
    return out


def run_demo(settings: Settings, **options: Any) -> Worker:
    """Run the demo (see :class:`Demo` for the options); return the stopped worker."""
    return Demo(settings, **options).run()
