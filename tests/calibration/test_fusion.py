"""Fusion: non-negative normalised weights; it (not calibration) moves per-query rank agreement."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration.calibrators import PolynomialCalibrator, SigmoidCalibrator
from pipeline.calibration.fusion import NonNegativeFusion, ScoreCalibrationModel
from pipeline.calibration.metrics import agreement, per_query_stats


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
    fused = ScoreCalibrationModel(
        PolynomialCalibrator(), NonNegativeFusion(center=center), sources=["a", "b", "n"]
    ).fit(X, y, groups=groups)
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


# --- fusion for ranking: scales, the pairwise objective, auto, spec ---------------------------

import itertools  # noqa: E402
import json  # noqa: E402

from pipeline.calibration.fusion_scale import midpoint_knots, resolve_score_types  # noqa: E402
from pipeline.calibration.pairwise import PairwiseRankWeights, within_query_pairs  # noqa: E402
from pipeline.runtime.spec import SpecError, compile_fusion, compile_spec  # noqa: E402


def test_within_query_pairs_are_every_unordered_pair_of_each_query():
    groups = np.array([2, 0, 2, 1, 0, 2, 3])
    i, j = within_query_pairs(groups)
    got = sorted(tuple(sorted(p)) for p in zip(i.tolist(), j.tolist()))
    want = sorted(p for p in itertools.combinations(range(groups.size), 2) if groups[p[0]] == groups[p[1]])
    assert got == want


def _pairwise_loss(w, Z, y, groups, alpha):
    i, j = within_query_pairs(groups)
    keep = y[i] != y[j]
    i, j = i[keep], j[keep]
    m = ((Z[i] - Z[j]) * np.sign(y[i] - y[j])[:, None]) @ w
    return np.logaddexp(0, -m).mean() + 0.5 * alpha * w @ w


def test_rank_weights_minimise_the_pairwise_loss_under_non_negative_bounds():
    X, y, groups = _two_noisy_views(3, n_queries=80)
    Z = (X - X.mean(0)) / X.std(0)
    Z[:, 1] = -Z[:, 1]  # an inverted source: the unconstrained optimum would give it a negative weight
    est = PairwiseRankWeights(alpha=1e-3).fit(Z, y, groups)
    assert np.all(est.coef_ >= 0) and est.coef_[1] == 0.0
    best = _pairwise_loss(est.coef_, Z, y, groups, 1e-3)
    rng = np.random.default_rng(0)
    for _ in range(200):  # no feasible neighbour is better (KKT, checked by sampling)
        trial = np.maximum(est.coef_ + rng.normal(0, 0.05, 3), 0)
        assert _pairwise_loss(trial, Z, y, groups, 1e-3) >= best - 1e-9
    # the bound is active: the constrained optimum is the fit without the inverted source
    free = PairwiseRankWeights(alpha=1e-3).fit(Z[:, [0, 2]], y, groups).coef_
    np.testing.assert_allclose(free, est.coef_[[0, 2]], atol=1e-4)


def test_rank_weights_need_groups_and_subsample_above_max_pairs():
    X, y, groups = _two_noisy_views(4, n_queries=50)
    with pytest.raises(ValueError, match="query groups"):
        PairwiseRankWeights().fit(X, y, None)
    est = PairwiseRankWeights(max_pairs=300).fit(X, y, groups)
    assert est.n_pairs_ == 300
    assert PairwiseRankWeights().fit(X, y, groups).n_pairs_ == 50 * 28


def test_calibrated_scale_map_is_strictly_increasing_and_creates_no_ties():
    rng = np.random.default_rng(5)
    x = rng.uniform(size=400)
    t = np.log(x / (1 - x)) + rng.normal(0, 1.0, x.size)
    kx, ky = midpoint_knots(x, t)
    assert np.all(np.diff(kx) > 0) and np.all(np.diff(ky) > 0)
    assert kx[0] == x.min() and kx[-1] == x.max()
    mapped = np.interp(x, kx, ky)
    assert np.unique(mapped).size == np.unique(x).size  # distinct scores stay distinct
    one_knot = midpoint_knots(x, -x)  # no increasing relation: one block, a constant map
    assert one_knot[0].size == 1


def test_score_types_come_from_the_sidecar_then_the_settings_then_the_values():
    values = {
        "a": np.array([0.1, 0.9]),
        "b": np.array([-2.0, 3.0]),
        "c": np.array([0.2, 0.4]),
        "ref": np.array([0.0, 1.0]),
    }
    sidecar = {"sources": {"a": {"score_type": "probability"}, "c": {"score_type": "cosine"}}}
    types, notes = resolve_score_types(list(values), values, sidecar, {"c": "cosine", "ref": "probability"})
    assert types == {"a": "probability", "b": "unbounded", "c": "cosine", "ref": "probability"}
    assert notes == [
        "score types inferred from the values (all in [0, 1] = probability): b=unbounded; "
        "set data.score_types.<column> to override"
    ]
    with pytest.raises(ValueError, match=r"'b' is declared a probability but has values outside \[0, 1\]"):
        resolve_score_types(["b"], values, {}, {"b": "probability"})
    with pytest.raises(
        ValueError, match="data.score_types.c=probability contradicts the table's sidecar, which records cosine"
    ):
        resolve_score_types(["c"], values, sidecar, {"c": "probability"})  # never silently ignored


@pytest.mark.parametrize("scale", ["calibrated", "type", "raw"])
def test_every_scale_round_trips_through_the_pickle_free_spec(scale):
    X, y, groups = _two_noisy_views(6)
    X[:, 0] = 1 / (1 + np.exp(-X[:, 0] + 10))  # a probability source for the logit map
    model = ScoreCalibrationModel(
        SigmoidCalibrator(), NonNegativeFusion(objective="rank", scale=scale), sources=["a", "b", "n"]
    ).fit(X, y, groups=groups)
    spec = json.loads(json.dumps(model.to_spec()))
    assert spec["fusion"]["kind"] == ("nonneg_linear" if scale == "raw" else "mapped_linear")
    apply, _ = compile_spec(spec)
    grid = np.random.default_rng(1).uniform(-1, 12, size=(300, 3))
    np.testing.assert_allclose(apply(grid), model.predict(grid), atol=1e-12)


def test_fusion_spec_maps_are_validated():
    base = {"kind": "mapped_linear", "mean": [0, 0], "scale": [1, 1], "weights": [0.5, 0.5]}
    with pytest.raises(SpecError, match="must list 2 source maps"):
        compile_fusion({**base, "maps": [{"map": "identity"}]}, 2)
    with pytest.raises(SpecError, match="unknown source map 'exp'"):
        compile_fusion({**base, "maps": [{"map": "identity"}, {"map": "exp"}]}, 2)
    with pytest.raises(SpecError, match="strictly increasing in x"):
        compile_fusion({**base, "maps": [{"map": "identity"}, {"map": "knots", "x": [1, 1], "y": [0, 1]}]}, 2)
    fuse = compile_fusion(
        {**base, "maps": [{"map": "logit", "eps": 1e-6}, {"map": "knots", "x": [0, 1], "y": [0, 4]}]}, 2
    )
    np.testing.assert_allclose(fuse(np.array([[0.5, 0.5]])), [1.0])


def _query_offset_views(seed=0, n_queries=150, docs=8):
    """Source b orders documents within a query well but carries a large per-query offset."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_queries), docs)
    r = rng.normal(size=groups.size)
    a = r + rng.normal(0, 0.8, r.size)
    b = r + rng.normal(0, 0.3, r.size) + rng.normal(0, 3.0, n_queries)[groups]
    return np.column_stack([a, b]), 1 / (1 + np.exp(-2 * r)), groups


