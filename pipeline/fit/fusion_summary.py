"""How much to trust the fusion weights, and what each source adds on held-out queries.

Two figures the report gives for a fused model:

* **weights with intervals**: the exported fusion's weights (same objective and scale) refitted
  on bootstrap resamples of whole queries, its source maps held fixed (``fusion.bootstrap_maps``;
  ``refit`` refits the maps too, at the cost of one full fusion fit per resample); the interval
  says how firmly the data pins each weight down.
* **drop-one contributions**: the held-out figures of the fused model minus those of the same
  configuration without one source, with a paired bootstrap interval over queries. A source
  whose contribution interval covers 0 could be dropped without measurable loss.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from pipeline.calibration.fusion import ScoreCalibrationModel
from pipeline.calibration.fusion_bootstrap import FusionWeightBootstrap
from pipeline.calibration.metrics import MetricValue, PerQuery, paired_difference

#: the figures a contribution is given in
CONTRIBUTION_METRICS = ("spearman", "pearson", "combined")


@dataclass
class FusionSummary:
    objective: str
    objective_scores: dict[str, float]  # held-out combined per objective when objective=auto
    scale: str
    score_types: dict[str, str]
    weights: dict[str, MetricValue]
    contributions: dict[str, dict[str, MetricValue]]  # source -> metric -> fused minus without it

    def as_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "objective_held_out_combined": self.objective_scores,
            "scale": self.scale,
            "score_types": self.score_types,
            "weights": {k: v.as_dict() for k, v in self.weights.items()},
            "drop_one_contribution": {k: {m: v.as_dict() for m, v in c.items()} for k, c in self.contributions.items()},
        }


def query_rows(groups: np.ndarray) -> list[np.ndarray]:
    """Row indices of each query group."""
    order = np.argsort(groups, kind="stable")
    bounds = np.flatnonzero(np.r_[True, groups[order][1:] != groups[order][:-1], True])
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def weight_intervals(
    model: ScoreCalibrationModel,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    n_bootstrap: int,
    confidence: float,
    seed: int,
    maps: str = "fixed",
) -> dict[str, MetricValue]:
    """The fitted fusion weights, each with a percentile interval over ``n_bootstrap`` resamples
    of whole queries: the weights refitted with the source maps held fixed (``maps="fixed"``,
    :mod:`pipeline.calibration.fusion_bootstrap`), or the whole fusion step refitted (``"refit"``,
    same objective and scale; one full fusion fit per resample)."""
    fusion = model.fusion_
    point = dict(zip(model.sources_, (float(w) for w in fusion.weights_)))
    if n_bootstrap == 0:
        return {k: MetricValue(v, float("nan"), float("nan")) for k, v in point.items()}
    n_queries = np.unique(np.asarray(groups)).size
    rng = np.random.default_rng(seed)
    picks = [rng.integers(0, n_queries, size=n_queries) for _ in range(n_bootstrap)]
    if maps == "fixed":
        boot = FusionWeightBootstrap(fusion, X, y, groups)

        def draw(b: int) -> np.ndarray:
            counts = np.bincount(picks[b], minlength=n_queries).astype(np.float64)
            return boot.weights(counts, np.random.default_rng([seed, b]))

    elif maps == "refit":
        rows = query_rows(np.asarray(groups))  # only the full refit slices the table per query
        template = clone(fusion)

        def draw(b: int) -> np.ndarray:
            picked = picks[b]
            index = np.concatenate([rows[q] for q in picked])
            resampled_groups = np.repeat(np.arange(picked.size), [rows[q].size for q in picked])
            return clone(template).fit(X[index], y[index], groups=resampled_groups).weights_

    else:
        raise ValueError(f"maps must be 'fixed' or 'refit', got {maps!r}")
    # numpy releases the GIL in the heavy steps: two threads keep both cores of a laptop busy,
    # and each draw's randomness depends on (seed, b) only, so the result does not depend on them
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        draws = np.vstack([np.atleast_2d(d) for d in pool.map(draw, range(n_bootstrap))])
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha], axis=0)
    return {k: MetricValue(v, float(lo), float(hi)) for (k, v), lo, hi in zip(point.items(), low, high)}


def contributions(
    fused: PerQuery, without: dict[str, PerQuery], *, n_bootstrap: int, confidence: float, seed: int
) -> dict[str, dict[str, MetricValue]]:
    """Per source: held-out figures of the fused model minus those of the model without it."""
    out = {}
    for source, stats in without.items():
        diff = paired_difference(fused, stats, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
        out[source] = {m: diff[m] for m in CONTRIBUTION_METRICS}
    return out
