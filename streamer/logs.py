"""Logging for the command: a level, and text lines for people or JSON lines for machines.

``streamer --log-level LEVEL`` (default INFO), ``-v`` / ``-q`` (repeatable: each moves the level
one step), and ``--log-format text|json``. JSON lines carry ``time`` (UTC, ISO 8601),
``level``, ``logger`` and ``message``, then any extra fields a call passed
(``log.info("…", extra={"partition": 3})``), and ``exception`` when there is one: what log
shippers (Fluent Bit, Vector, Loki's promtail) expect from a container.

Examples
--------
>>> parse_level("warning"), parse_level("INFO", verbose=1), parse_level("INFO", quiet=2)
(30, 10, 40)
>>> parse_level("verbose")
Traceback (most recent call last):
...
streamer.errors.ConfigError: --log-level: unknown level 'verbose'; expected one of DEBUG, INFO, \
WARNING, ERROR, CRITICAL (or -v / -q)
>>> record = logging.makeLogRecord(
...     {"name": "streamer.worker", "levelno": 20, "levelname": "INFO", "msg": "assigned %s",
...      "args": ([0],), "created": 0.0, "partition": 0})
>>> line = JsonFormatter().format(record)
>>> line[:60]
'{"time":"1970-01-01T00:00:00.000Z","level":"INFO","logger":"'
>>> orjson.loads(line)
{'time': '1970-01-01T00:00:00.000Z', 'level': 'INFO', 'logger': 'streamer.worker',
 'message': 'assigned [0]', 'partition': 0}
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from streamer.errors import ConfigError

__all__ = ["FORMATS", "LEVELS", "JsonFormatter", "configure", "parse_level"]

#: Level names accepted by ``--log-level``, most verbose first.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Values of ``--log-format``.
FORMATS = ("text", "json")

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def parse_level(name: str, *, verbose: int = 0, quiet: int = 0) -> int:
    """The numeric level for ``--log-level name`` moved by ``-v`` and ``-q`` counts."""
    upper = str(name).strip().upper()
    if upper not in LEVELS:
        raise ConfigError(
            "--log-level",
            f"unknown level {name!r}; expected one of {', '.join(LEVELS)} (or -v / -q)",
        )
    step = LEVELS.index(upper) - verbose + quiet
    return logging.DEBUG + 10 * min(max(step, 0), len(LEVELS) - 1)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in doc:
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=str).decode()


def configure(level: int, fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Send log records at ``level`` and above to ``stream`` (stderr), as text or JSON lines.

    Replaces the root logger's handlers, so calling it twice does not print lines twice.
    """
    if fmt not in FORMATS:
        raise ConfigError("--log-format", f"unknown format {fmt!r}; expected text or json")
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(_TEXT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