def test_rank_objective_trusts_the_source_that_orders_queries_best_and_auto_keeps_its_own_best():
    X, y, groups = _query_offset_views()
    rank = NonNegativeFusion(objective="rank", scale="raw").fit(X, y, groups)
    score = NonNegativeFusion(objective="score", scale="raw").fit(X, y, groups)
    assert rank.weights_[1] > 0.6 > score.weights_[1]  # query offsets cancel in a pair
    Xt, yt, gt = _query_offset_views(1)
    rho = lambda f: np.nanmean(per_query_stats(f.transform(Xt), yt, gt, 3).rank["spearman"])  # noqa: E731
    assert rho(rank) > rho(score) + 0.02
    auto = ScoreCalibrationModel(SigmoidCalibrator(), NonNegativeFusion(objective="auto", scale="raw"), ["a", "b"]).fit(
        X, y, groups=groups
    )

    # auto picks by held-out `combined`; judged here on fresh queries, not by the model's own numbers:
    # on this data the score objective's calibrated Pearson outweighs rank's better ordering
    def fresh_combined(objective: str) -> float:
        model = ScoreCalibrationModel(
            SigmoidCalibrator(), NonNegativeFusion(objective=objective, scale="raw"), ["a", "b"]
        ).fit(X, y, groups=groups)
        return agreement(model.predict(Xt), yt, gt, n_bootstrap=0)[0]["combined"].value

    better = max(("rank", "score"), key=fresh_combined)
    assert set(auto.objective_scores_) == {"rank", "score"} and auto.fusion_.objective == better
    fixed = ScoreCalibrationModel(SigmoidCalibrator(), NonNegativeFusion(objective="rank"), ["a", "b"]).fit(
        X, y, groups=groups
    )
    assert fixed.objective_scores_ == {} and fixed.fusion_.objective == "rank"
    with pytest.raises(ValueError, match="auto is chosen by ScoreCalibrationModel"):
        NonNegativeFusion(objective="auto").fit(X, y, groups)
