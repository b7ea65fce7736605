"""NonNegativeFusion and ScoreCalibrationModel (pipeline/calibration/fusion.py) on small inputs, pinned against
an independent reimplementation: the score objective is non-negative least squares (scipy's
``nnls``) on the standardised sources, on within-query deviations with ``center="query"``; the
spec and the fused score follow the documented formula; and what is refused is refused with the
message the user sees."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import nnls

from pipeline.calibration.calibrators import (
    IdentityCalibrator,
    IsotonicCalibrator,
    PolynomialCalibrator,
    SigmoidCalibrator,
    grouped_splits,
    make_calibrator,
)
from pipeline.calibration.fusion import NonNegativeFusion, ScoreCalibrationModel
from pipeline.calibration.metrics import agreement
from pipeline.runtime.spec import FORMAT, compile_spec


def _views(seed=0, n_queries=30):
    """Three sources of a latent relevance with per-query offsets, in uneven, unsorted queries with
    non-contiguous ids; the reference is a probability."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 9, n_queries)
    groups = rng.permutation(np.repeat(rng.choice(1000, n_queries, replace=False), sizes))
    offset = {g: rng.normal(0, 2.0) for g in np.unique(groups)}
    shift = np.array([offset[g] for g in groups])
    r = rng.normal(size=groups.size)
    X = np.column_stack(
        [
            3 * (r + rng.normal(0, 0.5, r.size)) + shift,
            0.3 * (r + rng.normal(0, 0.9, r.size) - shift),  # spread below 1
            r + rng.normal(0, 1.5, r.size),
        ]
    )
    y = 1 / (1 + np.exp(-(r + 0.5 * shift)))
    return X, y, groups


def _standardised(M):
    return (M - M.mean(0)) / M.std(0)


def _within_query(v, groups):
    out = np.array(v, dtype=float)
    for g in np.unique(groups):
        rows = groups == g
        out[rows] -= out[rows].mean(0)
    return out


def _nnls_weights(Z, t):
    coef, _ = nnls(Z, t)
    return coef / coef.sum()


