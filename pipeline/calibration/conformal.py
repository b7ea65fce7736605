"""Per-score intervals of the reference score given the calibrated score: split-conformal by bin.

A calibrated 0.51 can mean "the API would say 0.51 +- 0.01" or "+- 0.2". The residuals
``reference - calibrated`` of the exported configuration's **out-of-fold** predictions (each pair
predicted by a model fitted without its query, so whole queries are held out) are split into
bins of the calibrated score (equal counts, at most :data:`MAX_BINS`, at least
:data:`MIN_PER_BIN` pairs each), and within each bin the split-conformal quantiles are taken for
every stored coverage: the interval ``[score + lower, score + upper]`` holds the reference with
probability at least the coverage for a new pair of the same bin (Mondrian conformal: coverage
holds per bin, so noisy regions get wide intervals and quiet ones narrow intervals).

The result is a small JSON table (``intervals.json`` in the artifact) that
:mod:`pipeline.runtime.intervals` applies with numpy only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline.runtime.intervals import FORMAT

#: coverages stored in the artifact; ``interval(coverage=c)`` uses the smallest stored one >= c
COVERAGES = (0.5, 0.8, 0.9, 0.95, 0.99)
MAX_BINS = 10
MIN_PER_BIN = 200


def conformal_offsets(residuals: np.ndarray, coverage: float) -> tuple[float | None, float | None]:
    """Lower and upper offsets whose interval covers a new residual with probability >= coverage.

    The ``ceil((m + 1)(1 - a/2))``-th smallest residual above and the ``floor((m + 1) a/2)``-th
    below (``a = 1 - coverage``): each tail then misses at most ``a/2`` of exchangeable new
    residuals. ``None`` where ``m`` is too small for that rank (the interval is unbounded there).

    Parameters
    ----------
    residuals : ndarray of shape (m,)
        ``reference - calibrated`` of held-out pairs.
    coverage : float
        In (0, 1).

    Returns
    -------
    lower, upper : float or None
        Offsets added to the calibrated score.
    """
    r = np.sort(np.asarray(residuals, dtype=np.float64))
    m = r.size
    alpha = 1.0 - coverage
    # the ranks of exact arithmetic: 1 - 0.9 is 0.0999...98 in floats, and ceil(20 * 0.95000...01)
    # would be 20, one rank more conservative than the guarantee needs
    hi_rank = math.ceil((m + 1) * (1.0 - alpha / 2.0) - 1e-9)
    lo_rank = math.floor((m + 1) * (alpha / 2.0) + 1e-9)
    upper = float(r[hi_rank - 1]) if 1 <= hi_rank <= m else None
    lower = float(r[lo_rank - 1]) if 1 <= lo_rank <= m else None
    return lower, upper


def fit_intervals(
    predicted: np.ndarray,
    reference: np.ndarray,
    *,
    y_range: tuple[float, float],
    coverages: tuple[float, ...] = COVERAGES,
) -> dict[str, Any]:
    """The intervals table from held-out predictions and the reference.

    Parameters
    ----------
    predicted : ndarray of shape (n,)
        Out-of-fold calibrated scores (whole queries held out).
    reference : ndarray of shape (n,)
        The reference scores of the same pairs.
    y_range : (float, float)
        The reference scale's bounds: intervals are clipped to them.
    coverages : tuple of float
        Coverages to store.

    Returns
    -------
    dict
        The ``intervals.json`` content (:mod:`pipeline.runtime.intervals` describes it).
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    n_bins = max(1, min(MAX_BINS, predicted.size // MIN_PER_BIN))
    edges = np.unique(np.quantile(predicted, np.linspace(0.0, 1.0, n_bins + 1))[1:-1])
    bins = np.searchsorted(edges, predicted, side="right")
    residuals = reference - predicted
    lower, upper, counts = [], [], []
    for b in range(edges.size + 1):
        r = residuals[bins == b]
        counts.append(int(r.size))
        offsets = [conformal_offsets(r, c) for c in coverages]
        lower.append([lo for lo, _ in offsets])
        upper.append([hi for _, hi in offsets])
    return {
        "format": FORMAT,
        "method": "split-conformal per bin of the calibrated score, on out-of-fold residuals (whole queries held out)",
        "edges": [float(e) for e in edges],
        "coverage": [float(c) for c in coverages],
        "lower": lower,
        "upper": upper,
        "counts": counts,
        "y_range": [float(y_range[0]), float(y_range[1])],
    }
