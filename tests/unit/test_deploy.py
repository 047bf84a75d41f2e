"""The shipped deployment files are valid for the tools that read them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def test_prometheus_config_passes_promtool():
    if shutil.which("promtool") is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is not installed (scripts/test installs prometheus as root)")
        pytest.skip("promtool is not installed")
    result = subprocess.run(
        ["promtool", "check", "config", str(ROOT / "deploy" / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_and_builds_files_that_exist():
    text = (ROOT / "docker-compose.yml").read_text()
    for path in (
        "./deploy/streamer.toml",
        "./deploy/prometheus",
        "./deploy/grafana/provisioning",
        "./deploy/grafana/dashboards",
        "deploy/Dockerfile",
    ):
        assert path in text
        assert (ROOT / path).exists(), path
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for copied in ("pyproject.toml", "requirements.lock", "README.md", "streamer", "schemas"):
        assert (ROOT / copied).exists()
        assert copied in dockerfile
