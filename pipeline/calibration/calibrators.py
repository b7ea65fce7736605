"""Monotone score calibrators as scikit-learn estimators.

Every calibrator maps one local score to the reference (API) scale and is monotone
non-decreasing everywhere, so it never reverses the order of two documents:

* inputs are clamped to the training range ``[x_min_, x_max_]`` (constant beyond it), so no
  extrapolated polynomial can turn around outside the data;
* inside the range each family guarantees monotonicity in its own way (documented per class);
* outputs are clipped to ``[y_lo_, y_hi_]`` (clipping is itself non-decreasing).

Applying a fitted calibrator goes through :func:`pipeline.runtime.spec.compile_calibrator` on the spec
returned by ``to_spec()`` -- the same code the pickle-free inference path runs.

Conventions follow scikit-learn: ``__init__`` only stores parameters, ``fit`` validates and
returns ``self``, fitted state ends in ``_``, ``check_is_fitted`` guards ``predict``. X is 1-D
(or one column), like :class:`sklearn.isotonic.IsotonicRegression`.
"""

from __future__ import annotations

import warnings
from math import comb
from typing import Any

import numpy as np
from numpy.polynomial import polynomial as P
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GroupKFold, KFold
from sklearn.preprocessing import PolynomialFeatures
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted

from pipeline.calibration.groups import query_codes
from pipeline.calibration.nnls import MAX_UNKNOWNS, positive_regression
from pipeline.calibration.ranges import CV_FOLDS, DEGREE, SIGMOID_C
from pipeline.runtime.spec import compile_calibrator

__all__ = [
    "AutoCalibrator",
    "IdentityCalibrator",
    "IsotonicCalibrator",
    "PolynomialCalibrator",
    "SigmoidCalibrator",
    "make_calibrator",
]

_LOGIT_EPS = 1e-12


def _as_1d(X: Any) -> np.ndarray:
    """X as a 1-D float array; one column is taken as 1-D (check_array refuses scalars and 3-D)."""
    arr = check_array(X, input_name="X", dtype=np.float64, ensure_2d=False)
    if arr.ndim == 2:
        if arr.shape[1] != 1:
            raise ValueError(f"a calibrator takes one score column, got X with shape {arr.shape}")
        arr = arr[:, 0]
    return arr


