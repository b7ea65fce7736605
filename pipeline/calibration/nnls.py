"""Non-negative least squares on a handful of coefficients, from the normal equations.

Fusion weights (one per source) and the Bernstein fallback of the polynomial calibrator (one per
degree) are NNLS problems with a few unknowns and up to a million rows. scikit-learn's
``LinearRegression(positive=True)`` runs scipy's NNLS on the rows; here the rows are reduced to
their cross-products once (one pass), and the problem on the ``k x k`` Gram matrix is solved by
checking every active set (``2^k - 1``; ``k <= 6`` here), whose unique KKT point is the
minimiser the row-wise solver reaches.
"""

from __future__ import annotations

import itertools

import numpy as np

#: more unknowns than this and the active sets (2^k) or the Gram matrix's conditioning stop paying
MAX_UNKNOWNS = 6


def nonnegative_least_squares(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``argmin_{b >= 0} b'Gb - 2 r'b`` for a small positive semi-definite ``G``.

    Parameters
    ----------
    gram : ndarray of shape (k, k)
        ``X'X`` (centred when an intercept is free).
    rhs : ndarray of shape (k,)
        ``X'y`` (centred likewise).

    Returns
    -------
    ndarray of shape (k,)
        The non-negative coefficients; zeros when no positive direction lowers the objective.
    """
    k = rhs.shape[0]
    best, best_value = np.zeros(k), 0.0
    for size in range(1, k + 1):
        for subset in itertools.combinations(range(k), size):
            idx = list(subset)
            sol = np.linalg.lstsq(gram[np.ix_(idx, idx)], rhs[idx], rcond=None)[0]
            if np.any(sol < 0):
                continue
            b = np.zeros(k)
            b[idx] = sol
            value = b @ gram @ b - 2 * rhs @ b
            if value < best_value - 1e-15 * max(1.0, abs(best_value)):
                best, best_value = b, value
    return best


def positive_regression(
    X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """``LinearRegression(positive=True).fit(X, y, sample_weight)``'s intercept and coefficients,
    from the weighted, centred cross-products (one pass over the rows).

    Parameters
    ----------
    X : ndarray of shape (n_samples, k)
        At most :data:`MAX_UNKNOWNS` columns.
    y : ndarray of shape (n_samples,)
        The target.
    sample_weight : ndarray of shape (n_samples,), optional
        Non-negative row weights.

    Returns
    -------
    intercept : float
        Free (not constrained).
    coef : ndarray of shape (k,)
        Non-negative.
    """
    w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    total = float(w.sum())
    x_mean = (w @ X) / total
    y_mean = float(w @ y) / total
    Xc = X - x_mean
    weighted = Xc * w[:, None]
    coef = nonnegative_least_squares(weighted.T @ Xc, weighted.T @ (y - y_mean))
    return y_mean - float(x_mean @ coef), coef
