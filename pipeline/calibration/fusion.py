"""Fusion of several local score sources into one score, and the full calibration model.

A monotone calibrator cannot change the order of documents within a query, so rank agreement
can only move when several sources are combined. :class:`NonNegativeFusion` maps each source
onto a fusion scale (:mod:`pipeline.calibration.fusion_scale`: by default each source's own calibrated
scale), standardises it and combines the sources with non-negative weights that sum to 1 (non-
negative so that no source is used "backwards"); the fused score is then calibrated.

The weights are fitted for the goal the user states (``fusion.objective``):

* ``rank``: within-query document pairs ordered like the reference
  (:class:`pipeline.calibration.pairwise.PairwiseRankWeights`); query offsets cancel in a pair, so
  ``fusion.center`` does not apply.
* ``score``: least squares against the reference on the fusion scale (the reference itself with
  ``scale=raw``), ``LinearRegression(positive=True)``; with ``center="query"`` the fit uses
  within-query deviations (source and target minus their query means). ``scale=raw,
  objective=score`` is the fusion of earlier releases.
* ``auto``: :class:`ScoreCalibrationModel` tries both on held-out query groups and keeps the
  better ``combined`` figure (score correlation + rank similarity, as the report defines it).

:class:`ScoreCalibrationModel` = optional fusion + calibrator: the object written to
``calibrator.joblib`` and described, pickle-free, by its ``to_spec()``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin, clone
from sklearn.linear_model import LinearRegression
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted

from pipeline.calibration.calibrators import calibrator_fit_params, grouped_splits, query_subsample
from pipeline.calibration.fusion_scale import SourceScale, infer_score_type, target_scale
from pipeline.calibration.groups import query_codes
from pipeline.calibration.pairwise import PairwiseRankWeights
from pipeline.calibration.ranges import CV_FOLDS
from pipeline.runtime.spec import FORMAT, compile_fusion

__all__ = ["OBJECTIVES", "NonNegativeFusion", "ScoreCalibrationModel"]

OBJECTIVES = ("auto", "rank", "score")


def _center_by_group(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    inverse = query_codes(groups)
    counts = np.bincount(inverse).astype(np.float64)
    if values.ndim == 1:
        return values - (np.bincount(inverse, weights=values) / counts)[inverse]
    means = np.stack([np.bincount(inverse, weights=values[:, j]) for j in range(values.shape[1])], axis=1)
    return values - (means / counts[:, None])[inverse]


class NonNegativeFusion(TransformerMixin, BaseEstimator):
    """Map k sources onto a fusion scale, standardise, combine with non-negative weights summing to 1.

    Non-negative, because a source used "backwards" would reward it for disagreeing with the
    reference; summing to 1, because the calibrator after the fusion sets the scale anyway and a
    normalised weight reads as the source's share.

    Parameters
    ----------
    objective : {"score", "rank"}, default="score"
        What the weights are fitted for (module docstring). ``"auto"`` is resolved by
        :class:`ScoreCalibrationModel`, which can judge the calibrated result.
    scale : {"calibrated", "type", "raw"}, default="calibrated"
        Per-source scale, see :mod:`pipeline.calibration.fusion_scale`.
    center : {"none", "query"}, default="none"
        Score objective only: fit on all values, or on within-query deviations (needs groups).
    source_types : list of str or None, default=None
        Score type per column (``scale="type"``); None infers them from the values.
    target_type : str or None, default=None
        Score type of the reference (``scale`` other than raw); None infers it.
    auto_splits : int, default=3
        Query-group folds ``objective="auto"`` uses (read by :class:`ScoreCalibrationModel`), in
        :data:`pipeline.calibration.ranges.CV_FOLDS` (>= 2).
    random_state : int, default=0
        Seed of the rank objective's pair sampling and of the ``auto`` folds.
    auto_max_rows : int or None, default=None
        ``objective="auto"`` compares the objectives on at most this many rows of whole queries
        (:func:`pipeline.calibration.calibrators.query_subsample`); the chosen one is then fitted
        on every row. ``None``: on every row.

    Attributes
    ----------
    scales_ : list of SourceScale
        The fitted per-source maps (:class:`~pipeline.calibration.fusion_scale.SourceScale`).
    mean_, scale_ : ndarray of shape (k,)
        Mean and standard deviation of the mapped sources (1 for a constant source).
    coef_ : ndarray of shape (k,)
        The fitted coefficients on the standardised sources, before normalising (what the
        weight bootstrap starts from).
    weights_ : ndarray of shape (k,)
        Non-negative, sum to 1. Equal weights when the fit put zero weight everywhere
        (``degenerate_`` is then True).
    degenerate_ : bool
        Whether the fit gave every source zero weight.
    n_features_in_ : int
        Number of sources k.
    """

    def __init__(
        self,
        objective: str = "score",
        scale: str = "calibrated",
        center: str = "none",
        source_types: list[str] | None = None,
        target_type: str | None = None,
        auto_splits: int = 3,
        random_state: int = 0,
        auto_max_rows: int | None = None,
    ):
        self.objective = objective
        self.scale = scale
        self.center = center
        self.source_types = source_types
        self.target_type = target_type
        self.auto_splits = auto_splits
        self.random_state = random_state
        self.auto_max_rows = auto_max_rows

    def fit(self, X, y, groups=None):
        """Fit each source's scale map, then the non-negative weights for ``objective``.

        Parameters
        ----------
        X : array-like of shape (n_samples, k)
            One column per local source.
        y : array-like of shape (n_samples,)
            Reference scores for the same pairs.
        groups : array-like of shape (n_samples,), optional
            Query id of each pair; required by ``objective="rank"`` (pairs are formed within a
            query) and by ``center="query"``.

        Returns
        -------
        self : object
            The fitted fusion.

        Raises
        ------
        ValueError
            For an objective other than ``score``/``rank`` (``auto`` included), an unknown
            ``center``, missing groups where they are needed, or as many ``source_types`` as
            there are not columns.
        """
        X = check_array(X, dtype=np.float64)
        y = check_array(y, dtype=np.float64, ensure_2d=False)
        check_consistent_length(X, y)
        if self.objective not in ("score", "rank"):
            hint = " (auto is chosen by ScoreCalibrationModel)" if self.objective == "auto" else ""
            raise ValueError(f"objective must be 'score' or 'rank', got {self.objective!r}{hint}")
        if self.center not in {"none", "query"}:
            raise ValueError(f"center must be 'none' or 'query', got {self.center!r}")
        if self.center == "query" and self.objective == "score" and groups is None:
            raise ValueError("center='query' needs the query groups")
        k = X.shape[1]
        types = (
            list(self.source_types) if self.source_types is not None else [infer_score_type(X[:, j]) for j in range(k)]
        )
        if len(types) != k:
            raise ValueError(f"{len(types)} source types for {k} columns")
        target = y if self.scale == "raw" else target_scale(y, self.target_type or infer_score_type(y))
        self.n_features_in_ = k
        self.scales_ = [SourceScale(self.scale, types[j]).fit(X[:, j], target) for j in range(k)]
        M = np.column_stack([s.transform(X[:, j]) for j, s in enumerate(self.scales_)])
        self.mean_ = M.mean(axis=0)
        # constant by its range, not its std: the mean of equal values can round, leaving a std
        # of ~1e-16 that would blow the column's rounding noise up to unit scale
        constant = np.ptp(M, axis=0) == 0
        self.scale_ = np.where(constant, 1.0, M.std(axis=0))
        Z = (M - self.mean_) / self.scale_
        if self.objective == "rank":
            coef = PairwiseRankWeights(random_state=self.random_state).fit(Z, y, groups).coef_
        else:
            if self.center == "query":
                groups = np.asarray(groups)
                Z, target = _center_by_group(Z, groups), _center_by_group(target, groups)
            coef = LinearRegression(positive=True).fit(Z, target).coef_
        # a constant source carries nothing: its weight is 0 by definition, not whatever an
        # optimiser left on a column whose gradient is zero (~1e-16, which would become weight 1)
        coef = np.where(constant, 0.0, coef)
        self.coef_ = coef
        total = float(coef.sum())
        self.degenerate_ = not total > 0
        self.weights_ = np.full(k, 1.0 / k) if self.degenerate_ else coef / total
        return self

    def to_spec(self) -> dict[str, Any]:
        """Describe the fitted fusion for ``calibrator.json``.

        ``nonneg_linear`` when every source map is the identity (the form earlier releases
        wrote, so a raw-scale fusion's artifact is unchanged), ``mapped_linear`` otherwise.

        Returns
        -------
        dict
            The ``fusion`` entry of :mod:`pipeline.runtime.spec`.
        """
        check_is_fitted(self)
        maps = [s.to_spec() for s in self.scales_]
        spec: dict[str, Any] = {"kind": "nonneg_linear"}
        if any(m["map"] != "identity" for m in maps):
            spec = {"kind": "mapped_linear", "maps": maps}
        spec.update(
            {
                "mean": [float(v) for v in self.mean_],
                "scale": [float(v) for v in self.scale_],
                "weights": [float(v) for v in self.weights_],
            }
        )
        return spec

    def transform(self, X) -> np.ndarray:
        """Fuse the sources into one score, with the code inference runs on the spec.

        Parameters
        ----------
        X : array-like of shape (n_samples, k)
            The sources, in the column order of ``fit``.

        Returns
        -------
        ndarray of shape (n_samples,)
            The fused (pre-calibration) score.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        """
        check_is_fitted(self)
        X = check_array(X, dtype=np.float64)
        return compile_fusion(self.to_spec(), self.n_features_in_)(X)


class ScoreCalibrationModel(RegressorMixin, BaseEstimator):
    """Fuse the sources (optionally), then calibrate: the model ``fit`` exports.

    One estimator for the whole map from local scores to the reference scale, so that
    cross-validation refits fusion and calibrator together (a calibrator fitted on a fusion that
    saw the test rows would look better than it is), and one ``to_spec()`` describes the
    artifact.

    Parameters
    ----------
    calibrator : estimator
        An unfitted calibrator from :mod:`pipeline.calibration.calibrators`; cloned in ``fit``.
    fusion : NonNegativeFusion or None, default=None
        Required when X has more than one column; cloned in ``fit``. Its ``objective="auto"`` is
        resolved here, by the held-out ``combined`` figure of the calibrated result.
    sources : list of str or None, default=None
        Column names, in X's column order; recorded in the spec so that inference can check the
        caller's columns.

    Attributes
    ----------
    fusion_ : NonNegativeFusion or None
        The fitted fusion (None for a single source without fusion).
    calibrator_ : calibrator
        The fitted calibrator on the fused score.
    sources_ : list of str
        Column names (``source_<i>`` when none were given).
    objective_scores_ : dict[str, float]
        Held-out ``combined`` per objective when ``auto`` chose one; else empty.
    n_features_in_ : int
        Number of sources.
    """

    def __init__(self, calibrator, fusion=None, sources=None):
        self.calibrator = calibrator
        self.fusion = fusion
        self.sources = sources

    def fit(self, X, y, groups=None):
        """Fit the fusion (choosing its objective when ``auto``), then the calibrator on its output.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, k)
            The local sources.
        y : array-like of shape (n_samples,)
            Reference scores for the same pairs.
        groups : array-like of shape (n_samples,), optional
            Query id of each pair; needed by the rank objective, ``auto`` and grouped
            cross-validation inside the calibrator.

        Returns
        -------
        self : object
            The fitted model.

        Raises
        ------
        ValueError
            When several sources come without a fusion, the number of ``sources`` names differs
            from the columns, ``objective="auto"`` has no groups or its ``auto_splits`` is outside
            :data:`~pipeline.calibration.ranges.CV_FOLDS`, or a step refuses its parameters.

        Warns
        -----
        UserWarning
            When ``auto`` cannot hold out query groups; ``score`` is used.
        """
        X = check_array(X, dtype=np.float64, ensure_2d=False)
        if X.ndim == 1:
            X = X[:, None]
        k = X.shape[1]
        if k > 1 and self.fusion is None:
            raise ValueError(f"{k} sources need a fusion step (fusion.method=nonneg_linear)")
        # a fusion step on one source (its scale map, weight 1) is allowed: the drop-one
        # comparison of a two-source fusion runs the same pipeline on the remaining source
        self.n_features_in_ = k
        self.sources_ = list(self.sources) if self.sources is not None else [f"source_{i}" for i in range(k)]
        if len(self.sources_) != k:
            raise ValueError(f"{len(self.sources_)} source names for {k} columns")
        self.objective_scores_ = {}
        if self.fusion is not None:
            fusion = clone(self.fusion)
            if fusion.objective == "auto" and k == 1:
                fusion.set_params(objective="score")  # one source: weight 1 whatever the objective
            if fusion.objective == "auto":
                self.objective_scores_ = self._held_out_combined(X, y, groups)
                # ties go to "rank", listed first: the goal the report's rank figures measure
                fusion.set_params(objective=max(self.objective_scores_, key=self.objective_scores_.get))
            self.fusion_ = fusion.fit(X, y, groups=groups)
            fused = self.fusion_.transform(X)
        else:
            self.fusion_ = None
            fused = X[:, 0]
        self.calibrator_ = clone(self.calibrator).fit(fused, y, **calibrator_fit_params(self.calibrator, groups))
        return self

    def _held_out_combined(self, X: np.ndarray, y: np.ndarray, groups) -> dict[str, float]:
        """``combined`` (pooled Pearson + mean per-query Spearman, / 2) of each fusion objective,
        from out-of-fold predictions over query groups of the training rows."""
        from pipeline.calibration.metrics import agreement

        if groups is None:
            raise ValueError("fusion.objective=auto needs the query groups")
        CV_FOLDS.check("auto_splits", self.fusion.auto_splits)
        groups = np.asarray(groups)
        subset = query_subsample(groups, self.fusion.auto_max_rows, self.fusion.random_state)
        if subset is not None:
            X, y, groups = X[subset], y[subset], groups[subset]
        try:
            splits = grouped_splits(X.shape[0], groups, self.fusion.auto_splits, self.fusion.random_state)
        except ValueError as exc:
            warnings.warn(f"fusion objective auto: {exc}; using objective=score", stacklevel=3)
            return {"score": 0.0}
        scores = {}
        for objective in ("rank", "score"):
            candidate = clone(self).set_params(fusion=clone(self.fusion).set_params(objective=objective))
            pred = np.empty_like(y)
            for train, test in splits:
                pred[test] = clone(candidate).fit(X[train], y[train], groups=groups[train]).predict(X[test])
            value = agreement(pred, y, groups, n_bootstrap=0)[0]["combined"].value
            scores[objective] = float(value) if np.isfinite(value) else -np.inf
        return scores

    def fused(self, X) -> np.ndarray:
        """Compute the pre-calibration score (the single source itself when there is no fusion).

        The report plots and evaluates it next to the calibrated score, to show what the fusion
        and the calibrator each contribute.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, k)
            The local sources.

        Returns
        -------
        ndarray of shape (n_samples,)
            The fused score.
        """
        check_is_fitted(self)
        X = check_array(X, dtype=np.float64, ensure_2d=False)
        if X.ndim == 1:
            X = X[:, None]
        return X[:, 0] if self.fusion_ is None else self.fusion_.transform(X)

    def predict(self, X) -> np.ndarray:
        """Map local scores onto the reference scale: fuse, then calibrate.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, k)
            The local sources.

        Returns
        -------
        ndarray of shape (n_samples,)
            Calibrated scores.
        """
        return self.calibrator_.predict(self.fused(X))

    def to_spec(self) -> dict[str, Any]:
        """Describe the fitted model pickle-free: the content of ``calibrator.json``.

        Returns
        -------
        dict
            ``{"format", "sources", "fusion", "calibrator"}``, read back by
            :func:`pipeline.runtime.spec.compile_spec`.
        """
        check_is_fitted(self)
        return {
            "format": FORMAT,
            "sources": self.sources_,
            "fusion": None if self.fusion_ is None else self.fusion_.to_spec(),
            "calibrator": self.calibrator_.to_spec(),
        }