class _MonotoneCalibrator(TransformerMixin, RegressorMixin, BaseEstimator):
    """Shared validation, range bookkeeping and spec-based prediction."""

    def _validate_fit(self, X, y, sample_weight=None):
        x = _as_1d(X)
        y = check_array(y, input_name="y", dtype=np.float64, ensure_2d=False)
        if y.ndim != 1:
            raise ValueError(f"y must be 1-D, got shape {y.shape}")
        check_consistent_length(x, y)
        if sample_weight is not None:
            sample_weight = check_array(sample_weight, input_name="sample_weight", dtype=np.float64, ensure_2d=False)
            check_consistent_length(x, sample_weight)
            if np.any(sample_weight < 0):
                raise ValueError("sample_weight must be non-negative")
        if x.shape[0] < 2:
            raise ValueError(f"need at least 2 samples to fit a calibrator, got {x.shape[0]}")
        self.n_features_in_ = 1
        self.x_min_, self.x_max_ = float(x.min()), float(x.max())
        lo = float(y.min()) if getattr(self, "y_min", None) is None else float(self.y_min)
        hi = float(y.max()) if getattr(self, "y_max", None) is None else float(self.y_max)
        if lo > hi:
            raise ValueError(f"y_min ({lo}) must not exceed y_max ({hi})")
        self.y_lo_, self.y_hi_ = lo, hi
        return x, y, sample_weight

    def to_spec(self) -> dict[str, Any]:
        """Describe the fitted calibrator as a JSON-able spec (each family defines it).

        Returns
        -------
        dict
            A ``calibrator`` entry of :mod:`pipeline.runtime.spec`.

        Raises
        ------
        NotImplementedError
            Always: the families override it.
        """
        raise NotImplementedError

    def predict(self, X) -> np.ndarray:
        """Map scores onto the reference scale.

        Runs the pickle-free spec (:func:`pipeline.runtime.spec.compile_calibrator` on
        :meth:`to_spec`), the code ``calibrator.json`` is applied with at inference, so the fitted
        estimator and the exported artifact cannot give different numbers.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, 1)
            Scores of the source the calibrator was fitted on.

        Returns
        -------
        ndarray of shape (n_samples,)
            Calibrated scores, non-decreasing in ``X``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        ValueError
            When ``X`` has more than one column or is not numeric.
        """
        check_is_fitted(self)
        return compile_calibrator(self.to_spec())(_as_1d(X))

    def transform(self, X) -> np.ndarray:
        """Map scores onto the reference scale, as :meth:`predict` does.

        A calibrator is also a transformer so that it can be a step of a scikit-learn
        ``Pipeline`` in front of another estimator.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, 1)
            Scores of the source the calibrator was fitted on.

        Returns
        -------
        ndarray of shape (n_samples,)
            Calibrated scores.
        """
        return self.predict(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = False
        return tags


class IdentityCalibrator(_MonotoneCalibrator):
    """Pass scores through unchanged (no clipping): the baseline every calibrator must beat.

    :class:`AutoCalibrator` always includes it, so ``auto`` never exports a curve that is worse
    than leaving the scores alone on held-out data. It takes no parameters.

    Attributes
    ----------
    n_features_in_ : int
        Always 1.
    x_min_, x_max_, y_lo_, y_hi_ : float
        Training ranges, recorded for symmetry with the other families (not applied).

    Examples
    --------
    >>> import numpy as np
    >>> IdentityCalibrator().fit([0.2, 0.8], [0.1, 0.9]).predict(np.array([5.0]))
    array([5.])
    """

    def fit(self, X, y, sample_weight=None):
        """Check the training data; there is nothing to learn.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, 1)
            Local scores.
        y : array-like of shape (n_samples,)
            Reference scores.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; accepted for a uniform ``fit`` signature.

        Returns
        -------
        self : object
            The fitted calibrator.

        Raises
        ------
        ValueError
            On fewer than 2 samples, mismatched lengths or negative weights, like every family.
        """
        self._validate_fit(X, y, sample_weight)
        return self

    def to_spec(self) -> dict[str, Any]:
        """Describe the calibrator for ``calibrator.json``.

        Returns
        -------
        dict
            ``{"family": "identity"}``.
        """
        check_is_fitted(self)
        return {"family": "identity"}


def _min_derivative_01(coef: np.ndarray) -> float:
    """Exact minimum of p'(t) on [0, 1] for power-basis ``coef`` (endpoints + roots of p'')."""
    d1 = P.polyder(coef)
    if d1.shape[0] == 0:
        return 0.0
    candidates = [0.0, 1.0]
    d2 = P.polyder(d1)
    if d2.shape[0] > 0 and np.any(d2 != 0):
        roots = P.polyroots(d2)
        candidates += [float(r.real) for r in np.atleast_1d(roots) if abs(r.imag) < 1e-12 and 0.0 < r.real < 1.0]
    return float(np.min(P.polyval(np.asarray(candidates), d1)))


def _bernstein_power_basis(degree: int) -> np.ndarray:
    """Row k = power-basis coefficients of the Bernstein polynomial B_{k,degree}(t)."""
    rows = np.zeros((degree + 1, degree + 1))
    for k in range(degree + 1):
        one_minus_t_pow = P.polypow([1.0, -1.0], degree - k)
        rows[k, k:] = comb(degree, k) * one_minus_t_pow
    return rows


class PolynomialCalibrator(_MonotoneCalibrator):
    """Fit a monotone polynomial map (third order by default) of the score onto the reference.

    How monotonicity is guaranteed: the score is rescaled to ``t`` in [0, 1] over the training
    range and an unconstrained least-squares polynomial is fitted first. Its derivative's exact
    minimum on [0, 1] is computed (endpoints and the real roots of the second derivative). If it
    is negative -- a free cubic turned around inside the data, which would reverse document
    order -- the fit falls back to a polynomial of the same degree in the Bernstein basis with
    non-decreasing coefficients (a sufficient condition for a non-decreasing polynomial on
    [0, 1]), fitted as non-negative least squares (``LinearRegression(positive=True)`` on
    cumulative Bernstein features). ``method_`` records which fit was kept.

    Parameters
    ----------
    degree : int, default=3
        Polynomial degree, in :data:`pipeline.calibration.ranges.DEGREE` (1 to 10; the config's
        ``calibrator.degree`` reads the same range). Low degrees are the point: the map should
        bend, not follow the noise.
    y_min, y_max : float or None, default=None
        Output clip range; ``None`` uses the target's training range, so the calibrated score
        never leaves the values the reference was seen to take.
    tol : float, default=1e-9
        Slack (relative to the target range) when checking the derivative's sign, so rounding
        noise on a flat stretch does not force the constrained fit.

    Attributes
    ----------
    coef_ : ndarray of shape (degree + 1,)
        Power-basis coefficients in ``t = (x - x_min_) / (x_max_ - x_min_)``.
    method_ : {"free", "bernstein", "constant"}
        Which fit was kept: the unconstrained one, the monotone Bernstein fallback, or a
        constant (no spread in the scores or the target, or no increasing relation).
    n_features_in_ : int
        Always 1.
    x_min_, x_max_ : float
        Training range of the scores; inputs are clamped to it.
    y_lo_, y_hi_ : float
        Output clip range actually applied.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 1, 50); y = x ** 2
    >>> cal = PolynomialCalibrator().fit(x, y)
    >>> bool(np.all(np.diff(cal.predict(np.linspace(-1, 2, 100))) >= 0))
    True
    """

    def __init__(self, degree: int = 3, y_min: float | None = None, y_max: float | None = None, tol: float = 1e-9):
        self.degree = degree
        self.y_min = y_min
        self.y_max = y_max
        self.tol = tol

    def fit(self, X, y, sample_weight=None):
        """Fit the polynomial, falling back to the monotone Bernstein fit when the free one turns down.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, 1)
            Local scores.
        y : array-like of shape (n_samples,)
            Reference scores for the same pairs.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the least-squares fit.

        Returns
        -------
        self : object
            The fitted calibrator.

        Raises
        ------
        ValueError
            When ``degree`` is outside :data:`~pipeline.calibration.ranges.DEGREE`, ``y_min``
            exceeds ``y_max``, or the data are unusable (fewer than 2 samples, lengths differ,
            negative weights).
        """
        x, y, w = self._validate_fit(X, y, sample_weight)
        DEGREE.check("degree", self.degree)
        degree = int(self.degree)
        width = self.x_max_ - self.x_min_
        if width <= 0 or np.ptp(y) == 0:
            self.coef_ = np.array([float(np.average(y, weights=w))])
            self.method_ = "constant"
            return self
        t = ((x - self.x_min_) / width)[:, None]
        features = PolynomialFeatures(degree=degree, include_bias=False)
        free = LinearRegression().fit(features.fit_transform(t), y, sample_weight=w)
        coef = np.concatenate([[free.intercept_], free.coef_])
        slack = -self.tol * max(1.0, float(np.ptp(y)))
        if _min_derivative_01(coef) >= slack:
            self.coef_, self.method_ = coef, "free"
            return self
        basis = _bernstein_power_basis(degree)  # (degree+1, degree+1)
        bern = P.polyvander(t[:, 0], degree) @ basis.T  # B_k(t) for every sample
        cumulative = np.cumsum(bern[:, ::-1], axis=1)[:, ::-1][:, 1:]  # F_j = sum_{k>=j} B_k, j>=1
        if degree <= MAX_UNKNOWNS:  # the same NNLS from the normal equations: one pass, not scipy's on every row
            intercept, slopes = positive_regression(cumulative, y, w)
        else:
            nnls = LinearRegression(positive=True).fit(cumulative, y, sample_weight=w)
            intercept, slopes = nnls.intercept_, nnls.coef_
        if not np.any(slopes > 0):  # no increasing relation at all
            self.coef_ = np.array([float(np.average(y, weights=w))])
            self.method_ = "constant"
            return self
        bern_coef = intercept + np.concatenate([[0.0], np.cumsum(slopes)])
        self.coef_ = bern_coef @ basis
        self.method_ = "bernstein"
        return self

    def to_spec(self) -> dict[str, Any]:
        """Describe the fitted polynomial for ``calibrator.json``.

        Returns
        -------
        dict
            ``{"family": "poly", "x_range", "y_range", "coef"}`` (see :mod:`pipeline.runtime.spec`).
        """
        check_is_fitted(self)
        return {
            "family": "poly",
            "x_range": [self.x_min_, self.x_max_],
            "y_range": [self.y_lo_, self.y_hi_],
            "coef": [float(c) for c in self.coef_],
        }


class IsotonicCalibrator(_MonotoneCalibrator):
    """Fit isotonic regression (``IsotonicRegression(increasing=True, out_of_bounds="clip")``).

    Monotone by construction; flexible but step-shaped, so it needs more data than ``poly`` or
    ``sigmoid`` and can create ties (which rank metrics then see).

    Parameters
    ----------
    y_min, y_max : float or None, default=None
        Output range; ``None`` uses the target's training range.

    Attributes
    ----------
    knots_x_, knots_y_ : ndarray
        The fitted piecewise-linear interpolation knots.
    n_features_in_ : int
        Always 1.
    x_min_, x_max_ : float
        Training range of the scores.
    y_lo_, y_hi_ : float
        Output range actually applied.
    """

    def __init__(self, y_min: float | None = None, y_max: float | None = None):
        self.y_min = y_min
        self.y_max = y_max

    def fit(self, X, y, sample_weight=None):
        """Fit the non-decreasing step function and keep its knots.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, 1)
            Local scores.
        y : array-like of shape (n_samples,)
            Reference scores for the same pairs.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights.

        Returns
        -------
        self : object
            The fitted calibrator.

        Raises
        ------
        ValueError
            When ``y_min`` exceeds ``y_max`` or the data are unusable.
        """
        x, y, w = self._validate_fit(X, y, sample_weight)
        iso = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=self.y_lo_, y_max=self.y_hi_)
        iso.fit(x, y, sample_weight=w)
        self.knots_x_ = np.asarray(iso.X_thresholds_, dtype=np.float64)
        self.knots_y_ = np.asarray(iso.y_thresholds_, dtype=np.float64)
        return self

    def to_spec(self) -> dict[str, Any]:
        """Describe the fitted knots for ``calibrator.json``.

        Returns
        -------
        dict
            ``{"family": "isotonic", "x", "y", "y_range"}`` (see :mod:`pipeline.runtime.spec`).
        """
        check_is_fitted(self)
        return {
            "family": "isotonic",
            "x": [float(v) for v in self.knots_x_],
            "y": [float(v) for v in self.knots_y_],
            "y_range": [self.y_lo_, self.y_hi_],
        }


