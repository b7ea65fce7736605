"""What fitting a calibrator does with what a user passes: sample weights, output ranges, the
sigmoid's input and target scales, its constant fallback, auto's choice and held-out errors, and
the cross-validation splits. Each expectation is computed independently (sklearn's estimators
directly, closed forms, or the data written out), never by the module's own helpers."""

from __future__ import annotations

import enum

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import GroupKFold

from pipeline.calibration.calibrators import (
    AutoCalibrator,
    IdentityCalibrator,
    IsotonicCalibrator,
    PolynomialCalibrator,
    SigmoidCalibrator,
    grouped_splits,
)

ALL = [IdentityCalibrator, IsotonicCalibrator, PolynomialCalibrator, SigmoidCalibrator, AutoCalibrator]


def _logit(p):
    return np.log(p / (1 - p))


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _noisy(seed: int = 0, n: int = 60):
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(0.02, 0.98, n))
    y = np.clip(x**2 + rng.normal(0, 0.05, n), 0, 1)
    return x, y


# --- sample weights ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "weights, message",
    [
        (lambda n: -np.ones(n), "sample_weight must be non-negative"),
        (lambda n: np.ones(n + 1), "inconsistent numbers of samples"),
    ],
)
def test_every_family_checks_the_weights_it_is_given(cls, weights, message):
    x, y = _noisy()
    with pytest.raises(ValueError, match=message):
        cls().fit(x, y, sample_weight=weights(x.size))


@pytest.mark.parametrize("cls", [IsotonicCalibrator, PolynomialCalibrator, SigmoidCalibrator], ids=lambda c: c.__name__)
def test_an_integer_weight_is_the_same_pair_repeated(cls):
    # (the sigmoid's slope penalty is on standardised scores, which repetition shifts: a large C)
    make = (lambda: cls(C=1e6)) if cls is SigmoidCalibrator else cls
    x, y = _noisy(1)
    w = np.random.default_rng(2).integers(1, 4, x.size).astype(float)
    weighted = make().fit(x, y, sample_weight=w)
    repeated = make().fit(np.repeat(x, w.astype(int)), np.repeat(y, w.astype(int)))
    unweighted = make().fit(x, y)
    grid = np.linspace(0, 1, 101)
    np.testing.assert_allclose(weighted.predict(grid), repeated.predict(grid), atol=1e-6)
    assert np.max(np.abs(weighted.predict(grid) - unweighted.predict(grid))) > 1e-4  # the weights mattered


def test_auto_judges_and_refits_with_the_weights():
    x, y = _noisy(3, 80)
    groups = np.repeat(np.arange(16), 5)
    w = np.random.default_rng(4).uniform(0.1, 3.0, x.size)
    auto = AutoCalibrator(n_splits=4, random_state=2).fit(x, y, groups=groups, sample_weight=w)
    # identity's held-out error is its weighted error on every pair: it learns nothing
    assert auto.cv_mse_["identity"] == pytest.approx(np.average((x - y) ** 2, weights=w), rel=1e-12)
    # isotonic's, written out with sklearn's own estimator on the same folds
    errors = np.empty_like(y)
    for train, test in GroupKFold(n_splits=4, shuffle=True, random_state=2).split(x, groups=groups):
        iso = IsotonicRegression(out_of_bounds="clip", y_min=y[train].min(), y_max=y[train].max())
        iso.fit(x[train], y[train], sample_weight=w[train])
        errors[test] = (
            np.clip(iso.predict(np.clip(x[test], x[train].min(), x[train].max())), y[train].min(), y[train].max())
            - y[test]
        )
    assert auto.cv_mse_["isotonic"] == pytest.approx(np.average(errors**2, weights=w), rel=1e-9)
    # the chosen family is the one with the least held-out error, refitted on all pairs with the weights
    assert auto.chosen_ == min(auto.cv_mse_, key=auto.cv_mse_.get) != "identity"
    grid = np.linspace(0, 1, 101)
    refit = type(auto.best_)().fit(x, y, sample_weight=w)
    np.testing.assert_allclose(auto.predict(grid), refit.predict(grid), atol=1e-12)


# --- ranges -----------------------------------------------------------------------------------