def test_score_weights_are_non_negative_least_squares_on_the_standardised_sources():
    X, y, _ = _views()
    fusion = NonNegativeFusion(scale="raw").fit(X, y)
    Z = _standardised(X)
    np.testing.assert_allclose(fusion.weights_, _nnls_weights(Z, y - y.mean()), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fusion.mean_, X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(fusion.scale_, X.std(0), rtol=1e-12)
    assert fusion.degenerate_ is False and fusion.n_features_in_ == 3


def test_center_query_fits_within_query_deviations_of_sources_and_target():
    X, y, groups = _views(1)
    fusion = NonNegativeFusion(scale="raw", center="query").fit(X, y, groups)
    want = _nnls_weights(_within_query(_standardised(X), groups), _within_query(y, groups))
    np.testing.assert_allclose(fusion.weights_, want, rtol=1e-6, atol=1e-9)
    # the query offsets are what the plain fit has to trade against: the weights differ
    assert np.abs(NonNegativeFusion(scale="raw").fit(X, y).weights_ - want).max() > 0.05
    # rank pairs are within a query already: center does not apply and groups are enough
    rank = NonNegativeFusion(objective="rank", scale="raw", center="query").fit(X, y, groups)
    np.testing.assert_array_equal(
        rank.weights_, NonNegativeFusion(objective="rank", scale="raw").fit(X, y, groups).weights_
    )


@pytest.mark.parametrize(
    "settings, target",
    [
        ({"scale": "type"}, "logit"),  # a probability reference (inferred)
        ({"scale": "type", "target_type": "probability"}, "logit"),
        ({"scale": "type", "target_type": "unbounded"}, "raw"),  # declared: not inferred from the values
        ({"scale": "raw", "target_type": "probability"}, "raw"),  # raw fits the reference itself
    ],
)
def test_the_target_is_the_reference_on_its_linear_scale(settings, target):
    X, y, _ = _views(2)
    t = np.log(y / (1 - y)) if target == "logit" else y
    fusion = NonNegativeFusion(source_types=["unbounded"] * 3, **settings).fit(X, y)
    np.testing.assert_allclose(fusion.weights_, _nnls_weights(_standardised(X), t - t.mean()), rtol=1e-6, atol=1e-9)


def test_type_scale_maps_probability_sources_by_their_logit_declared_or_inferred():
    X, y, _ = _views(3)
    P = np.column_stack([1 / (1 + np.exp(-X[:, 0] / 3)), X[:, 1], 1 / (1 + np.exp(-X[:, 2]))])  # 0 and 2 in [0, 1]
    inferred = NonNegativeFusion(scale="type").fit(P, y)
    assert [m["map"] for m in inferred.to_spec()["maps"]] == ["logit", "identity", "logit"]
    declared = NonNegativeFusion(scale="type", source_types=["probability", "unbounded", "cosine"]).fit(P, y)
    assert [m["map"] for m in declared.to_spec()["maps"]] == ["logit", "identity", "identity"]
    M = np.column_stack([np.log(P[:, 0] / (1 - P[:, 0])), P[:, 1], P[:, 2]])
    np.testing.assert_allclose(declared.mean_, M.mean(0), rtol=1e-9)
    np.testing.assert_allclose(
        declared.weights_,
        _nnls_weights(_standardised(M), np.log(y / (1 - y)) - np.log(y / (1 - y)).mean()),
        rtol=1e-6,
        atol=1e-9,
    )
    # no probability source: every map is the identity and the spec keeps the plain kind
    plain = NonNegativeFusion(scale="type", source_types=["unbounded", "logit", "cosine"]).fit(P, y).to_spec()
    assert plain["kind"] == "nonneg_linear" and "maps" not in plain


def test_spec_and_transform_follow_the_documented_formula():
    X, y, _ = _views(4)
    fusion = NonNegativeFusion(scale="raw").fit(X, y)
    spec = fusion.to_spec()
    assert spec == {
        "kind": "nonneg_linear",
        "mean": list(fusion.mean_),
        "scale": list(fusion.scale_),
        "weights": list(fusion.weights_),
    }
    assert all(type(v) is float for key in ("mean", "scale", "weights") for v in spec[key])
    grid = np.random.default_rng(0).normal(0, 3, size=(50, 3))
    np.testing.assert_allclose(
        fusion.transform(grid), ((grid - fusion.mean_) / fusion.scale_) @ fusion.weights_, atol=1e-12
    )
    mapped = NonNegativeFusion().fit(X, y)  # calibrated: one knot curve per source
    spec = mapped.to_spec()
    assert spec["kind"] == "mapped_linear" and [m["map"] for m in spec["maps"]] == ["knots"] * 3
    M = np.column_stack([np.interp(grid[:, j], m["x"], m["y"]) for j, m in enumerate(spec["maps"])])
    np.testing.assert_allclose(
        mapped.transform(grid), ((M - mapped.mean_) / mapped.scale_) @ mapped.weights_, atol=1e-12
    )


def test_constant_source_is_not_divided_by_zero_and_all_zero_weights_fall_back_to_equal():
    X, y, _ = _views(5)
    X[:, 2] = 4.0
    fusion = NonNegativeFusion(scale="raw").fit(X, y)
    assert fusion.scale_[2] == 1.0 and fusion.mean_[2] == 4.0 and fusion.weights_[2] == 0.0
    assert np.all(np.isfinite(fusion.transform(X)))
    X, y, groups = _views(5)
    inverted = NonNegativeFusion(scale="raw").fit(-X[:, [0, 2]], y)  # every source backwards: nothing to weight
    assert inverted.degenerate_ is True
    np.testing.assert_array_equal(inverted.weights_, [0.5, 0.5])
    rank = NonNegativeFusion(objective="rank", scale="raw").fit(-X[:, [0, 2]], y, groups)
    assert rank.degenerate_ is True
    np.testing.assert_array_equal(rank.weights_, [0.5, 0.5])


def test_rank_objective_uses_the_fusions_random_state_when_subsampling_pairs():
    rng = np.random.default_rng(0)
    groups = np.repeat([0, 1, 2], [632, 35, 5])  # 200,001 within-query pairs: a subset of 200,000
    y = rng.normal(size=groups.size)
    X = np.column_stack([y + rng.normal(0, 1, y.size), y + rng.normal(0, 1, y.size)])
    fits = {
        s: NonNegativeFusion(objective="rank", scale="raw", random_state=s).fit(X, y, groups).weights_ for s in (0, 1)
    }
    assert not np.array_equal(fits[0], fits[1])
    np.testing.assert_array_equal(NonNegativeFusion(objective="rank", scale="raw").fit(X, y, groups).weights_, fits[0])


@pytest.mark.parametrize(
    "settings, fit_groups, message",
    [
        (
            {"objective": "auto"},
            True,
            r"^objective must be 'score' or 'rank', got 'auto' \(auto is chosen by ScoreCalibrationModel\)$",
        ),
        ({"objective": "ranking"}, True, r"^objective must be 'score' or 'rank', got 'ranking'$"),
        ({"center": "group"}, True, r"^center must be 'none' or 'query', got 'group'$"),
        ({"center": "query"}, False, r"^center='query' needs the query groups$"),
        ({"objective": "rank"}, False, r"^the rank objective needs the query groups"),
        ({"source_types": ["unbounded", "unbounded"]}, True, r"^2 source types for 3 columns$"),
        ({"scale": "log"}, True, r"^scale must be one of calibrated, type, raw, got 'log'$"),
    ],
)
def test_invalid_settings_are_refused(settings, fit_groups, message):
    X, y, groups = _views(6)
    with pytest.raises(ValueError, match=message):
        NonNegativeFusion(**settings).fit(X, y, groups if fit_groups else None)


@pytest.mark.parametrize("objective, scale", [("score", "calibrated"), ("rank", "raw")])
def test_rows_of_sources_and_reference_must_agree(objective, scale):
    X, y, groups = _views(15)
    n = len(y)
    for Xb, yb, gb in [(X, y[:-1], groups[:-1]), (X[:-1], y, groups[:-1])]:
        with pytest.raises(ValueError, match=rf"inconsistent numbers of samples: \[{len(Xb)}, {len(yb)}\]$"):
            NonNegativeFusion(objective=objective, scale=scale).fit(Xb, yb, gb)
    assert n == len(X)


def test_fusion_defaults():
    assert NonNegativeFusion().get_params() == {
        "objective": "score",
        "scale": "calibrated",
        "center": "none",
        "source_types": None,
        "target_type": None,
        "auto_splits": 3,
        "random_state": 0,
        "auto_max_rows": None,
    }


# --- ScoreCalibrationModel ---------------------------------------------------------------------


def test_single_source_without_fusion_is_calibrated_directly():
    X, y, _ = _views(7)
    model = ScoreCalibrationModel(PolynomialCalibrator()).fit(X[:, 0], y)  # 1-D input
    direct = PolynomialCalibrator().fit(X[:, 0], y)
    np.testing.assert_array_equal(model.fused(X[:, 0]), X[:, 0])
    np.testing.assert_array_equal(model.fused(X[:, :1]), X[:, 0])
    grades = model.fused(np.array([1, 2, 3]))  # integer scores come back as the float pre-calibration score
    assert grades.dtype == np.float64 and grades.tolist() == [1.0, 2.0, 3.0]
    np.testing.assert_allclose(model.predict(X[:, 0]), direct.predict(X[:, 0]), atol=1e-12)
    spec = model.to_spec()
    assert spec == {"format": FORMAT, "sources": ["source_0"], "fusion": None, "calibrator": direct.to_spec()}
    assert FORMAT == "score-calibrator/v1"


def test_fused_model_calibrates_the_fused_score_and_names_its_sources():
    X, y, _ = _views(8)
    model = ScoreCalibrationModel(IsotonicCalibrator(), NonNegativeFusion(scale="raw")).fit(X, y)
    fusion = NonNegativeFusion(scale="raw").fit(X, y)
    np.testing.assert_allclose(model.fused(X), fusion.transform(X), atol=1e-12)
    np.testing.assert_allclose(
        model.predict(X), IsotonicCalibrator().fit(fusion.transform(X), y).predict(fusion.transform(X)), atol=1e-12
    )
    spec = model.to_spec()
    assert spec["sources"] == ["source_0", "source_1", "source_2"] and spec["fusion"] == fusion.to_spec()
    apply, _ = compile_spec(spec)
    np.testing.assert_allclose(apply(X), model.predict(X), atol=1e-12)


def test_auto_calibrator_is_fitted_with_the_query_groups():
    X, y, groups = _views(9)
    model = ScoreCalibrationModel(make_calibrator("auto"), NonNegativeFusion(scale="raw")).fit(X, y, groups=groups)
    fused = NonNegativeFusion(scale="raw").fit(X, y).transform(X)
    want = make_calibrator("auto").fit(fused, y, groups=groups)
    assert model.calibrator_.to_spec() == want.to_spec() and model.calibrator_.cv_mse_ == want.cv_mse_
    assert make_calibrator("auto").fit(fused, y).cv_mse_ != want.cv_mse_  # folds by query, not by row


@pytest.mark.parametrize(
    "X_cols, fusion, sources, message",
    [
        (2, None, None, r"^2 sources need a fusion step \(fusion.method=nonneg_linear\)$"),
        (2, NonNegativeFusion(scale="raw"), ["a"], r"^1 source names for 2 columns$"),
        (1, None, ["a", "b"], r"^2 source names for 1 columns$"),
    ],
)
def test_model_refuses_mismatched_sources(X_cols, fusion, sources, message):
    X, y, _ = _views(10)
    with pytest.raises(ValueError, match=message):
        ScoreCalibrationModel(IdentityCalibrator(), fusion, sources).fit(X[:, :X_cols], y)


def test_auto_on_one_source_is_the_score_fit_and_auto_needs_groups():
    X, y, groups = _views(11)
    one = ScoreCalibrationModel(SigmoidCalibrator(), NonNegativeFusion(objective="auto", scale="type"), ["a"]).fit(
        X[:, :1], y
    )
    assert one.fusion_.objective == "score" and one.objective_scores_ == {}
    np.testing.assert_array_equal(one.fusion_.weights_, [1.0])
    assert one.fusion.objective == "auto"  # the user's estimator is not changed
    rank = ScoreCalibrationModel(SigmoidCalibrator(), NonNegativeFusion(objective="rank", scale="type"), ["a"]).fit(
        X[:, :1], y, groups=groups
    )
    assert rank.fusion_.objective == "rank" and rank.objective_scores_ == {}
    with pytest.raises(ValueError, match=r"^fusion.objective=auto needs the query groups$"):
        ScoreCalibrationModel(SigmoidCalibrator(), NonNegativeFusion(objective="auto")).fit(X, y)


def _offset_views(seed=2, n_queries=24):
    """A precise source with per-query offsets and a noisy one without: held out, rank wins."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_queries), 6)
    r = rng.normal(size=groups.size)
    offset = rng.normal(0, 1.0, n_queries)[groups]
    X = np.column_stack([r + rng.normal(0, 0.3, r.size) + offset, r + rng.normal(0, 1.0, r.size)])
    return X, 1 / (1 + np.exp(-2 * r)), groups


@pytest.mark.parametrize("data, winner", [(_views(12, n_queries=24), "score"), (_offset_views(), "rank")])
def test_auto_scores_each_objective_on_out_of_fold_predictions_and_keeps_the_better(data, winner):
    X, y, groups = data
    names = [f"s{j}" for j in range(X.shape[1])]
    fusion = NonNegativeFusion(objective="auto", scale="raw", auto_splits=4, random_state=3)
    model = ScoreCalibrationModel(SigmoidCalibrator(), fusion, names).fit(X, y, groups=groups)
    want = {}
    for objective in ("rank", "score"):
        pred = np.empty_like(y)
        for train, test in grouped_splits(len(y), groups, 4, 3):
            part = ScoreCalibrationModel(
                SigmoidCalibrator(), NonNegativeFusion(objective=objective, scale="raw", random_state=3)
            )
            pred[test] = part.fit(X[train], y[train], groups=groups[train]).predict(X[test])
        want[objective] = agreement(pred, y, groups, n_bootstrap=0)[0]["combined"].value
    assert model.objective_scores_ == pytest.approx(want, rel=1e-12)
    assert max(want, key=want.get) == winner and abs(want["rank"] - want["score"]) > 0.01
    assert model.fusion_.objective == winner and model.fusion_.random_state == 3
    assert model.sources_ == names and model.to_spec()["sources"] == names and model.n_features_in_ == X.shape[1]


def test_auto_on_one_query_falls_back_to_score_with_a_warning():
    X, y, _ = _views(13)
    with pytest.warns(
        UserWarning,
        match=r"^fusion objective auto: need at least 2 queries for grouped cross-validation, "
        r"got 1; using objective=score$",
    ) as caught:
        single = ScoreCalibrationModel(SigmoidCalibrator(), NonNegativeFusion(objective="auto", scale="raw")).fit(
            X, y, groups=np.zeros(len(y))
        )
    # the warning points at the caller's fit(), not inside the library (under mutmut, whose
    # trampoline adds a frame, at the trampoline: never at the fusion module)
    assert caught[0].filename == __file__ or "mutmut" in caught[0].filename
    assert not caught[0].filename.endswith("fusion.py")
    assert single.objective_scores_ == {"score": 0.0} and single.fusion_.objective == "score"


def test_auto_counts_an_undefined_figure_as_worst():
    """A constant reference in every held-out query: no correlation is defined for either objective,
    both count as -inf (never NaN, which max() would mishandle) and the tie goes to rank."""
    X, y, groups = _views(14)
    y = np.full(len(y), 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ScoreCalibrationModel(IdentityCalibrator(), NonNegativeFusion(objective="auto", scale="raw")).fit(
            X, y, groups=groups
        )
    assert model.objective_scores_ == {"rank": -np.inf, "score": -np.inf} and model.fusion_.objective == "rank"


@pytest.mark.parametrize("objective", ["rank", "score"])
@pytest.mark.parametrize("scale", ["calibrated", "raw"])
def test_a_constant_source_never_takes_the_weight(objective, scale):
    """A constant source carries nothing. With the only informative source running backwards
    (its calibrated map is constant too, up to rounding), nothing is left: equal weights, flagged
    degenerate -- not weight 1 on the constant column from an optimiser's ~1e-16."""
    from pipeline.calibration.fusion import NonNegativeFusion

    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 6)
    y = rng.uniform(size=180)
    backwards = np.column_stack([1 - y + rng.normal(0, 0.01, 180), np.full(180, 0.5)])
    fused = NonNegativeFusion(objective=objective, scale=scale).fit(backwards, y, groups)
    assert fused.degenerate_ and fused.weights_.tolist() == [0.5, 0.5]
    informative = np.column_stack([y + rng.normal(0, 0.1, 180), np.full(180, 0.5)])
    fused = NonNegativeFusion(objective=objective, scale=scale).fit(informative, y, groups)
    assert not fused.degenerate_ and fused.weights_.tolist() == [1.0, 0.0]