class SigmoidCalibrator(_MonotoneCalibrator):
    """Fit Platt-style scaling: ``y = lo + (hi - lo) * sigmoid(a * z + b)`` with ``a >= 0``.

    ``z`` is ``logit(x)`` when the training scores lie in [0, 1] (reranker probabilities), else
    ``x`` itself (raw logits, cosines). The target is scaled to ``u`` in [0, 1] -- [0, 1] itself
    when the target is a probability, else its training range -- and (a, b) minimise the
    cross-entropy against the reference scores: ``LogisticRegression`` on soft labels, solved by
    :func:`fit_soft_logistic`. Two parameters make
    it robust on small samples. Monotone because ``a >= 0``: a negative fitted slope means no
    increasing relation, and the calibrator falls back to the constant ``mean(u)``
    (``method_ = "constant"``).

    Parameters
    ----------
    C : float, default=100.0
        Inverse L2 strength on the slope (on standardised ``z``), in
        :data:`pipeline.calibration.ranges.SIGMOID_C` (> 0). Large: the penalty only keeps
        separable data from driving the slope to infinity.
    input : {"auto", "logit", "identity"}, default="auto"
        How the score enters: ``auto`` takes the logit of scores that all lie in [0, 1].
    y_min, y_max : float or None, default=None
        Output range; ``None`` uses [0, 1] for probability targets, else the training range.

    Attributes
    ----------
    a_, b_ : float
        Slope (``>= 0``) and intercept on the original ``z`` scale.
    input_ : {"logit", "identity"}
        The input mode ``auto`` resolved to.
    method_ : {"logistic", "constant"}
        ``constant`` when the scores or the target do not vary or the fitted slope was negative.
    n_features_in_ : int
        Always 1.
    x_min_, x_max_ : float
        Training range of the scores.
    y_lo_, y_hi_ : float
        Output range actually applied.
    """

    def __init__(self, C: float = 100.0, input: str = "auto", y_min: float | None = None, y_max: float | None = None):
        self.C = C
        self.input = input
        self.y_min = y_min
        self.y_max = y_max

    def fit(self, X, y, sample_weight=None):
        """Fit slope and intercept by cross-entropy against the reference scaled to [0, 1].

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, 1)
            Local scores.
        y : array-like of shape (n_samples,)
            Reference scores for the same pairs.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights of the cross-entropy.

        Returns
        -------
        self : object
            The fitted calibrator.

        Raises
        ------
        ValueError
            When ``C`` is outside :data:`~pipeline.calibration.ranges.SIGMOID_C`, ``input`` is
            unknown, ``input="logit"`` meets scores outside [0, 1], or the data are unusable.
        """
        x, y, w = self._validate_fit(X, y, sample_weight)
        SIGMOID_C.check("C", self.C)
        if self.input not in {"auto", "logit", "identity"}:
            raise ValueError(f"input must be 'auto', 'logit' or 'identity', got {self.input!r}")
        if self.y_min is None and self.y_max is None and y.min() >= 0.0 and y.max() <= 1.0:
            self.y_lo_, self.y_hi_ = 0.0, 1.0
        mode = self.input
        if mode == "auto":
            mode = "logit" if (x.min() >= 0.0 and x.max() <= 1.0) else "identity"
        if mode == "logit" and (x.min() < 0.0 or x.max() > 1.0):
            raise ValueError("input='logit' needs scores in [0, 1]")
        self.input_ = mode
        if mode == "logit":
            p = np.clip(x, _LOGIT_EPS, 1 - _LOGIT_EPS)
            z = np.log(p / (1 - p))
        else:
            z = x
        span = self.y_hi_ - self.y_lo_
        u = np.clip((y - self.y_lo_) / span, 0.0, 1.0) if span > 0 else np.full_like(y, 0.5)
        base_w = np.ones_like(u) if w is None else w
        mean, scale = float(z.mean()), float(z.std())
        if scale == 0 or span == 0:
            self._set_constant(u, base_w)
            return self
        slope, intercept = fit_soft_logistic((z - mean) / scale, u, base_w, self.C)
        if slope < 0:
            self._set_constant(u, base_w)
            return self
        self.a_ = slope / scale
        self.b_ = intercept - slope * mean / scale
        self.method_ = "logistic"
        return self

    def _set_constant(self, u: np.ndarray, w: np.ndarray) -> None:
        m = float(np.clip(np.average(u, weights=w), 1e-12, 1 - 1e-12))
        self.a_, self.b_ = 0.0, float(np.log(m / (1 - m)))
        self.method_ = "constant"

    def to_spec(self) -> dict[str, Any]:
        """Describe the fitted sigmoid for ``calibrator.json``.

        Returns
        -------
        dict
            ``{"family": "sigmoid", "input", "a", "b", "y_range"}``, plus ``eps`` (the logit's
            clip) for logit input (see :mod:`pipeline.runtime.spec`).
        """
        check_is_fitted(self)
        spec = {
            "family": "sigmoid",
            "input": self.input_,
            "a": self.a_,
            "b": self.b_,
            "y_range": [self.y_lo_, self.y_hi_],
        }
        if self.input_ == "logit":
            spec["eps"] = _LOGIT_EPS
        return spec


