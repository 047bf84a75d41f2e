"""The wheel: its name, its dependencies, and the files the code loads at run time."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from streamer.resources import SCHEMAS

ROOT = Path(__file__).parents[2]


def test_the_wheel_ships_the_schemas_and_the_example_settings(tmp_path):
    # Build from a copy, so that the build leaves nothing in the checkout.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT / "streamer", src / "streamer", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(src)],
        check=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.startswith("streamer_drift-")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for schema in SCHEMAS:
            path = f"streamer/schemas/{schema}.avsc"
            assert path in names
            # The files a checkout shows under schemas/ are the ones installed.
            assert z.read(path) == (ROOT / "schemas" / f"{schema}.avsc").read_bytes()
        assert (
            z.read("streamer/examples/streamer.toml")
            == (ROOT / "deploy" / "streamer.toml").read_bytes()
        )
        assert "streamer/py.typed" in names
        (meta,) = (n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(z.read(meta))
        (entry_points,) = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = z.read(entry_points).decode()
        z.extractall(tmp_path / "site")
    assert metadata["Name"] == "streamer-drift"
    requires = [r.split(";")[0].strip() for r in metadata.get_all("Requires-Dist")]
    assert any(r.startswith("numpy") for r in requires)
    assert "streamer = streamer.cli:main" in scripts

    # Installed, away from the checkout, the package finds its files and its version.
    site = tmp_path / "site"
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import streamer, streamer.outputs as o, streamer.resources as r\n"
            "print(streamer.__file__)\n"
            "print(streamer.__version__)\n"
            "print(o.PREDICTION_SCHEMA['name'], o.DRIFT_EVENT_SCHEMA['name'])\n"
            "print(r.example_settings_path())",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    where, version, schemas, example = probe.stdout.splitlines()
    assert Path(where).is_relative_to(site)
    assert version == metadata["Version"]
    assert schemas == "Prediction DriftEvent"
    assert Path(example).is_relative_to(site) and Path(example).is_file()
