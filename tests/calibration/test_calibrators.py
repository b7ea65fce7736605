"""Calibrators: monotone and clipped for any data, scikit-learn conventions, spec parity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.base import clone
from sklearn.isotonic import IsotonicRegression
from sklearn.utils import estimator_checks as checks

from pipeline.calibration.calibrators import (
    AutoCalibrator,
    IdentityCalibrator,
    IsotonicCalibrator,
    PolynomialCalibrator,
    SigmoidCalibrator,
    _min_derivative_01,
    make_calibrator,
)
from pipeline.runtime.spec import compile_calibrator
from tests.support import property_examples

FAMILIES = ["poly", "isotonic", "sigmoid", "auto"]


# scikit-learn's generic checks draw multi-feature 2-D X, which a one-score calibrator rejects by
# design (like IsotonicRegression, whose tags say one_d_array only: check_estimator then skips all
# data checks). These are the checks that apply to a 1-D estimator; the data-driven conventions
# (fit returns self, not-fitted errors, clone) are tested below with 1-D data.
APPLICABLE_CHECKS = [
    checks.check_no_attributes_set_in_init,
    checks.check_parameters_default_constructible,
    checks.check_get_params_invariance,
    checks.check_set_params,
    checks.check_estimator_repr,
    checks.check_estimator_cloneable,
    checks.check_do_not_raise_errors_in_init_or_set_params,
    checks.check_valid_tag_types,
]
ESTIMATORS = [
    PolynomialCalibrator(),
    IsotonicCalibrator(),
    SigmoidCalibrator(),
    IdentityCalibrator(),
    AutoCalibrator(n_splits=3),
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("check", APPLICABLE_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_estimator_checks(estimator, check):
    check(type(estimator).__name__, clone(estimator))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_fit_returns_self_and_is_idempotent(estimator):
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, 60)
    y = x**2 + rng.normal(0, 0.05, 60)
    groups = np.arange(60) % 6
    params = {"groups": groups} if isinstance(estimator, AutoCalibrator) else {}
    est = clone(estimator)
    assert est.fit(x, y, **params) is est
    first = est.predict(x)
    np.testing.assert_array_equal(est.fit(x, y, **params).predict(x), first)
    np.testing.assert_array_equal(est.predict(x[:, None]), first)  # one column == 1-D


finite = st.floats(min_value=-50, max_value=50, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def paired(draw):
    n = draw(st.integers(min_value=4, max_value=60))
    x = draw(arrays(np.float64, n, elements=finite))
    kind = draw(st.sampled_from(["random", "increasing", "decreasing", "wiggly", "probabilities"]))
    noise = draw(arrays(np.float64, n, elements=st.floats(-1, 1, allow_nan=False)))
    if kind == "random":
        y = draw(arrays(np.float64, n, elements=finite))
    elif kind == "increasing":
        y = np.tanh(x / 10) + 0.1 * noise
    elif kind == "decreasing":
        y = -x + noise
    elif kind == "wiggly":
        y = np.sin(x) * 3 + noise
    else:
        x = 1 / (1 + np.exp(-x / 5))
        y = np.clip(x**3 + 0.1 * noise, 0, 1)
    groups = np.arange(n) % max(2, n // 3)
    return x, y, groups


def _fit(family, x, y, groups):
    cal = make_calibrator(family, n_splits=3)
    return cal.fit(x, y, groups=groups) if family == "auto" else cal.fit(x, y)


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=property_examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=paired())
def test_monotone_and_clipped_everywhere(family, data):
    x, y, groups = data
    cal = _fit(family, x, y, groups)
    span = max(float(np.ptp(x)), 1.0)
    grid = np.sort(np.concatenate([np.linspace(x.min() - span, x.max() + span, 2001), x]))
    out = cal.predict(grid)
    assert np.all(np.isfinite(out))
    assert np.all(np.diff(out) >= -1e-9 * max(1.0, float(np.ptp(y))))
    chosen = cal.best_ if family == "auto" else cal
    if not isinstance(chosen, IdentityCalibrator):
        assert out.min() >= chosen.y_lo_ - 1e-12 and out.max() <= chosen.y_hi_ + 1e-12


def test_poly_on_a_subnormal_score_range_stays_finite():
    # found by hypothesis: 1/width overflowed to inf and 0 * inf gave NaN inside predict
    x = np.array([0.0, 1e-313, 2e-313, 3e-313])
    y = np.array([0.0, 0.1, 0.2, 0.3])
    cal = PolynomialCalibrator().fit(x, y)
    with np.errstate(all="raise"):
        out = cal.predict(np.array([-1.0, 0.0, 1.5e-313, 3e-313, 1.0]))
    assert np.all(np.isfinite(out)) and np.all(np.diff(out) >= 0)
    assert out[0] == pytest.approx(0.0, abs=1e-6) and out[-1] == pytest.approx(0.3, abs=1e-6)


def test_free_cubic_that_turns_around_falls_back_to_monotone_bernstein_fit():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 1, 400))
    y = 1 / (1 + np.exp(-40 * (x - 0.5))) + rng.normal(0, 0.01, x.size)  # monotone step: a free cubic overshoots
    free = np.polynomial.polynomial.Polynomial.fit(x, y, 3).convert(domain=[0, 1])
    assert _min_derivative_01(free.coef) < 0  # the unconstrained cubic reverses order
    cal = PolynomialCalibrator().fit(x, y)
    assert cal.method_ == "bernstein"
    assert _min_derivative_01(cal.coef_) >= -1e-12
    assert np.corrcoef(cal.predict(x), y)[0, 1] > 0.9


def test_monotone_data_keeps_the_free_least_squares_fit():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 300)
    y = 0.2 + 0.5 * x + 0.2 * x**2 + rng.normal(0, 0.01, 300)
    cal = PolynomialCalibrator().fit(x, y)
    assert cal.method_ == "free"
    t = (x - cal.x_min_) / (cal.x_max_ - cal.x_min_)
    lstsq = np.polynomial.polynomial.polyfit(t, y, 3)
    np.testing.assert_allclose(cal.coef_, lstsq, atol=1e-8)


def test_spec_reproduces_underlying_sklearn_isotonic():
    rng = np.random.default_rng(2)
    x = rng.normal(size=200)
    y = np.clip(x + rng.normal(0, 0.5, 200), -1, 2)
    cal = IsotonicCalibrator().fit(x, y)
    reference = IsotonicRegression(out_of_bounds="clip").fit(x, y)
    grid = np.linspace(-4, 4, 500)
    np.testing.assert_allclose(compile_calibrator(cal.to_spec())(grid), reference.predict(grid), atol=1e-12)


def test_sigmoid_recovers_a_platt_map_and_refuses_negative_slopes():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.001, 0.999, 2000)
    logit = np.log(x / (1 - x))
    y = 1 / (1 + np.exp(-(0.7 * logit - 0.4)))
    cal = SigmoidCalibrator(C=1e6).fit(x, y)
    assert cal.input_ == "logit"
    assert cal.a_ == pytest.approx(0.7, rel=1e-3) and cal.b_ == pytest.approx(-0.4, abs=1e-3)
    flipped = SigmoidCalibrator().fit(x, 1 - y)
    assert flipped.method_ == "constant" and flipped.a_ == 0.0
    assert np.ptp(flipped.predict(x)) == 0.0


def test_outputs_clipped_to_configured_range_and_inputs_clamped_to_training_range():
    x = np.linspace(0, 1, 50)
    clipped = PolynomialCalibrator(y_min=0.1, y_max=0.8).fit(x, x)
    assert clipped.predict(np.array([-5.0]))[0] == pytest.approx(0.1)
    assert clipped.predict(np.array([5.0]))[0] == pytest.approx(0.8)
    # a clip range wide enough that only the input clamp can hold the curve at the training edge
    wide = PolynomialCalibrator(y_min=-10.0, y_max=10.0).fit(x, x)
    assert wide.predict(np.array([2.0]))[0] == pytest.approx(1.0, abs=1e-9)  # f(1), not f(2) = 2
    assert wide.predict(np.array([-3.0]))[0] == pytest.approx(0.0, abs=1e-9)  # f(0), not f(-3)


def test_auto_is_not_worse_than_identity_on_fresh_data_when_scores_already_agree():
    """Scores that already agree up to noise: whatever auto picks must not predict fresh data from
    the same process worse than leaving the scores alone (identity)."""
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, 40)
    y = x + rng.normal(0, 0.001, 40)
    auto = AutoCalibrator(n_splits=5).fit(x, y, groups=np.repeat(np.arange(10), 4))
    fresh_x = rng.uniform(0.05, 0.95, 2000)
    fresh_y = fresh_x + rng.normal(0, 0.001, 2000)
    assert np.mean((auto.predict(fresh_x) - fresh_y) ** 2) <= 1.2 * np.mean((fresh_x - fresh_y) ** 2)


def test_an_exact_tie_in_held_out_error_goes_to_identity(monkeypatch):
    """A candidate that predicts exactly what identity predicts has exactly identity's held-out
    error: identity must win the tie even when the other is listed first."""
    from pipeline.calibration import calibrators

    real = calibrators.make_calibrator
    monkeypatch.setattr(
        calibrators,
        "make_calibrator",
        lambda family, **kw: real("identity", **kw) if family == "poly" else real(family, **kw),
    )
    x = np.linspace(0, 1, 40)
    auto = AutoCalibrator(candidates=("poly", "identity"), n_splits=5).fit(x, x**2, groups=np.repeat(np.arange(10), 4))
    assert auto.cv_mse_["poly"] == auto.cv_mse_["identity"] > 0  # a real tie, not identity being better
    assert auto.chosen_ == "identity"


def test_auto_with_one_query_keeps_identity_and_warns():
    with pytest.warns(UserWarning, match="identity"):
        auto = AutoCalibrator().fit(np.arange(5.0), np.arange(5.0) ** 2, groups=np.zeros(5))
    assert auto.chosen_ == "identity"


def test_clone_and_params_follow_sklearn_conventions():
    cal = PolynomialCalibrator(degree=5, y_min=0.0)
    twin = clone(cal)
    assert twin.get_params() == cal.get_params() and not hasattr(twin, "coef_")
    with pytest.raises(Exception, match="not fitted"):
        cal.predict(np.array([0.5]))


@pytest.mark.parametrize("bad", [np.ones((5, 2)), np.array([np.nan, 1, 2, 3.0])])
def test_bad_input_rejected(bad):
    with pytest.raises(ValueError):
        PolynomialCalibrator().fit(bad, np.arange(bad.shape[0], dtype=float))


def test_unknown_family_is_named():
    with pytest.raises(ValueError, match="cubic.*auto, poly"):
        make_calibrator("cubic")


@pytest.mark.parametrize("C", [0.01, 0.1, 1.0, 100.0])
def test_soft_logistic_solver_equals_sklearn_logistic_regression_on_soft_labels(C):
    from sklearn.linear_model import LogisticRegression

    from pipeline.calibration.calibrators import fit_soft_logistic

    rng = np.random.default_rng(6)
    z = rng.normal(size=300)
    u = 1 / (1 + np.exp(-(1.5 * z + 0.3 + rng.normal(0, 0.5, 300))))
    w = rng.uniform(0.5, 2.0, 300)
    a, b = fit_soft_logistic(z, u, w, C)
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(
        np.concatenate([z, z])[:, None], np.r_[np.ones(300), np.zeros(300)], sample_weight=np.r_[w * u, w * (1 - u)]
    )
    assert a == pytest.approx(ref.coef_[0, 0], rel=1e-5, abs=1e-7)
    assert b == pytest.approx(ref.intercept_[0], rel=1e-5, abs=1e-7)


def test_soft_logistic_stays_finite_on_separable_hard_labels():
    from pipeline.calibration.calibrators import fit_soft_logistic

    z = np.linspace(-1, 1, 50)
    a, b = fit_soft_logistic(z, (z > 0).astype(float), np.ones(50), C=100.0)
    assert np.isfinite(a) and a > 0 and np.isfinite(b)
