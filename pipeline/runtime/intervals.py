"""Apply the per-score intervals of an artifact (``intervals.json``), with numpy only.

Layout (``format`` = ``score-intervals/v1``, written by :mod:`pipeline.calibration.conformal`)::

    {"format": "score-intervals/v1",
     "edges": [e_1, ..., e_(B-1)],          # bin b holds calibrated scores in [e_b, e_(b+1))
     "coverage": [c_1, ..., c_C],           # increasing
     "lower": [[...C offsets...] x B],      # null: unbounded below (too few pairs for that rank)
     "upper": [[...] x B],
     "counts": [...B...], "y_range": [lo, hi], "method": "..."}

The interval of a calibrated score ``s`` in bin ``b`` at coverage ``c_j`` is
``[s + lower[b][j], s + upper[b][j]]``, clipped to ``y_range``; an unbounded side is the range's
end. A coverage between stored ones uses the next stored one up (never less than asked).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pipeline.core.errors import PipelineError

FORMAT = "score-intervals/v1"


class IntervalError(PipelineError, ValueError):
    """An intervals table that cannot be used, or a coverage it does not hold."""


def compile_intervals(spec: Mapping[str, Any]) -> IntervalTable:
    """Validate an intervals table and return ``apply(calibrated, coverage) -> (lower, upper)``.

    Parameters
    ----------
    spec : Mapping
        The parsed ``intervals.json``.

    Returns
    -------
    IntervalTable
        Called with calibrated scores (n,) and a coverage in (0, 1), returns two (n,) arrays.

    Raises
    ------
    IntervalError
        When the table is malformed (format, shapes, order, non-finite offsets, an inverted
        interval).
    """
    if spec.get("format") != FORMAT:
        raise IntervalError(f"unknown intervals format {spec.get('format')!r}; this reader knows {FORMAT}")
    try:
        edges = np.asarray(spec["edges"], dtype=np.float64)
        coverage = np.asarray(spec["coverage"], dtype=np.float64)
        lower = np.asarray(spec["lower"], dtype=np.float64)  # null (unbounded) reads as NaN
        upper = np.asarray(spec["upper"], dtype=np.float64)
        lo, hi = (float(v) for v in spec["y_range"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IntervalError(f"malformed intervals table: {exc}") from None
    if edges.ndim != 1 or coverage.ndim != 1:
        raise IntervalError("intervals: edges and coverage must be flat lists")
    n_bins = edges.size + 1
    if lower.shape != (n_bins, coverage.size) or upper.shape != (n_bins, coverage.size):
        raise IntervalError(f"intervals: lower/upper must be {n_bins} x {coverage.size} (bins x coverages)")
    if np.any(np.diff(edges) <= 0) or np.any(np.diff(coverage) <= 0) or not np.all((coverage > 0) & (coverage < 1)):
        raise IntervalError("intervals: edges and coverages must be increasing, coverages within (0, 1)")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise IntervalError(f"intervals: y_range [{lo}, {hi}] is not a range")
    lower = np.where(np.isnan(lower), -np.inf, lower)
    upper = np.where(np.isnan(upper), np.inf, upper)
    if np.any(lower > upper) or np.any(np.isinf(lower) & (lower > 0)) or np.any(np.isinf(upper) & (upper < 0)):
        raise IntervalError("intervals: a lower offset lies above its upper offset")

    return IntervalTable(edges, coverage, lower, upper, (lo, hi))


class IntervalTable:
    """A validated intervals table: ``table(calibrated, coverage) -> (lower, upper)``."""

    def __init__(
        self,
        edges: np.ndarray,
        coverage: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        y_range: tuple[float, float],
    ) -> None:
        self.edges, self._coverage, self.lower, self.upper, self.y_range = edges, coverage, lower, upper, y_range

    @property
    def coverages(self) -> tuple[float, ...]:
        """The stored coverages, increasing."""
        return tuple(float(c) for c in self._coverage)

    def level(self, coverage: float) -> float:
        """The stored coverage a request for ``coverage`` uses: the next one up (never less)."""
        return float(self._coverage[self._column(coverage)])

    def _column(self, coverage: float) -> int:
        level = float(coverage)
        if not 0.0 < level < 1.0:
            raise IntervalError(f"coverage must lie in (0, 1), got {level:g}")
        j = int(np.searchsorted(self._coverage, level - 1e-12))
        if j >= self._coverage.size:
            raise IntervalError(
                f"coverage {level:g} is above the largest this artifact holds ({self._coverage[-1]:g}); "
                f"it holds {', '.join(f'{c:g}' for c in self._coverage)}"
            )
        return j

    def __call__(self, calibrated: np.ndarray, coverage: float) -> tuple[np.ndarray, np.ndarray]:
        j = self._column(coverage)
        lo, hi = self.y_range
        s = np.asarray(calibrated, dtype=np.float64)
        b = np.searchsorted(self.edges, s, side="right")
        low = np.minimum(np.maximum(s + self.lower[b, j], lo), hi)
        high = np.minimum(np.maximum(s + self.upper[b, j], lo), hi)
        return low, high
