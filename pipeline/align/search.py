"""Candidates, how each is measured against the API, and the coordinate search over them.

Candidates are ranked by agreement with the API, in this order:

1. per-query Spearman (ranking is what a calibrator cannot fix), then per-query Kendall;
2. Pearson after the best monotone map (isotonic regression of the API on the candidate), so a
   candidate that differs from the API only by a monotone transform is not penalised;
3. raw MAE, then raw max |delta|, as tie-breakers: candidates that differ only by a monotone
   transform are still told apart, and the one that reproduces the API exactly wins.

Rank figures are compared at 4 decimals (closer is noise on a few hundred pairs); MAE and max
|delta| exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.calibration.metrics import MetricValue, agreement, pearson

#: what a candidate may change, in the order the search visits them: one more text.* switch
#: (None: as configured; it changes what the API is sent too), then local config fields
AXES = ("text", "template", "strip_texts", "strip_prompt", "instruction", "max_length", "max_chunks_per_doc", "dtype")


@dataclass
class Measured:
    """One candidate's agreement with the API on a sample."""

    settings: dict[str, Any]
    spearman: MetricValue | None = None
    kendall: MetricValue | None = None
    pearson_monotone: float = float("nan")
    mae: float = float("nan")
    max_delta: float = float("nan")
    error: str | None = None  # a candidate that failed (load, encode) is reported, not fatal
    scores: np.ndarray | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    def rank_key(self) -> tuple:
        """Smaller is better (see the module docstring); failed candidates last. An undefined
        figure (NaN: constant scores, or an isotonic map that is constant) ranks as the worst
        value of its kind, never as a comparison that is always false."""
        if not self.ok:
            return (1, 0.0, 0.0, 0.0, float("inf"), float("inf"))
        return (
            0,
            _worst_if_nan(-round(self.spearman.value, 4), 2.0),
            _worst_if_nan(-round(self.kendall.value, 4), 2.0),
            _worst_if_nan(-round(self.pearson_monotone, 4), 2.0),
            _worst_if_nan(self.mae, float("inf")),
            _worst_if_nan(self.max_delta, float("inf")),
        )

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"settings": {k: plain(v) for k, v in self.settings.items()}}
        if self.error:
            out["error"] = self.error
            return out
        out.update(
            spearman=self.spearman.as_dict(),
            kendall=self.kendall.as_dict(),
            pearson_monotone=_finite_or_none(round(self.pearson_monotone, 6)),
            mae=_finite_or_none(round(self.mae, 8)),
            max_abs_delta=_finite_or_none(round(self.max_delta, 8)),
        )
        return out


def _worst_if_nan(value: float, worst: float) -> float:
    return worst if value != value else value


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: an undefined figure is written as null."""
    import math

    return value if math.isfinite(value) else None


def plain(value: Any) -> Any:
    return getattr(value, "value", value)


def monotone_pearson(local: np.ndarray, api: np.ndarray) -> float:
    """Pearson of the API against the best non-decreasing map of the candidate's scores."""
    from sklearn.isotonic import IsotonicRegression

    if np.ptp(local) == 0 or np.ptp(api) == 0:
        return float("nan")
    fitted = IsotonicRegression(out_of_bounds="clip").fit_transform(local, api)
    return pearson(fitted, api) if np.ptp(fitted) > 0 else float("nan")


def measure(
    settings: dict[str, Any], local: np.ndarray, api: np.ndarray, groups: np.ndarray, *, n_bootstrap: int, seed: int
) -> Measured:
    metrics, _ = agreement(local, api, groups, k=3, n_bootstrap=n_bootstrap, seed=seed)
    delta = np.abs(local - api)
    return Measured(
        settings,
        metrics["spearman"],
        metrics["kendall"],
        monotone_pearson(local, api),
        float(delta.mean()),
        float(delta.max()),
        scores=local,
    )


def coordinate_search(
    start: dict[str, Any],
    axes: dict[str, list[Any]],
    evaluate: Callable[[dict[str, Any]], Measured],
    *,
    max_passes: int,
    good_enough: Callable[[Measured], bool],
    on_result: Callable[[Measured, Measured], None] | None = None,
) -> list[Measured]:
    """Coordinate search. First every single change from ``start`` (one axis at a time, so one
    lucky early move cannot hide a setting that only helps on the starting config), then the
    combination of each axis's best single change; then greedy passes from the best so far: every
    value of one axis with the others fixed, keep the best, next axis, until a pass changes
    nothing (or ``max_passes``). Each distinct candidate is evaluated once; the search stops as
    soon as ``good_enough(best)``.

    The full grid would be the product of the axes (3 templates x 2 x 2 x instructions x lengths
    x 2 dtypes); each phase costs their sum. Returns every evaluated candidate, the start first.
    """
    seen: dict[tuple, Measured] = {}

    def run(settings: dict[str, Any]) -> Measured:
        key = tuple(sorted((k, repr(plain(v))) for k, v in settings.items()))
        if key not in seen:
            seen[key] = evaluate(settings)
            if on_result is not None:
                on_result(seen[key], best_of(seen.values()))
        return seen[key]

    best = run(dict(start))
    best_value: dict[str, Any] = {}
    for axis, values in axes.items():
        ranked = [(run({**start, axis: v}), v) for v in values if not good_enough(best_of(seen.values()))]
        if ranked:
            best_value[axis] = min(ranked, key=lambda mv: mv[0].rank_key())[1]
    best = best_of(seen.values())
    if not good_enough(best) and best_value:
        run({**start, **best_value})
        best = best_of(seen.values())
    for _ in range(max_passes):
        changed = False
        for axis, values in axes.items():
            if good_enough(best):
                return list(seen.values())
            for value in values:
                trial = run({**best.settings, axis: value})
                if trial.rank_key() < best.rank_key():
                    best, changed = trial, True
        if not changed:
            break
    return list(seen.values())


def best_of(results) -> Measured:
    return min(results, key=Measured.rank_key)