def test_isotonic_knots_respect_the_output_range_before_interpolating():
    # the fitted steps are -0.5 at 0 and 1.0 at 1: with y_min=0 the knot itself is 0, so halfway
    # the curve is 0.5 (interpolating clipped knots), not clip(0.25) (clipping afterwards)
    x = np.array([0.0, 0.0, 1.0, 1.0])
    y = np.array([-0.5, -0.5, 1.0, 1.0])
    cal = IsotonicCalibrator(y_min=0.0, y_max=0.9).fit(x, y)
    assert cal.get_params() == {"y_min": 0.0, "y_max": 0.9}
    np.testing.assert_allclose(cal.predict(np.array([0.0, 0.5, 1.0])), [0.0, 0.45, 0.9])
    assert cal.knots_y_.tolist() == [0.0, 0.9]


@pytest.mark.parametrize(
    "y, y_min, y_max, expected",
    [
        ([0.1, 0.5, 0.9], None, None, (0.0, 1.0)),  # a probability target: its whole scale
        ([0.0, 0.5, 0.9], None, None, (0.0, 1.0)),  # ... including a score of exactly 0
        ([0.1, 0.5, 1.0], None, None, (0.0, 1.0)),  # ... or exactly 1
        ([-0.2, 0.5, 0.9], None, None, (-0.2, 0.9)),  # a cosine target: its training range
        ([0.1, 0.5, 1.5], None, None, (0.1, 1.5)),  # above 1: not a probability
        ([0.1, 0.5, 0.9], 0.2, None, (0.2, 0.9)),  # a configured bound wins, the other from the data
        ([0.1, 0.5, 0.9], None, 0.8, (0.1, 0.8)),
    ],
)
def test_the_sigmoid_output_range(y, y_min, y_max, expected):
    cal = SigmoidCalibrator(y_min=y_min, y_max=y_max).fit(np.array([0.2, 0.4, 0.6]), np.array(y))
    assert (cal.y_lo_, cal.y_hi_) == pytest.approx(expected)


def test_targets_beyond_the_configured_range_count_as_its_edges():
    x, y = _noisy(5)
    cal = SigmoidCalibrator(y_min=0.2, y_max=0.6).fit(x, y)
    clipped = SigmoidCalibrator(y_min=0.2, y_max=0.6).fit(x, np.clip(y, 0.2, 0.6))
    grid = np.linspace(0, 1, 51)
    np.testing.assert_allclose(cal.predict(grid), clipped.predict(grid), atol=1e-9)


# --- the sigmoid's input scale ----------------------------------------------------------------


@pytest.mark.parametrize(
    "x, expected",
    [
        ([0.0, 0.3, 0.7], "logit"),  # probabilities, including exactly 0
        ([0.1, 0.3, 1.0], "logit"),  # ... and exactly 1
        ([0.1, 0.3, 1.5], "identity"),
        ([-0.5, 0.3, 0.7], "identity"),
    ],
)
def test_auto_input_takes_probabilities_through_the_logit(x, expected):
    cal = SigmoidCalibrator().fit(np.array(x), np.array([0.1, 0.4, 0.8]))
    assert cal.input_ == expected
    assert np.all(np.isfinite([cal.a_, cal.b_])) and np.all(np.isfinite(cal.predict(np.array([0.0, 1.0, 2.0]))))


@pytest.mark.parametrize("x", [[0.0, 0.5, 1.0], [0.2, 0.5, 0.8]])
def test_logit_input_accepts_probabilities_including_0_and_1(x):
    cal = SigmoidCalibrator(input="logit").fit(np.array(x), np.array([0.1, 0.4, 0.8]))
    assert cal.input_ == "logit" and np.isfinite(cal.a_) and np.isfinite(cal.b_)


@pytest.mark.parametrize("x", [[-0.1, 0.5, 0.9], [0.1, 0.5, 1.2], [0.1, 0.5, 2.5]])
def test_logit_input_refuses_scores_outside_0_1(x):
    with pytest.raises(ValueError, match=r"^input='logit' needs scores in \[0, 1\]$"):
        SigmoidCalibrator(input="logit").fit(np.array(x), np.array([0.1, 0.4, 0.8]))


def test_identity_input_uses_the_raw_scores_and_an_unknown_input_is_named():
    x = np.linspace(0.05, 0.95, 200)
    y = _sigmoid(3.0 * x - 1.0)
    cal = SigmoidCalibrator(input="identity", C=1e6).fit(x, y)
    assert (
        cal.input_ == "identity" and cal.a_ == pytest.approx(3.0, rel=1e-3) and cal.b_ == pytest.approx(-1.0, abs=1e-3)
    )
    with pytest.raises(ValueError, match=r"^input must be 'auto', 'logit' or 'identity', got 'probit'$"):
        SigmoidCalibrator(input="probit").fit(x, y)


