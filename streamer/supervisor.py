"""``streamer run --workers N``: N worker processes in one consumer group, supervised.

Python runs one model update at a time per process, so a machine with several cores serves
more partitions with more processes. Each child is an ordinary ``streamer run`` (same settings,
same group) with its own index:

* its Prometheus endpoint is on ``prometheus.port + index`` (scrape each, as Prometheus expects
  one target per process; the ``worker`` label tells them apart);
* with ``exactly_once`` its transactional id ends in ``-<index>``.

The supervisor forwards SIGTERM and SIGINT to every child and waits for them to finish their
batch, checkpoint and leave the group. A child that dies on its own (a crash, an OOM kill) is
started again after a short back-off, so its partitions come back; one that finishes (``run
--max-events``) is not. The supervisor exits when every child has, with the first non-zero
status of those it stopped, or 0.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

__all__ = ["supervise"]

log = logging.getLogger(__name__)

# Restarting a crashing child at once would spin: back off, up to a minute.
_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


def _child_preexec() -> None:  # pragma: no cover - runs in the child
    # Its own process group, so a terminal's Ctrl-C reaches the supervisor only (which
    # forwards one orderly SIGTERM); and SIGTERM if the supervisor dies without warning.
    os.setpgrp()
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def supervise(n: int, argv: Sequence[str], *, base_port: int) -> int:
    """Run ``n`` children ``python -m streamer <argv> --worker-index i``; return the status."""
    env = dict(os.environ)
    children: dict[int, subprocess.Popen[bytes]] = {}
    restarts = dict.fromkeys(range(n), 0)
    stopping = False

    def start(i: int) -> None:
        child_env = dict(env)
        if base_port:
            child_env["STREAMER_PROMETHEUS__PORT"] = str(base_port + i)
        children[i] = subprocess.Popen(
            [sys.executable, "-m", "streamer", *argv, "--worker-index", str(i)],
            env=child_env,
            preexec_fn=_child_preexec,
        )
        port = f", metrics on port {base_port + i}" if base_port else ""
        log.info("worker %d started (pid %d%s)", i, children[i].pid, port)

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            log.info("%s: stopping %d workers", signal.Signals(signum).name, len(children))
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for i in range(n):
        start(i)
    status = 0
    due: dict[int, float] = {}
    while children or due:
        time.sleep(0.2)
        for i, child in list(children.items()):
            code = child.poll()
            if code is None:
                continue
            del children[i]
            if stopping or code == 0:  # asked to stop, or done (run --max-events)
                if code != 0:
                    log.error("worker %d exited with status %d", i, code)
                    status = status or code
                continue
            wait = _BACKOFF[min(restarts[i], len(_BACKOFF) - 1)]
            restarts[i] += 1
            log.error("worker %d exited with status %d: restarting it in %.0fs", i, code, wait)
            due[i] = time.monotonic() + wait
        for i, at in list(due.items()):
            if stopping:
                del due[i]
            elif time.monotonic() >= at:
                del due[i]
                start(i)
    return status