def fit_soft_logistic(
    z: np.ndarray, u: np.ndarray, w: np.ndarray, C: float, max_iter: int = 100
) -> tuple[float, float]:
    """Minimise ``sum_i w_i CE(u_i, sigmoid(a z_i + b)) + a^2 / (2 C)`` by damped Newton steps.

    This is ``LogisticRegression(C=C)`` fitted on soft labels (each row as label 1 with weight
    ``w u`` and label 0 with weight ``w (1 - u)``; tested equal), solved directly in the two
    parameters: on 100k pairs scikit-learn's solvers spend ~0.1-0.3 s per fit on the duplicated
    rows, which dominated cross-validated evaluation; this takes a few milliseconds.

    Parameters
    ----------
    z : ndarray of shape (n_samples,)
        The (standardised) input.
    u : ndarray of shape (n_samples,)
        Soft labels in [0, 1].
    w : ndarray of shape (n_samples,)
        Non-negative sample weights.
    C : float
        Inverse L2 strength on the slope ``a`` (the intercept is not penalised), in
        :data:`pipeline.calibration.ranges.SIGMOID_C`.
    max_iter : int, default=100
        Newton steps at most; the objective is convex, so a handful usually suffice.

    Returns
    -------
    a : float
        The slope.
    b : float
        The intercept.

    Raises
    ------
    ValueError
        When ``C`` is not positive.
    """
    SIGMOID_C.check("C", C)
    mean_u = float(np.clip(np.average(u, weights=w), 1e-12, 1 - 1e-12))
    theta = np.array([0.0, np.log(mean_u / (1 - mean_u))])

    def objective(t: np.ndarray) -> float:
        eta = t[0] * z + t[1]
        # CE with soft label u: log(1 + e^eta) - u * eta, computed stably
        return float(np.dot(w, np.logaddexp(0.0, eta) - u * eta) + t[0] ** 2 / (2 * C))

    def derivatives(eta: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 0.5 * (1.0 + np.tanh(0.5 * eta))  # sigmoid without overflow
        r = w * (p - u)
        h = w * p * (1.0 - p)
        grad = np.array([np.dot(r, z) + t[0] / C, r.sum()])
        hz = h * z
        return grad, np.array([[np.dot(hz, z) + 1.0 / C, hz.sum()], [hz.sum(), h.sum() + 1e-12]])

    eta = theta[0] * z + theta[1]
    grad, hess = derivatives(eta, theta)
    current = None  # the objective, computed only when a step has to be checked
    for _ in range(max_iter):
        step = np.linalg.solve(hess, grad)
        candidate = theta - step
        eta_c = candidate[0] * z + candidate[1]
        grad_c, hess_c = derivatives(eta_c, candidate)
        # a full Newton step that shrinks the gradient is taken without evaluating the objective
        # (one transcendental pass instead of two); otherwise back-tracking with the Armijo test
        if not np.linalg.norm(grad_c) < np.linalg.norm(grad):
            current = objective(theta) if current is None else current
            t = 1.0
            while True:  # damped for separable data
                value = objective(candidate)
                if value <= current + 1e-4 * t * -np.dot(grad, step) or t < 1e-10:
                    break
                t *= 0.5
                candidate = theta - t * step
            eta_c = candidate[0] * z + candidate[1]
            grad_c, hess_c = derivatives(eta_c, candidate)
            current = value
            moved = t * step
        else:
            current = None
            moved = step
        theta, grad, hess = candidate, grad_c, hess_c
        if np.max(np.abs(moved)) < 1e-12 or np.linalg.norm(grad) < 1e-13 * max(1.0, float(w.sum())):
            break
    return float(theta[0]), float(theta[1])


_FAMILIES = {
    "poly": PolynomialCalibrator,
    "isotonic": IsotonicCalibrator,
    "sigmoid": SigmoidCalibrator,
    "identity": IdentityCalibrator,
}


def make_calibrator(family: str, **params: Any) -> _MonotoneCalibrator:
    """Build a calibrator by family name, passing only the parameters that family takes.

    The config names one family and sets every family's parameters; filtering here lets the
    caller pass them all (``degree`` reaches ``poly`` and ``auto``, not ``isotonic``).

    Parameters
    ----------
    family : {"auto", "poly", "isotonic", "sigmoid", "identity"}
        The calibrator family.
    **params
        Constructor parameters; those the family does not take are dropped, and their values are
        validated by the family's ``fit``, not here.

    Returns
    -------
    calibrator
        An unfitted estimator of the family.

    Raises
    ------
    ValueError
        For an unknown family.

    Examples
    --------
    >>> make_calibrator("isotonic", degree=5, y_min=0.0)
    IsotonicCalibrator(y_min=0.0)
    """
    if family == "auto":
        return AutoCalibrator(**{k: v for k, v in params.items() if k in AutoCalibrator._get_param_names()})
    try:
        cls = _FAMILIES[family]
    except KeyError:
        raise ValueError(f"unknown calibrator family {family!r}; choose from auto, {', '.join(_FAMILIES)}") from None
    return cls(**{k: v for k, v in params.items() if k in cls._get_param_names()})


def grouped_splits(n_samples: int, groups: np.ndarray | None, n_splits: int, seed: int):
    """Split rows for cross-validation so that no query is in both train and test.

    Pairs of one query share the query's difficulty and the reference's mood for it; a query on
    both sides would make held-out figures optimistic. Without groups the rows are split with
    ``KFold``. Both are shuffled by ``seed``, which has no default: every caller passes its
    configured seed.

    Parameters
    ----------
    n_samples : int
        Number of rows.
    groups : ndarray of shape (n_samples,) or None
        Query id of each row; ``None`` splits rows individually.
    n_splits : int
        Folds wanted, in :data:`pipeline.calibration.ranges.CV_FOLDS` (>= 2); reduced to the
        number of groups (or rows) when there are fewer.
    seed : int
        Shuffle seed.

    Returns
    -------
    list of tuple of ndarray
        ``(train_indices, test_indices)`` per fold.

    Raises
    ------
    ValueError
        When ``n_splits`` is outside the range, or fewer than 2 groups (rows) leave nothing to
        hold out.
    """
    CV_FOLDS.check("n_splits", n_splits)
    if groups is None:
        k = min(n_splits, n_samples)
        if k < 2:
            raise ValueError("need at least 2 samples for cross-validation")
        return list(KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n_samples)))
    n_groups = np.unique(groups).shape[0]
    k = min(n_splits, n_groups)
    if k < 2:
        raise ValueError(f"need at least 2 queries for grouped cross-validation, got {n_groups}")
    return list(GroupKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n_samples), groups=groups))