def test_the_sigmoid_recovers_a_platt_map_onto_a_scale_that_is_not_0_1():
    x = np.linspace(-3, 3, 400)
    y = 2.0 + 3.0 * _sigmoid(1.5 * x - 0.5)  # the target ranges over (2, 5)
    cal = SigmoidCalibrator(C=1e6, y_min=2.0, y_max=5.0).fit(x, y)
    assert cal.a_ == pytest.approx(1.5, rel=1e-3) and cal.b_ == pytest.approx(-0.5, abs=1e-3)
    np.testing.assert_allclose(cal.predict(x), y, atol=1e-3)


def test_a_weak_increasing_relation_is_fitted_not_flattened():
    # on standardised scores the slope is well below 1: still a relation, still fitted
    rng = np.random.default_rng(6)
    x = rng.uniform(-2, 2, 3000)
    y = _sigmoid(0.3 * x)
    cal = SigmoidCalibrator(input="identity", C=1e6).fit(x, y)
    assert cal.method_ == "logistic" and cal.a_ == pytest.approx(0.3, rel=1e-3)


# --- the constant fallback --------------------------------------------------------------------


def test_no_increasing_relation_falls_back_to_the_weighted_mean():
    x = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
    y = np.array([0.9, 0.7, 0.5, 0.3, 0.1])  # decreasing: no monotone non-decreasing map but a constant
    w = np.array([1.0, 1.0, 1.0, 1.0, 6.0])
    cal = SigmoidCalibrator().fit(x, y, sample_weight=w)
    assert cal.method_ == "constant" and cal.a_ == 0.0
    weighted_mean = np.average(y, weights=w)  # on [0, 1], the target's own scale
    assert cal.b_ == pytest.approx(_logit(weighted_mean))
    np.testing.assert_allclose(cal.predict(np.array([0.0, 0.5, 1.0])), weighted_mean)


def test_constant_scores_fall_back_to_the_weighted_mean_of_the_target():
    x = np.full(4, 0.4)
    y = np.array([0.2, 0.4, 0.6, 0.8])
    w = np.array([3.0, 1.0, 1.0, 1.0])
    cal = SigmoidCalibrator().fit(x, y, sample_weight=w)
    assert cal.method_ == "constant"
    np.testing.assert_allclose(cal.predict(np.array([0.0, 1.0])), np.average(y, weights=w))


def test_a_constant_target_at_the_edge_of_its_range_stays_finite():
    # every target at y_max: the mean of the scaled target is exactly 1, whose logit is infinite;
    # the spec (and the JSON artifact) needs finite numbers
    x = np.linspace(0, 1, 5)
    cal = SigmoidCalibrator(y_min=0.0, y_max=0.8).fit(x, np.full(5, 0.8))
    assert np.isfinite(cal.b_) and cal.b_ > 20
    np.testing.assert_allclose(cal.predict(x), 0.8)
    low = SigmoidCalibrator(y_min=0.2, y_max=0.8).fit(x, np.full(5, 0.2))
    assert np.isfinite(low.b_) and low.b_ < -20


def test_an_empty_output_range_predicts_its_one_value():
    x, y = _noisy(7)
    cal = SigmoidCalibrator(y_min=0.5, y_max=0.5).fit(x, y)
    np.testing.assert_allclose(cal.predict(np.linspace(-1, 2, 7)), 0.5)


# --- auto -------------------------------------------------------------------------------------


def test_auto_without_groups_cross_validates_pairs_and_picks_a_family():
    x, y = _noisy(8, 50)
    auto = AutoCalibrator(n_splits=5).fit(x, y)
    assert set(auto.cv_mse_) == {"identity", "poly", "isotonic", "sigmoid"}
    assert auto.chosen_ == min(auto.cv_mse_, key=auto.cv_mse_.get) != "identity"


class Family(enum.Enum):
    POLY = "poly"
    ISOTONIC = "isotonic"


