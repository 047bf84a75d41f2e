"""Defaults of the drift monitors, in one place.

The settings (:mod:`streamer.settings`) take their defaults from here, and so do the
monitors' signatures (:class:`~streamer.drift.window.WindowMonitor`,
:class:`~streamer.drift.concept.ConceptDriftMonitor`), so ``streamer check-config`` prints
the values that apply and the Python API uses the same ones. How they were chosen, with the
benchmarks behind them, is in ``docs/drift.md``. No imports: the settings load this module
at start-up.
"""

from __future__ import annotations

__all__ = [
    "BINS",
    "DETECTOR",
    "EVERY",
    "REFERENCE_SIZE",
    "SCHEMA_THRESHOLDS",
    "TOP_K",
    "WINDOW_SIZE",
    "WINDOW_THRESHOLDS",
]

#: Concept drift detector on the champion's error.
DETECTOR = "DualADWIN"

#: Events in the reference window (``reference = "first"``).
REFERENCE_SIZE = 2000
#: Events in the sliding current window.
WINDOW_SIZE = 1000
#: Window statistics are evaluated every this many events (K).
EVERY = 250
#: Quantile bins of a numeric column.
BINS = 10
#: Categories kept with their own frequency; the others share an ``other`` bucket.
TOP_K = 20

#: Window statistic -> (warning, alarm). A value at or above a threshold reaches that level.
#: PSI uses the industry's 0.1 / 0.25; the other levels come from
#: ``benchmarks/feature_drift_quality.py`` (docs/drift.md): at the default windows no warning
#: or alarm in about a million stationary events, and a 0.5 sd mean shift, a 1.5x spread or a
#: 2% new category alarm within about one window.
WINDOW_THRESHOLDS: dict[str, tuple[float, float]] = {
    "psi": (0.1, 0.25),
    "js": (0.12, 0.15),
    "ks": (0.1, 0.15),
    "missing_rate": (0.05, 0.1),
    "out_of_range_rate": (0.02, 0.05),
    "new_category_rate": (0.005, 0.01),
}

#: Schema statistic -> (warning, alarm) on the share of records of a period.
SCHEMA_THRESHOLDS: dict[str, tuple[float, float]] = {
    "new_field_rate": (0.0, 0.01),
    "missing_rate": (0.0, 0.01),
    "type_changed_rate": (0.0, 0.01),
}
