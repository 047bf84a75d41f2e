"""The demo producer of docker-compose.yml: a seeded stream that drifts every ``period`` events.

    python producer.py --bootstrap-servers kafka:29092 --topic events --rate 200 --period 6000

The stream alternates between two regimes, so that drift is raised, cleared and raised again
while the dashboards are watched:

* regime A: features ``f0`` … ``f4`` drawn from N(0, 1), ``cat`` from ``a`` … ``e`` with fixed
  frequencies; the label is a fixed linear function of the features (``w·x > 0``);
* regime B: ``f0``, ``f1`` and ``f2`` shifted by +1.5 and ``cat`` a new category ``z`` a
  quarter of the time (data drift), and the label flipped (concept drift: the model's error
  jumps, then it relearns).

Every ``bad_every``-th record carries a string where ``f0`` should be a number: the worker
dead-letters it. The stream depends only on the seed, so a replay gives the same records.
The end-to-end test (tests/integration/test_observability.py) runs a worker on this stream and
checks that every dashboard and alert query returns data.
"""

from __future__ import annotations

import argparse
import itertools
import random
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

FEATURES = ("f0", "f1", "f2", "f3", "f4")
SHIFTED = ("f0", "f1", "f2")
CATEGORIES = ("a", "b", "c", "d", "e")
WEIGHTS = (0.4, 0.25, 0.15, 0.12, 0.08)


def rows(*, period: int, seed: int = 7, bad_every: int = 0) -> Iterator[dict[str, Any]]:
    """Endless rows ``{"id", "f0" … "f4", "cat", "label"}``; the regime flips every ``period``."""
    rng = random.Random(seed)
    weights = [rng.uniform(-1.0, 1.0) for _ in FEATURES]
    for i in itertools.count():
        drifted = (i // period) % 2 == 1
        x: dict[str, Any] = {}
        for name in FEATURES:
            v = rng.gauss(0.0, 1.0)
            x[name] = v + 1.5 if drifted and name in SHIFTED else v
        if drifted and rng.random() < 0.25:
            x["cat"] = "z"
        else:
            x["cat"] = rng.choices(CATEGORIES, WEIGHTS)[0]
        label = sum(w * x[f] for w, f in zip(weights, FEATURES, strict=True)) > 0
        if bad_every and i % bad_every == bad_every - 1:
            x["f0"] = "not a number"
        yield {"id": str(i), **x, "label": (not label) if drifted else label}


def main(argv: Sequence[str] | None = None) -> int:
    from streamer import kafka
    from streamer.decode import JsonEncoder
    from streamer.produce import produce_rows
    from streamer.settings import KafkaSettings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--bootstrap-servers", required=True)
    p.add_argument("--topic", default="events")
    p.add_argument("--rate", type=float, default=200.0, help="records per second")
    p.add_argument("--period", type=int, default=6000, help="records between regime flips")
    p.add_argument("--bad-every", type=int, default=200, help="every Nth record is malformed")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--limit", type=int, help="stop after this many records (default: never)")
    args = p.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sink = kafka.KafkaSink(
        kafka.make_producer(KafkaSettings(bootstrap_servers=args.bootstrap_servers))
    )
    print(
        f"producing to {args.topic} at {args.rate:g}/s, drifting every {args.period} records",
        file=sys.stderr,
    )
    n = produce_rows(
        rows(period=args.period, seed=args.seed, bad_every=args.bad_every),
        sink,
        args.topic,
        JsonEncoder(),
        rate=args.rate,
        limit=args.limit,
        should_stop=stop.is_set,
    )
    sink.close()
    print(f"produced {n} records", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