def test_auto_candidates_may_be_config_enums_and_identity_is_always_among_them():
    x, y = _noisy(9, 40)
    auto = AutoCalibrator(candidates=(Family.POLY, Family.ISOTONIC), n_splits=4).fit(
        x, y, groups=np.repeat(np.arange(8), 5)
    )
    assert list(auto.cv_mse_) == ["identity", "poly", "isotonic"]


def test_an_unknown_candidate_is_named_with_the_choices():
    x, y = _noisy()
    with pytest.raises(
        ValueError,
        match=r"^unknown candidate\(s\) \['spline'\]; choose from poly, isotonic, sigmoid, "
        r"identity$",
    ):
        AutoCalibrator(candidates=("poly", "spline")).fit(x, y)


def test_auto_passes_its_parameters_to_the_families_it_tries():
    x, y = _noisy(10, 60)
    groups = np.repeat(np.arange(12), 5)
    poly = AutoCalibrator(candidates=("poly",), degree=1, y_min=0.1, y_max=0.7).fit(x, y, groups=groups)
    assert poly.chosen_ == "poly" and poly.best_.get_params()["degree"] == 1 and len(poly.best_.coef_) <= 2
    assert (poly.best_.y_lo_, poly.best_.y_hi_) == (0.1, 0.7)
    assert poly.predict(np.array([-1.0]))[0] >= 0.1 and poly.predict(np.array([2.0]))[0] <= 0.7
    sig = AutoCalibrator(candidates=("sigmoid",), C=5.0, y_min=0.0, y_max=0.9).fit(x, y, groups=groups)
    assert sig.chosen_ == "sigmoid" and sig.best_.get_params()["C"] == 5.0
    assert (sig.best_.y_lo_, sig.best_.y_hi_) == (0.0, 0.9)
    assert sig.get_params()["y_min"] == 0.0 and sig.get_params()["y_max"] == 0.9


def test_auto_is_reproducible_and_follows_its_random_state():
    x, y = _noisy(11, 60)
    groups = np.repeat(np.arange(12), 5)
    a = AutoCalibrator(n_splits=3, random_state=7).fit(x, y, groups=groups)
    b = AutoCalibrator(n_splits=3, random_state=7).fit(x, y, groups=groups)
    assert a.cv_mse_ == b.cv_mse_
    folds = [test for _, test in grouped_splits(x.size, groups, 3, seed=7)]
    errors = np.empty_like(y)
    for test in folds:
        train = np.setdiff1d(np.arange(x.size), test)
        errors[test] = IsotonicCalibrator().fit(x[train], y[train]).predict(x[test]) - y[test]
    assert a.cv_mse_["isotonic"] == pytest.approx(np.mean(errors**2), rel=1e-12)
    c = AutoCalibrator(n_splits=3, random_state=8).fit(x, y, groups=groups)
    assert c.cv_mse_ != a.cv_mse_


def test_a_fold_that_would_train_on_one_pair_keeps_identity_with_a_warning_at_the_callers_line():
    x, y = np.array([0.1, 0.5, 0.9]), np.array([0.0, 0.6, 0.7])
    with pytest.warns(
        UserWarning,
        match=r"^auto calibrator: a cross-validation fold would train on fewer than 2 of 3 "
        r"pairs; keeping identity$",
    ) as caught:
        auto = AutoCalibrator(n_splits=2).fit(x, y, groups=np.array([0, 1, 1]))
    # the warning points at the caller's fit(), not inside the library (under mutmut, whose
    # trampoline adds a frame, at the trampoline: never at the calibrators module)
    assert caught[0].filename == __file__ or "mutmut" in caught[0].filename
    assert not caught[0].filename.endswith("calibrators.py")
    assert auto.chosen_ == "identity" and auto.cv_mse_ == {}
    np.testing.assert_array_equal(auto.predict(np.array([0.3, 5.0])), [0.3, 5.0])


def test_folds_that_train_on_two_pairs_are_cross_validated():
    x, y = np.array([0.1, 0.5, 0.9]), np.array([0.0, 0.6, 0.7])
    auto = AutoCalibrator(n_splits=3, candidates=("isotonic",)).fit(x, y)  # 3 folds of 2 training pairs
    assert set(auto.cv_mse_) == {"identity", "isotonic"}


# --- cross-validation splits ------------------------------------------------------------------


