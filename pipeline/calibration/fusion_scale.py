"""Per-source scales for fusion: where a weighted sum of two scores means something.

A weighted sum only fuses evidence when every source is roughly linear in the relevance they
all measure. Probabilities are not: 0.99 -> 0.999 is a large step of evidence, 0.50 -> 0.51 a
small one, and a cosine similarity or an unbounded logit have shapes of their own. Fusing on the
raw scale therefore rewards whichever source already has the reference's *curve*, not the one
that orders documents best. ``fusion.scale`` chooses the scale (one :class:`SourceScale` per
source):

* ``calibrated`` (default): each source is mapped, by its own monotone curve fitted on the
  training rows, onto the reference's linear scale (the logit of the reference when the
  reference is a probability, else the reference itself). The curve is isotonic regression of
  that target on the source, with one knot at the mid-point of each isotonic block, so it is
  strictly increasing inside the data and creates no ties (plain isotonic steps would); it is
  extended linearly to the smallest and largest training score and constant beyond them. Under
  the textbook model (scores = monotone transforms of one latent relevance plus noise) this
  recovers each source's ``latent + noise`` up to an affine map, which is where equal-noise
  sources deserve equal weights.
* ``type``: the logit of probability sources, other score types unchanged.
* ``raw``: unchanged (the fusion of earlier releases).

Score types (``probability``, ``logit``, ``cosine``, ``unbounded``) come from the table's
sidecar, else ``data.score_types``, else they are inferred: all values in [0, 1] means
probability (see :func:`resolve_score_types`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted

from pipeline.runtime.spec import compile_input_map

SCORE_TYPES = ("probability", "logit", "cosine", "unbounded")
SCALES = ("calibrated", "type", "raw")
#: probabilities are clipped to [eps, 1 - eps] before the logit (|logit| <= 13.8)
LOGIT_EPS = 1e-6
#: a calibrated-scale curve keeps at most this many knots (at quantiles of the training scores):
#: bounded size and lookup cost at inference, still far finer than the noise it was fitted on
MAX_KNOTS = 128


def logit(p: np.ndarray, eps: float = LOGIT_EPS) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(q / (1.0 - q))


def infer_score_type(values: np.ndarray) -> str:
    """``probability`` when every value lies in [0, 1], else ``unbounded``."""
    values = np.asarray(values, dtype=np.float64)
    return "probability" if values.size and values.min() >= 0.0 and values.max() <= 1.0 else "unbounded"


def resolve_score_types(columns: list[str], values: dict[str, np.ndarray], sidecar: dict[str, Any],
                        configured: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The score type of each column: sidecar first, then ``data.score_types``, then inferred.

    Returns ``(types, notes)``; a note says which types were inferred and how to set them. A
    configured type that contradicts the data (probability outside [0, 1]) or the sidecar is an
    error, never silently ignored.
    """
    types: dict[str, str] = {}
    inferred: list[str] = []
    sources = (sidecar or {}).get("sources") or {}
    for col in columns:
        recorded = (sources.get(col) or {}).get("score_type")
        if recorded and configured.get(col) not in (None, recorded):
            raise ValueError(f"data.score_types.{col}={configured[col]} contradicts the table's sidecar, which records "
                             f"{recorded} (written by collect from the scorer); remove the setting")
        declared = recorded or configured.get(col)
        if declared is None:
            types[col] = infer_score_type(values[col])
            inferred.append(f"{col}={types[col]}")
            continue
        if declared not in SCORE_TYPES:
            raise ValueError(f"score type of '{col}' is {declared!r}; known: {', '.join(SCORE_TYPES)}")
        if declared == "probability" and infer_score_type(values[col]) != "probability":
            raise ValueError(f"'{col}' is declared a probability but has values outside [0, 1] "
                             f"([{values[col].min():g}, {values[col].max():g}]); fix data.score_types.{col}")
        types[col] = declared
    notes = []
    if inferred:
        notes.append(f"score types inferred from the values (all in [0, 1] = probability): {', '.join(inferred)}; "
                     "set data.score_types.<column> to override")
    return types, notes


def target_scale(y: np.ndarray, target_type: str) -> np.ndarray:
    """The reference on its linear scale: logit of probabilities, else unchanged."""
    return logit(y) if target_type == "probability" else np.asarray(y, dtype=np.float64)


def midpoint_knots(x: np.ndarray, t: np.ndarray, max_knots: int = MAX_KNOTS) -> tuple[np.ndarray, np.ndarray]:
    """Knots of a strictly increasing piecewise-linear fit of ``t`` on ``x``.

    Isotonic regression, then one knot per block at (mean x of the block, block value); the
    first and last segments are extended linearly to ``min(x)`` and ``max(x)``. One block (no
    increasing relation) gives a single knot: a constant map. More than ``max_knots`` knots are
    resampled at quantiles of ``x`` (min and max included), which keeps the curve strictly
    increasing.
    """
    order = np.argsort(x, kind="stable")
    xs = x[order]
    fitted = IsotonicRegression(increasing=True).fit_transform(xs, t[order])
    start = np.r_[True, fitted[1:] != fitted[:-1]]
    block = np.cumsum(start) - 1
    kx = np.bincount(block, weights=xs) / np.bincount(block)
    ky = fitted[start]
    if kx.size >= 2:
        lo, hi = float(xs[0]), float(xs[-1])
        if lo < kx[0]:
            slope = (ky[1] - ky[0]) / (kx[1] - kx[0])
            kx, ky = np.r_[lo, kx], np.r_[ky[0] - slope * (kx[0] - lo), ky]
        if hi > kx[-1]:
            slope = (ky[-1] - ky[-2]) / (kx[-1] - kx[-2])
            kx, ky = np.r_[kx, hi], np.r_[ky, ky[-1] + slope * (hi - kx[-1])]
    if kx.size > max_knots:
        grid = np.unique(np.quantile(xs, np.linspace(0.0, 1.0, max_knots)))
        kx, ky = grid, np.interp(grid, kx, ky)
    return kx, ky


class SourceScale(TransformerMixin, BaseEstimator):
    """The map of one source onto its fusion scale (see the module docstring).

    Parameters
    ----------
    scale : {"calibrated", "type", "raw"}
    score_type : one of :data:`SCORE_TYPES`
        Used by ``scale="type"`` (probability -> logit).

    ``fit(x, t)`` takes the source's scores and the reference on its linear scale
    (:func:`target_scale`); only ``calibrated`` uses ``t``.
    """

    def __init__(self, scale: str = "calibrated", score_type: str = "unbounded"):
        self.scale = scale
        self.score_type = score_type

    def fit(self, x, t=None):
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        x = np.asarray(x, dtype=np.float64)
        if self.scale == "calibrated":
            if t is None:
                raise ValueError("scale='calibrated' needs the reference to fit each source's curve")
            kx, ky = midpoint_knots(x, np.asarray(t, dtype=np.float64))
            self.spec_ = {"map": "knots", "x": [float(v) for v in kx], "y": [float(v) for v in ky]}
        elif self.scale == "type" and self.score_type == "probability":
            self.spec_ = {"map": "logit", "eps": LOGIT_EPS}
        else:
            self.spec_ = {"map": "identity"}
        return self

    def to_spec(self) -> dict[str, Any]:
        check_is_fitted(self)
        return dict(self.spec_)

    def transform(self, x) -> np.ndarray:
        check_is_fitted(self)
        return compile_input_map(self.spec_)(np.asarray(x, dtype=np.float64))
