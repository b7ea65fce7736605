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

__all__ = [
    "LOGIT_EPS",
    "MAX_KNOTS",
    "SCALES",
    "SCORE_TYPES",
    "SourceScale",
    "infer_score_type",
    "logit",
    "midpoint_knots",
    "resolve_score_types",
    "target_scale",
]

SCORE_TYPES = ("probability", "logit", "cosine", "unbounded")
SCALES = ("calibrated", "type", "raw")
#: probabilities are clipped to [eps, 1 - eps] before the logit (|logit| <= 13.8)
LOGIT_EPS = 1e-6
#: a calibrated-scale curve keeps at most this many knots (at quantiles of the training scores):
#: bounded size and lookup cost at inference, still far finer than the noise it was fitted on
MAX_KNOTS = 128


def logit(p: np.ndarray, eps: float = LOGIT_EPS) -> np.ndarray:
    """Take the log-odds of probabilities, clipped so that 0 and 1 stay finite.

    Parameters
    ----------
    p : array-like
        Probabilities.
    eps : float, default=LOGIT_EPS
        Clip to ``[eps, 1 - eps]`` first; a reranker's 0.0 or 1.0 would otherwise become an
        infinite score that dominates any weighted sum.

    Returns
    -------
    ndarray
        ``log(q / (1 - q))`` with ``q = clip(p, eps, 1 - eps)``, as float64.
    """
    q = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(q / (1.0 - q))


def infer_score_type(values: np.ndarray) -> str:
    """Guess a column's score type from its values: ``probability`` when all lie in [0, 1].

    A guess, hence the fallback of :func:`resolve_score_types` only: a cosine column that
    happens to be non-negative would be taken for a probability.

    Parameters
    ----------
    values : array-like
        The column's scores.

    Returns
    -------
    str
        ``"probability"`` when every value lies in [0, 1] (and there is one), else
        ``"unbounded"``.
    """
    values = np.asarray(values, dtype=np.float64)
    return "probability" if values.size and values.min() >= 0.0 and values.max() <= 1.0 else "unbounded"