def test_pair_splits_shuffle_and_cover_every_pair_once():
    splits = grouped_splits(20, None, 4, seed=3)
    tests = [set(test.tolist()) for _, test in splits]
    assert len(splits) == 4 and sorted(i for t in tests for i in t) == list(range(20))
    assert all(set(train.tolist()) == set(range(20)) - t for (train, _), t in zip(splits, tests))
    assert any(t != set(range(min(t), min(t) + len(t))) for t in tests)  # shuffled, not contiguous blocks
    again = grouped_splits(20, None, 4, seed=3)
    assert all((a[1] == b[1]).all() for a, b in zip(splits, again))
    other = grouped_splits(20, None, 4, seed=4)
    assert any(set(a[1].tolist()) != set(b[1].tolist()) for a, b in zip(splits, other))


def test_there_are_never_more_folds_than_pairs_or_queries():
    assert len(grouped_splits(3, None, 5, seed=0)) == 3
    assert len(grouped_splits(2, None, 5, seed=0)) == 2
    groups = np.array([0, 0, 1, 1, 2, 2, 2])
    splits = grouped_splits(7, groups, 5, seed=0)
    assert len(splits) == 3 and sorted(sorted(set(groups[test].tolist())) for _, test in splits) == [[0], [1], [2]]
    two = grouped_splits(4, np.array([0, 0, 1, 1]), 5, seed=0)
    assert len(two) == 2


def test_query_splits_are_reproducible_for_a_seed():
    groups = np.repeat(np.arange(10), 3)
    a = grouped_splits(30, groups, 3, seed=1)
    b = grouped_splits(30, groups, 3, seed=1)
    assert all((x[1] == y[1]).all() for x, y in zip(a, b))
    c = grouped_splits(30, groups, 3, seed=2)
    assert any(set(x[1].tolist()) != set(y[1].tolist()) for x, y in zip(a, c))


@pytest.mark.parametrize(
    "n, groups, message",
    [
        (1, None, r"^need at least 2 samples for cross-validation$"),
        (4, np.zeros(4), r"^need at least 2 queries for grouped cross-validation, got 1$"),
    ],
)
def test_too_little_to_split_is_refused(n, groups, message):
    with pytest.raises(ValueError, match=message):
        grouped_splits(n, groups, 5, seed=0)


# --- the polynomial ---------------------------------------------------------------------------


@pytest.mark.parametrize("degree", [0, -1, 11, 2.5, "3", True])
def test_a_degree_outside_1_to_10_is_named(degree):
    # the range of pipeline.calibration.ranges.DEGREE, which calibrator.degree reads too
    x, y = _noisy()
    with pytest.raises(ValueError, match=rf"^degree must be an integer >= 1 and <= 10, got {degree!r}$"):
        PolynomialCalibrator(degree=degree).fit(x, y)


def test_a_straight_line_fit_never_decreases():
    # degree 1: the derivative is a constant; a decreasing least-squares line must be refused
    x = np.linspace(0, 1, 30)
    up = PolynomialCalibrator(degree=1).fit(x, 0.2 + 0.5 * x)
    assert up.method_ == "free" and up.coef_ == pytest.approx([0.2, 0.5])
    down = PolynomialCalibrator(degree=1).fit(x, 0.9 - 0.5 * x)
    assert down.method_ != "free" and np.all(np.diff(down.predict(np.linspace(0, 1, 50))) >= -1e-12)


def test_a_cubic_rising_over_the_data_is_kept_even_if_it_falls_beyond():
    # p(t) = t^3/3 - 1.5 t^2 + 2.2 t: p'(t) = t^2 - 3t + 2.2 is positive on [0, 1] (0.2 at t = 1)
    # and negative only beyond the data (-0.05 at t = 1.5, where p'' = 0): a free fit to keep
    t = np.linspace(0, 1, 200)
    y = t**3 / 3 - 1.5 * t**2 + 2.2 * t
    cal = PolynomialCalibrator().fit(t, y)
    assert cal.method_ == "free"
    np.testing.assert_allclose(cal.coef_, [0.0, 2.2, -1.5, 1 / 3], atol=1e-9)


def test_constant_scores_give_the_weighted_mean_target():
    w = np.array([1.0, 1.0, 2.0])
    cal = PolynomialCalibrator().fit(np.full(3, 0.5), np.array([0.1, 0.4, 0.7]), sample_weight=w)
    assert cal.method_ == "constant"
    np.testing.assert_allclose(cal.predict(np.array([0.0, 1.0])), np.average([0.1, 0.4, 0.7], weights=w))


