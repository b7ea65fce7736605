"""Fusion: non-negative normalised weights; it (not calibration) moves per-query rank agreement."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibrators import PolynomialCalibrator, SigmoidCalibrator
from pipeline.fusion import NonNegativeFusion, ScoreCalibrationModel
from pipeline.metrics import per_query_stats


def _two_noisy_views(seed=0, n_queries=200, docs=8):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_queries), docs)
    r = rng.normal(size=groups.size)
    target = 1 / (1 + np.exp(-2 * r))
    a = 3 * (r + rng.normal(0, 0.5, r.size)) + 10  # different scales, independent noise
    b = 0.1 * np.tanh(r + rng.normal(0, 0.5, r.size))
    useless = rng.normal(size=r.size)
    return np.column_stack([a, b, useless]), target, groups


def test_weights_non_negative_normalised_and_ignore_noise_source():
    X, y, groups = _two_noisy_views()
    fusion = NonNegativeFusion().fit(X, y)
    assert np.all(fusion.weights_ >= 0) and fusion.weights_.sum() == pytest.approx(1.0)
    assert fusion.weights_[2] < 0.05
    assert abs(fusion.weights_[0] - fusion.weights_[1]) < 0.2  # equally informative views


def test_anti_correlated_source_gets_zero_weight_not_a_negative_one():
    X, y, _ = _two_noisy_views()
    X[:, 1] = -X[:, 1]
    fusion = NonNegativeFusion().fit(X, y)
    assert fusion.weights_[1] == 0.0


@pytest.mark.parametrize("center", ["none", "query"])
def test_fusion_improves_within_query_ranking_while_calibration_alone_cannot(center):
    X, y, groups = _two_noisy_views(1)
    single = ScoreCalibrationModel(SigmoidCalibrator(), sources=["a"]).fit(X[:, :1], y)
    fused = ScoreCalibrationModel(PolynomialCalibrator(), NonNegativeFusion(center=center), sources=["a", "b", "n"]).fit(X, y, groups=groups)
    rho = lambda pred: np.nanmean(per_query_stats(pred, y, groups, 3).rank["spearman"])  # noqa: E731
    raw, calibrated, fused_rho = rho(X[:, 0]), rho(single.predict(X[:, :1])), rho(fused.predict(X))
    assert calibrated == pytest.approx(raw, abs=1e-9)  # strictly increasing map: same order
    assert fused_rho > raw + 0.03


def test_several_sources_without_fusion_is_an_error():
    X, y, _ = _two_noisy_views()
    with pytest.raises(ValueError, match="fusion"):
        ScoreCalibrationModel(PolynomialCalibrator()).fit(X, y)


def test_center_query_needs_groups():
    X, y, _ = _two_noisy_views()
    with pytest.raises(ValueError, match="groups"):
        NonNegativeFusion(center="query").fit(X, y)
