"""Fusion of several local score sources into one score, and the full calibration model.

A monotone calibrator cannot change the order of documents within a query, so rank agreement
can only move when several sources are combined. :class:`NonNegativeFusion` standardises each
source and fits non-negative weights against the target with ``LinearRegression(positive=True)``
(non-negative so that no source is used "backwards"); weights are normalised to sum to 1 and the
fused score is then calibrated. With ``center="query"`` the weights are fitted on within-query
deviations (source and target minus their query means), which is what per-query ranking sees.

:class:`ScoreCalibrationModel` = optional fusion + calibrator: the object written to
``calibrator.joblib`` and described, pickle-free, by its ``to_spec()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.linear_model import LinearRegression
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted

from pipeline.calibrators import calibrator_fit_params
from pipeline.spec import FORMAT, compile_fusion


def _center_by_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(groups, return_inverse=True)
    counts = np.bincount(inverse).astype(np.float64)
    if values.ndim == 1:
        return values - (np.bincount(inverse, weights=values) / counts)[inverse]
    means = np.stack([np.bincount(inverse, weights=values[:, j]) for j in range(values.shape[1])], axis=1)
    return values - (means / counts[:, None])[inverse]


class NonNegativeFusion(TransformerMixin, BaseEstimator):
    """Standardise k sources and combine them with non-negative weights that sum to 1.

    Parameters
    ----------
    center : {"none", "query"}, default="none"
        Fit weights on raw standardised values, or on within-query deviations (needs groups).

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (k,)
    weights_ : ndarray of shape (k,)
        Non-negative, sum to 1. Equal weights when the fit put zero weight everywhere
        (``degenerate_`` is then True).
    """

    def __init__(self, center: str = "none"):
        self.center = center

    def fit(self, X, y, groups=None):
        X = check_array(X, dtype=np.float64)
        y = check_array(y, dtype=np.float64, ensure_2d=False)
        check_consistent_length(X, y)
        if self.center not in {"none", "query"}:
            raise ValueError(f"center must be 'none' or 'query', got {self.center!r}")
        if self.center == "query" and groups is None:
            raise ValueError("center='query' needs the query groups")
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Z = (X - self.mean_) / self.scale_
        target = y
        if self.center == "query":
            groups = np.asarray(groups)
            Z, target = _center_by_group(Z, groups), _center_by_group(y, groups)
        coef = LinearRegression(positive=True).fit(Z, target).coef_
        total = float(coef.sum())
        self.degenerate_ = not total > 0
        self.weights_ = np.full(X.shape[1], 1.0 / X.shape[1]) if self.degenerate_ else coef / total
        return self

    def to_spec(self) -> dict[str, Any]:
        check_is_fitted(self)
        return {
            "kind": "nonneg_linear",
            "mean": [float(v) for v in self.mean_],
            "scale": [float(v) for v in self.scale_],
            "weights": [float(v) for v in self.weights_],
        }

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = check_array(X, dtype=np.float64)
        return compile_fusion(self.to_spec(), self.n_features_in_)(X)


class ScoreCalibrationModel(RegressorMixin, BaseEstimator):
    """Optional fusion followed by a monotone calibrator; predicts the reference scale.

    Parameters
    ----------
    calibrator : estimator from :mod:`pipeline.calibrators`
    fusion : NonNegativeFusion or None
        Required when X has more than one column.
    sources : list of str or None
        Column names, in X's column order; recorded in the spec.
    """

    def __init__(self, calibrator, fusion=None, sources=None):
        self.calibrator = calibrator
        self.fusion = fusion
        self.sources = sources

    def fit(self, X, y, groups=None):
        X = check_array(X, dtype=np.float64, ensure_2d=False)
        if X.ndim == 1:
            X = X[:, None]
        k = X.shape[1]
        if k > 1 and self.fusion is None:
            raise ValueError(f"{k} sources need a fusion step (fusion.method=nonneg_linear)")
        self.n_features_in_ = k
        self.sources_ = list(self.sources) if self.sources is not None else [f"source_{i}" for i in range(k)]
        if len(self.sources_) != k:
            raise ValueError(f"{len(self.sources_)} source names for {k} columns")
        if k > 1:
            self.fusion_ = clone(self.fusion).fit(X, y, groups=groups)
            fused = self.fusion_.transform(X)
        else:
            self.fusion_ = None
            fused = X[:, 0]
        self.calibrator_ = clone(self.calibrator).fit(fused, y, **calibrator_fit_params(self.calibrator, groups))
        return self

    def fused(self, X) -> np.ndarray:
        """The pre-calibration score (the single source itself when there is no fusion)."""
        check_is_fitted(self)
        X = check_array(X, dtype=np.float64, ensure_2d=False)
        if X.ndim == 1:
            X = X[:, None]
        return X[:, 0] if self.fusion_ is None else self.fusion_.transform(X)

    def predict(self, X) -> np.ndarray:
        return self.calibrator_.predict(self.fused(X))

    def to_spec(self) -> dict[str, Any]:
        check_is_fitted(self)
        return {
            "format": FORMAT,
            "sources": self.sources_,
            "fusion": None if self.fusion_ is None else self.fusion_.to_spec(),
            "calibrator": self.calibrator_.to_spec(),
        }
