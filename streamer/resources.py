"""Files shipped inside the package: the Avro schemas and the example settings.

They live in ``streamer/schemas/`` and ``streamer/examples/`` so that every install (a wheel,
a Docker image) carries them and the code loads them from one place. In a checkout the
top-level ``schemas/`` folder and ``deploy/streamer.toml`` are links to these files.

Examples
--------
>>> load_avsc("prediction")["name"]
'Prediction'
>>> "[drift.windows]" in example_settings()
True
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = ["SCHEMAS", "example_settings", "example_settings_path", "load_avsc", "schema_path"]

#: The schemas shipped: outputs (``prediction``, ``drift_event``, ``lifecycle_event``,
#: ``model_update``) and an input example (``phishing``).
SCHEMAS = ("drift_event", "lifecycle_event", "model_update", "phishing", "prediction")


def _file(*parts: str) -> Path:
    # Installed packages are directories (wheels are unpacked), so a Traversable is a path.
    return Path(str(resources.files("streamer").joinpath(*parts)))


def schema_path(name: str) -> Path:
    """Path of a shipped ``.avsc`` file, by name (``prediction``, ``drift_event``…)."""
    if name not in SCHEMAS:
        raise ValueError(f"no shipped schema {name!r}; shipped: {', '.join(SCHEMAS)}")
    return _file("schemas", f"{name}.avsc")


def load_avsc(name: str) -> dict[str, Any]:
    """A shipped Avro schema as plain JSON data (unparsed)."""
    data: dict[str, Any] = json.loads(schema_path(name).read_text(encoding="utf-8"))
    return data


def example_settings_path() -> Path:
    """Path of the complete, commented example settings file."""
    return _file("examples", "streamer.toml")


def example_settings() -> str:
    """The complete, commented example settings (``streamer example-config`` prints it)."""
    return example_settings_path().read_text(encoding="utf-8")
