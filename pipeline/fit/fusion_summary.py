"""How much to trust the fusion weights, and what each source adds on held-out queries.

Two figures the report gives for a fused model:

* **weights with intervals**: the exported fusion step (scale maps and weights, with the
  objective it chose) refitted on bootstrap resamples of whole queries; the interval says how
  firmly the data pins each weight down.
* **drop-one contributions**: the held-out figures of the fused model minus those of the same
  configuration without one source, with a paired bootstrap interval over queries. A source
  whose contribution interval covers 0 could be dropped without measurable loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import clone

from pipeline.calibration.fusion import ScoreCalibrationModel
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
) -> dict[str, MetricValue]:
    """The fitted fusion weights, each with a percentile interval from refitting the fusion step
    (same objective and scale) on ``n_bootstrap`` resamples of whole queries."""
    fusion = model.fusion_
    point = dict(zip(model.sources_, (float(w) for w in fusion.weights_)))
    if n_bootstrap == 0:
        return {k: MetricValue(v, float("nan"), float("nan")) for k, v in point.items()}
    rows = query_rows(np.asarray(groups))
    rng = np.random.default_rng(seed)
    template = clone(fusion)
    draws = np.empty((n_bootstrap, len(point)))
    for b in range(n_bootstrap):
        picked = rng.integers(0, len(rows), size=len(rows))
        index = np.concatenate([rows[q] for q in picked])
        resampled_groups = np.repeat(np.arange(picked.size), [rows[q].size for q in picked])
        draws[b] = clone(template).fit(X[index], y[index], groups=resampled_groups).weights_
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
