"""The version of streamer, from the installed distribution's metadata.

The distribution is named ``streamer-drift`` (``streamer`` on PyPI is an unrelated project);
the import package and the command are ``streamer``. A source tree that was never installed
(``python -m streamer`` from a plain copy) has no metadata, hence the fallback.
"""

from __future__ import annotations

from importlib import metadata

__all__ = ["DISTRIBUTION", "__version__"]

#: Name of the distribution on PyPI (``pip install streamer-drift``).
DISTRIBUTION = "streamer-drift"

try:
    __version__: str = metadata.version(DISTRIBUTION)
except metadata.PackageNotFoundError:
    __version__ = "0+unknown"