def resolve_score_types(
    columns: list[str], values: dict[str, np.ndarray], sidecar: dict[str, Any], configured: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Decide the score type of each column: sidecar first, then ``data.score_types``, then inferred.

    A configured type that contradicts the data (probability outside [0, 1]) or the sidecar is an
    error, never silently ignored: the fusion scale of a source depends on it.

    Parameters
    ----------
    columns : list of str
        The columns to type.
    values : dict of str to ndarray
        Each column's scores (for inference and the probability check).
    sidecar : dict
        The table's sidecar; ``sidecar["sources"][col]["score_type"]`` is what collect recorded
        from the scorer.
    configured : dict of str to str
        ``data.score_types`` of the config.

    Returns
    -------
    types : dict of str to str
        Score type per column, each one of :data:`SCORE_TYPES`.
    notes : list of str
        Says which types were inferred and how to set them; empty when none was.

    Raises
    ------
    ValueError
        When a configured type contradicts the sidecar, is unknown, or declares a probability
        column with values outside [0, 1].
    """
    types: dict[str, str] = {}
    inferred: list[str] = []
    sources = (sidecar or {}).get("sources") or {}
    for col in columns:
        recorded = (sources.get(col) or {}).get("score_type")
        if recorded and configured.get(col) not in (None, recorded):
            raise ValueError(
                f"data.score_types.{col}={configured[col]} contradicts the table's sidecar, which records "
                f"{recorded} (written by collect from the scorer); remove the setting"
            )
        declared = recorded or configured.get(col)
        if declared is None:
            types[col] = infer_score_type(values[col])
            inferred.append(f"{col}={types[col]}")
            continue
        if declared not in SCORE_TYPES:
            raise ValueError(f"score type of '{col}' is {declared!r}; known: {', '.join(SCORE_TYPES)}")
        if declared == "probability" and infer_score_type(values[col]) != "probability":
            raise ValueError(
                f"'{col}' is declared a probability but has values outside [0, 1] "
                f"([{values[col].min():g}, {values[col].max():g}]); fix data.score_types.{col}"
            )
        types[col] = declared
    notes = []
    if inferred:
        notes.append(
            f"score types inferred from the values (all in [0, 1] = probability): {', '.join(inferred)}; "
            "set data.score_types.<column> to override"
        )
    return types, notes


def target_scale(y: np.ndarray, target_type: str) -> np.ndarray:
    """Put the reference on its linear scale: logit of probabilities, else unchanged.

    The fusion's per-source curves are fitted against this scale, on which a weighted sum of
    evidence is meaningful (see the module docstring).

    Parameters
    ----------
    y : array-like
        Reference scores.
    target_type : str
        The reference's score type, one of :data:`SCORE_TYPES`.

    Returns
    -------
    ndarray
        ``logit(y)`` for ``"probability"``, else ``y`` as float64.
    """
    return logit(y) if target_type == "probability" else np.asarray(y, dtype=np.float64)


def midpoint_knots(x: np.ndarray, t: np.ndarray, max_knots: int = MAX_KNOTS) -> tuple[np.ndarray, np.ndarray]:
    """Fit the knots of a strictly increasing piecewise-linear map of ``t`` on ``x``.

    Isotonic regression, then one knot per block at (mean x of the block, block value); the
    first and last segments are extended linearly to ``min(x)`` and ``max(x)``. One block (no
    increasing relation) gives a single knot: a constant map. More than ``max_knots`` knots are
    resampled at quantiles of ``x`` (min and max included), which keeps the curve strictly
    increasing. Mid-points rather than isotonic steps, because steps would tie documents the
    source tells apart.

    Parameters
    ----------
    x : ndarray of shape (n_samples,)
        The source's scores.
    t : ndarray of shape (n_samples,)
        The reference on its linear scale (:func:`target_scale`).
    max_knots : int, default=MAX_KNOTS
        Most knots kept, bounding the artifact's size and the lookup cost.

    Returns
    -------
    kx : ndarray
        Knot positions, strictly increasing.
    ky : ndarray
        Knot values, non-decreasing.
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
    """Map one source onto its fusion scale (see the module docstring).

    ``fit(x, t)`` takes the source's scores and the reference on its linear scale
    (:func:`target_scale`); only ``calibrated`` uses ``t``.

    Parameters
    ----------
    scale : {"calibrated", "type", "raw"}, default="calibrated"
        Which map, one of :data:`SCALES`.
    score_type : {"probability", "logit", "cosine", "unbounded"}, default="unbounded"
        The source's score type; used by ``scale="type"`` (probability -> logit).

    Attributes
    ----------
    spec_ : dict
        The fitted map as a spec entry (``{"map": "identity" | "logit" | "knots", ...}``).
    """

    def __init__(self, scale: str = "calibrated", score_type: str = "unbounded"):
        self.scale = scale
        self.score_type = score_type

    def fit(self, x, t=None):
        """Fit the map: the source's own monotone curve for ``calibrated``, nothing otherwise.

        Parameters
        ----------
        x : array-like of shape (n_samples,)
            The source's scores.
        t : array-like of shape (n_samples,), optional
            The reference on its linear scale; required by ``scale="calibrated"``.

        Returns
        -------
        self : object
            The fitted map.

        Raises
        ------
        ValueError
            For an unknown ``scale``, or ``calibrated`` without ``t``.
        """
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
        """Describe the fitted map for the ``mapped_linear`` fusion spec.

        Returns
        -------
        dict
            A copy of ``spec_``, so the caller cannot change the fitted map.
        """
        check_is_fitted(self)
        return dict(self.spec_)

    def transform(self, x) -> np.ndarray:
        """Apply the map with the code inference runs (:func:`pipeline.runtime.spec.compile_input_map`).

        Parameters
        ----------
        x : array-like of shape (n_samples,)
            The source's scores.

        Returns
        -------
        ndarray of shape (n_samples,)
            The scores on the fusion scale.
        """
        check_is_fitted(self)
        return compile_input_map(self.spec_)(np.asarray(x, dtype=np.float64))