# --- the logistic solver ----------------------------------------------------------------------


def test_the_slope_penalty_must_be_positive():
    from pipeline.calibration.calibrators import fit_soft_logistic

    with pytest.raises(ValueError, match=r"^C must be > 0, got 0$"):
        fit_soft_logistic(np.arange(3.0), np.array([0.1, 0.5, 0.9]), np.ones(3), 0)


@pytest.mark.parametrize("C", [1.0, 100.0])
def test_the_solver_matches_sklearn_where_the_line_search_matters(C):
    """Hard, nearly separable labels: full Newton steps overshoot, so the damping decides whether
    the solver reaches the penalised optimum."""
    from sklearn.linear_model import LogisticRegression

    from pipeline.calibration.calibrators import fit_soft_logistic

    rng = np.random.default_rng(12)
    z = rng.normal(size=200)
    u = (z + rng.normal(0, 0.05, 200) > 0.2).astype(float)
    w = rng.uniform(0.5, 2.0, 200)
    a, b = fit_soft_logistic(z, u, w, C)
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(z[:, None], u, sample_weight=w)
    assert a == pytest.approx(ref.coef_[0, 0], rel=1e-5)
    assert b == pytest.approx(ref.intercept_[0], rel=1e-5, abs=1e-7)


# --- what fit refuses and what it tells sklearn -----------------------------------------------


