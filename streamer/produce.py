"""Replay a River dataset, a CSV file or a JSONL file into a topic, as JSON or Avro.

This is how users (and the tests) feed the system. Rows get an id when they have none, and are
keyed by it (or by ``key_field``, for keyed streams), so that the default murmur2 partitioner
sends one key to one partition, as a Java producer would.

Examples
--------
>>> rows = list(dataset_rows("Phishing", limit=2))
>>> rows[0]["id"], rows[0]["label"], rows[0]["age_of_domain"]
('0', True, 1)
>>> next(iter(csv_rows(["a,b,label", "1,x,true", "2.5,,0"])))
{'a': 1, 'b': 'x', 'label': True}
"""

from __future__ import annotations

import csv
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from streamer.decode import Encoder
from streamer.errors import StreamerError
from streamer.outputs import Sink

__all__ = ["csv_rows", "dataset_rows", "file_rows", "jsonl_rows", "produce_rows", "sample_rows"]


def sample_rows(
    samples: Iterable[tuple[Mapping[str, Any], Any]],
    *,
    id_field: str = "id",
    label_field: str = "label",
    start: int = 0,
) -> Iterator[dict[str, Any]]:
    """``(x, y)`` pairs to flat rows with a sequential id; feature names become strings."""
    for i, (x, y) in enumerate(samples, start):
        row: dict[str, Any] = {id_field: str(i)}
        row.update((str(k), v) for k, v in x.items())
        if label_field:
            row[label_field] = y
        yield row


def dataset_rows(
    name: str, *, limit: int | None = None, id_field: str = "id", label_field: str = "label"
) -> Iterator[dict[str, Any]]:
    """Rows of a River dataset, by class name (``Phishing``) or ``synth.Name``."""
    from river import datasets

    module: Any = datasets
    attr = name
    if name.startswith("synth."):
        module, attr = datasets.synth, name.removeprefix("synth.")
    cls = getattr(module, attr, None)
    if not isinstance(cls, type):
        raise StreamerError(f"River has no dataset {name!r} (try Phishing, Bananas, TrumpApproval)")
    ds = cls()
    samples: Iterable[Any] = ds if limit is None else itertools.islice(ds, limit)
    return sample_rows(samples, id_field=id_field, label_field=label_field)


def _scalar(text: str) -> Any:
    if text == "":
        return None
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def csv_rows(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """CSV with a header line; numbers and true/false are typed, empty cells are missing."""
    for rec in csv.DictReader(lines):
        yield {k: v for k, v in ((k, _scalar(t)) for k, t in rec.items()) if v is not None}


def jsonl_rows(lines: Iterable[str | bytes]) -> Iterator[dict[str, Any]]:
    """One JSON object per line; blank lines are skipped."""
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise StreamerError(f"line {n} is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise StreamerError(f"line {n} is not a JSON object")
        yield obj


def file_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a .csv or .jsonl/.json file, by extension."""
    p = Path(path)
    if not p.exists():
        raise StreamerError(f"{p} does not exist")
    with p.open(newline="") as f:
        if p.suffix.lower() == ".csv":
            yield from csv_rows(f)
        else:
            yield from jsonl_rows(f)


def produce_rows(
    rows: Iterable[Mapping[str, Any]],
    sink: Sink,
    topic: str,
    encoder: Encoder,
    *,
    id_field: str = "id",
    key_field: str | None = None,
    rate: float | None = None,
    limit: int | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Encode and produce rows; return how many were sent.

    Rows without ``id_field`` get their 0-based position as id. ``rate`` paces sending at
    that many records per second (a rate limit for demos, not a benchmark).
    """
    key_field = key_field or id_field
    started = time.monotonic()
    n = 0
    for row in rows if limit is None else itertools.islice(rows, limit):
        if should_stop():
            break
        if id_field not in row:
            row = {id_field: str(n), **row}
        key = row.get(key_field)
        sink.produce(topic, encoder.encode(row), None if key is None else str(key).encode())
        n += 1
        if rate:
            ahead = n / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    return n