def query_subsample(groups: np.ndarray | None, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Pick the rows of whole queries that a model *choice* (family, fusion objective) is made on.

    A choice between candidates needs their held-out errors ranked, not measured to the last
    digit; on a million rows the ranking is settled long before every row is used, while each
    candidate's cross-validation costs as many fits as it has folds. The chosen candidate is
    then fitted on every row.

    Parameters
    ----------
    groups : ndarray of shape (n_samples,) or None
        Query id of each row.
    max_rows : int or None
        Most rows wanted; queries are taken in a seeded random order until it is reached (the
        last query may pass it).
    seed : int
        Seed of that order.

    Returns
    -------
    ndarray or None
        Row indices in table order, or ``None`` (use every row) when the table is within
        ``max_rows``, there is no limit, or there are no groups.
    """
    if max_rows is None or groups is None or len(groups) <= max_rows:
        return None
    codes = query_codes(groups)
    sizes = np.bincount(codes)
    order = np.random.default_rng(seed).permutation(sizes.size)
    taken = order[: int(np.searchsorted(np.cumsum(sizes[order]), max_rows)) + 1]
    keep = np.zeros(sizes.size, dtype=bool)
    keep[taken] = True
    return np.flatnonzero(keep[codes])


class AutoCalibrator(_MonotoneCalibrator):
    """Pick a family by grouped cross-validation (GroupKFold by query), then refit it on all data.

    Candidates are compared by held-out mean squared error against the target; identity is always
    among them and wins ties, so ``auto`` never picks a calibrator that is worse than identity on
    held-out data. With fewer than 2 query groups nothing can be held out and identity is kept
    (with a warning).

    Parameters
    ----------
    candidates : tuple of str, default=("poly", "isotonic", "sigmoid", "identity")
        Families to compare (enum members with a ``value`` are accepted); ``identity`` is added
        when missing.
    n_splits : int, default=5
        Cross-validation folds, in :data:`pipeline.calibration.ranges.CV_FOLDS` (>= 2).
    degree : int, default=3
        Passed to the ``poly`` candidate.
    C : float, default=100.0
        Passed to the ``sigmoid`` candidate.
    y_min, y_max : float or None, default=None
        Output range passed to every candidate.
    random_state : int, default=0
        Seed of the fold shuffle, so the choice is reproducible.
    max_rows : int or None, default=None
        Compare the candidates on at most this many rows of whole queries
        (:func:`query_subsample`), then refit the chosen one on every row; ``None`` compares on
        every row. Needs ``groups``.

    Attributes
    ----------
    chosen_ : str
        The family kept.
    cv_mse_ : dict[str, float]
        Held-out MSE of every candidate; empty when nothing could be held out.
    best_ : calibrator
        The chosen family refitted on all rows; it does the predicting.
    n_features_in_ : int
        Always 1.
    x_min_, x_max_, y_lo_, y_hi_ : float
        Training ranges (the chosen calibrator keeps its own).
    """

    def __init__(
        self,
        candidates: tuple[str, ...] = ("poly", "isotonic", "sigmoid", "identity"),
        n_splits: int = 5,
        degree: int = 3,
        C: float = 100.0,
        y_min: float | None = None,
        y_max: float | None = None,
        random_state: int = 0,
        max_rows: int | None = None,
    ):
        self.candidates = candidates
        self.n_splits = n_splits
        self.degree = degree
        self.C = C
        self.y_min = y_min
        self.y_max = y_max
        self.random_state = random_state
        self.max_rows = max_rows

    def _candidate(self, family: str) -> _MonotoneCalibrator:
        return make_calibrator(family, degree=self.degree, C=self.C, y_min=self.y_min, y_max=self.y_max)

    def fit(self, X, y, groups=None, sample_weight=None):
        """Cross-validate every candidate by query, keep the best and refit it on all rows.

        Parameters
        ----------
        X : array-like of shape (n_samples,) or (n_samples, 1)
            Local scores.
        y : array-like of shape (n_samples,)
            Reference scores for the same pairs.
        groups : array-like of shape (n_samples,), optional
            Query id of each pair; without it rows are split individually, which lets pairs of
            one query sit on both sides of a fold.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights, used by the candidates and the held-out MSE.

        Returns
        -------
        self : object
            The fitted calibrator.

        Raises
        ------
        ValueError
            For an unknown candidate, ``n_splits`` outside
            :data:`~pipeline.calibration.ranges.CV_FOLDS`, a candidate's invalid parameter
            (``degree``, ``C``), or unusable data.

        Warns
        -----
        UserWarning
            When the data cannot be cross-validated (fewer than 2 groups, a fold with fewer than
            2 training pairs); identity is kept.
        """
        x, y, w = self._validate_fit(X, y, sample_weight)
        CV_FOLDS.check("n_splits", self.n_splits)
        names = [str(getattr(c, "value", c)) for c in self.candidates]
        unknown = [n for n in names if n not in _FAMILIES]
        if unknown:
            raise ValueError(f"unknown candidate(s) {unknown}; choose from {', '.join(_FAMILIES)}")
        names = ["identity"] + [n for n in dict.fromkeys(names) if n != "identity"]
        groups = None if groups is None else np.asarray(groups)
        full_x, full_y, full_w = x, y, w
        subset = query_subsample(groups, self.max_rows, self.random_state)
        if subset is not None:
            x, y, groups = x[subset], y[subset], groups[subset]
            w = None if w is None else w[subset]
        try:
            splits = grouped_splits(x.shape[0], groups, self.n_splits, self.random_state)
            if any(len(train) < 2 for train, _ in splits):
                raise ValueError(f"a cross-validation fold would train on fewer than 2 of {x.shape[0]} pairs")
        except ValueError as exc:
            warnings.warn(f"auto calibrator: {exc}; keeping identity", stacklevel=2)
            self.cv_mse_ = {}
            self.chosen_ = "identity"
            self.best_ = IdentityCalibrator().fit(full_x, full_y)
            return self
        self.cv_mse_ = {}
        for name in names:
            errors = np.empty_like(y)
            for train, test in splits:
                est = self._candidate(name).fit(x[train], y[train], sample_weight=None if w is None else w[train])
                errors[test] = est.predict(x[test]) - y[test]
            self.cv_mse_[name] = float(np.average(errors**2, weights=w))
        # strict improvement needed to displace identity (listed first): min keeps the first minimum
        self.chosen_ = min(names, key=lambda n: self.cv_mse_[n])
        self.best_ = self._candidate(self.chosen_).fit(full_x, full_y, sample_weight=full_w)
        return self

    def to_spec(self) -> dict[str, Any]:
        """Describe the chosen calibrator; the artifact records the family, not the search.

        Returns
        -------
        dict
            ``best_.to_spec()``.
        """
        check_is_fitted(self)
        return self.best_.to_spec()


def calibrator_fit_params(calibrator: BaseEstimator, groups: np.ndarray | None) -> dict[str, Any]:
    """Give the extra ``fit`` arguments a calibrator takes: the query groups for ``auto`` only.

    The other families take the plain ``(X, y)`` signature, and passing ``groups`` would fail.

    Parameters
    ----------
    calibrator : estimator
        The calibrator about to be fitted.
    groups : ndarray of shape (n_samples,) or None
        Query id of each row.

    Returns
    -------
    dict
        ``{"groups": groups}`` for an :class:`AutoCalibrator`, else empty.
    """
    return {"groups": groups} if isinstance(calibrator, AutoCalibrator) else {}