@pytest.mark.parametrize(
    "X, y, w, message",
    [
        ([0.1, np.nan, 0.3], [0.1, 0.2, 0.3], None, r"Input X contains NaN"),
        ([0.1, np.inf, 0.3], [0.1, 0.2, 0.3], None, r"Input X contains infinity"),
        ([0.1, 0.2, 0.3], [0.1, np.nan, 0.3], None, r"Input y contains NaN"),
        ([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [1.0, np.nan, 1.0], r"Input sample_weight contains NaN"),
        (
            [[0.1, 0.2], [0.3, 0.4]],
            [0.1, 0.2],
            None,
            r"^a calibrator takes one score column, got X with shape \(2, 2\)$",
        ),
        ([0.1, 0.2], [[0.1, 0.2], [0.3, 0.4]], None, r"^y must be 1-D, got shape \(2, 2\)$"),
        ([0.1, 0.2, 0.3], [0.1, 0.2], None, r"inconsistent numbers of samples: \[3, 2\]"),
        ([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [1.0, 1.0], r"inconsistent numbers of samples: \[3, 2\]"),
        ([0.1], [0.1], None, r"^need at least 2 samples to fit a calibrator, got 1$"),
        ([0.1, 0.2], [0.1, 0.2], [1.0, -0.5], r"^sample_weight must be non-negative$"),
    ],
)
@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_bad_input_is_refused_naming_what_is_wrong(cls, X, y, w, message):
    with pytest.raises(ValueError, match=message):
        cls().fit(np.array(X), np.array(y), sample_weight=None if w is None else np.array(w))


def test_an_empty_configured_range_the_wrong_way_round_is_named():
    with pytest.raises(ValueError, match=r"^y_min \(0\.8\) must not exceed y_max \(0\.2\)$"):
        PolynomialCalibrator(y_min=0.8, y_max=0.2).fit(np.array([0.1, 0.5]), np.array([0.3, 0.4]))


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_one_column_and_zero_weights_are_accepted(cls):
    x, y = _noisy(13, 40)
    w = np.ones(x.size)
    w[::4] = 0.0  # a weight of 0 drops a pair; it is not an error
    cal = cls().fit(x[:, None], y, sample_weight=w)
    assert cal.n_features_in_ == 1
    np.testing.assert_array_equal(cal.predict(x[:, None]), cal.predict(x))
    np.testing.assert_array_equal(cal.transform(x), cal.predict(x))  # a step of an sklearn Pipeline
    tags = cal.__sklearn_tags__()
    assert tags.input_tags.one_d_array is True and tags.input_tags.two_d_array is False


def test_make_calibrator_passes_each_family_only_its_parameters_and_names_the_choices():
    from pipeline.calibration.calibrators import AutoCalibrator as Auto
    from pipeline.calibration.calibrators import calibrator_fit_params, make_calibrator

    auto = make_calibrator("auto", n_splits=3, degree=2, tol=1e-6, input="logit")
    assert isinstance(auto, Auto) and auto.get_params()["n_splits"] == 3 and auto.get_params()["degree"] == 2
    poly = make_calibrator("poly", degree=2, tol=1e-6, n_splits=3)
    assert poly.get_params() == {"degree": 2, "y_min": None, "y_max": None, "tol": 1e-6}
    with pytest.raises(
        ValueError,
        match=r"^unknown calibrator family 'spline'; choose from auto, poly, isotonic, sigmoid, "
        r"identity$",
    ):
        make_calibrator("spline")
    groups = np.arange(4)
    assert calibrator_fit_params(auto, groups) == {"groups": groups}
    assert calibrator_fit_params(poly, groups) == {}


# --- the polynomial's fallbacks ---------------------------------------------------------------


def _turning_cubic(scale: float = 1.0, n: int = 60):
    t = np.linspace(0, 1, n)
    return t, scale * (t + 3 * (t - 0.5) ** 3 * -1.2)  # rises, flattens and dips in the middle


def test_a_small_target_range_still_gets_the_monotone_fit_not_a_constant():
    t, y = _turning_cubic(scale=0.05)
    cal = PolynomialCalibrator().fit(t, y)
    assert cal.method_ == "bernstein" and np.ptp(cal.predict(t)) > 0.01


def test_the_monotone_fallback_honours_weights():
    t, y = _turning_cubic()
    w = np.random.default_rng(14).integers(1, 4, t.size).astype(float)
    weighted = PolynomialCalibrator().fit(t, y, sample_weight=w)
    repeated = PolynomialCalibrator().fit(np.repeat(t, w.astype(int)), np.repeat(y, w.astype(int)))
    assert weighted.method_ == repeated.method_ == "bernstein"
    np.testing.assert_allclose(weighted.predict(t), repeated.predict(t), atol=1e-9)
    assert np.max(np.abs(weighted.predict(t) - PolynomialCalibrator().fit(t, y).predict(t))) > 1e-4


def test_no_increasing_relation_at_all_is_the_weighted_mean_constant():
    t = np.linspace(0, 1, 20)
    y = 1 - t
    w = np.linspace(1, 3, 20)
    cal = PolynomialCalibrator().fit(t, y, sample_weight=w)
    assert cal.method_ == "constant"
    np.testing.assert_allclose(cal.predict(np.array([0.0, 0.5, 1.0])), np.average(y, weights=w))


@pytest.mark.parametrize(
    "y_of_t, method",
    [
        (lambda t: t**3, "free"),  # p'(0) = 0: flat is not decreasing
        (lambda t: 1000 * t**3 - 5e-7 * t, "free"),  # p'(0) = -5e-7, within tol x the target's range (1e-6)
        (lambda t: 1.5 * t**3 - 1.8e-9 * t, "bernstein"),  # p'(0) = -1.8e-9, beyond tol x 1.5
    ],
)
def test_the_derivative_tolerance_is_relative_to_the_target_range(y_of_t, method):
    t = np.linspace(0, 1, 400)
    assert PolynomialCalibrator().fit(t, y_of_t(t)).method_ == method


# --- the sigmoid's constant fallback at its edges ---------------------------------------------


def test_a_constant_score_with_every_target_at_the_top_stays_finite():
    cal = SigmoidCalibrator(y_min=0.0, y_max=0.8).fit(np.full(4, 0.3), np.full(4, 0.8))
    assert cal.method_ == "constant" and np.isfinite(cal.b_) and cal.b_ > 20
    np.testing.assert_allclose(cal.predict(np.array([0.0, 1.0])), 0.8)


def test_an_empty_output_range_has_finite_parameters():
    x, y = _noisy(15)
    cal = SigmoidCalibrator(y_min=0.5, y_max=0.5).fit(x, y)
    assert np.isfinite(cal.a_) and np.isfinite(cal.b_)  # the JSON artifact needs finite numbers


def test_integer_labels_are_judged_as_floats():
    # a reference of 0/1 relevance labels: held-out errors must not be truncated to integers
    x = np.linspace(0, 1, 40)
    y = (x > 0.5).astype(int)
    groups = np.repeat(np.arange(10), 4)
    ints = AutoCalibrator().fit(x, y, groups=groups)
    floats = AutoCalibrator().fit(x, y.astype(float), groups=groups)
    assert ints.cv_mse_ == floats.cv_mse_ and 0 < ints.cv_mse_["identity"] < 0.2
