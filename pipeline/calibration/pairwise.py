"""Fusion weights fitted for ranking: a pairwise logistic objective with non-negative weights.

Per-query rank agreement only depends on how each pair of documents *of the same query* is
ordered. :class:`PairwiseRankWeights` fits weights ``w >= 0`` so that ``w . (z_i - z_j)`` has the
sign of ``y_i - y_j`` for within-query pairs (RankNet's objective with a linear scorer): every
pair with different reference scores counts once, as in Kendall's tau; pairs the reference ties
are skipped.

scikit-learn's ``LogisticRegression`` has no ``positive=`` option and no intercept-free pairwise
form, and clipping an unconstrained fit is not a constrained fit, so the objective is minimised
with scipy's L-BFGS-B under bounds ``w >= 0``. A small L2 term keeps the weights finite when the
pairs are separable; the fusion step normalises them to sum to 1 afterwards.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_consistent_length


def within_query_pairs(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(i, j)`` of every unordered pair of rows sharing a group (i before j in the
    table). Vectorised per distinct group size."""
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, groups.size])
    first: list[np.ndarray] = []
    second: list[np.ndarray] = []
    for size in np.unique(sizes):
        if size < 2:
            continue
        a, b = np.triu_indices(int(size), 1)
        base = starts[sizes == size][:, None]
        first.append(order[base + a].ravel())
        second.append(order[base + b].ravel())
    if not first:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    return np.concatenate(first), np.concatenate(second)


class PairwiseRankWeights(BaseEstimator):
    """Non-negative linear weights that order within-query pairs like the target.

    Parameters
    ----------
    alpha : float, default=1e-4
        L2 strength on the weights (per pair, on standardised inputs).
    max_pairs : int, default=200_000
        Above this many informative pairs, a uniform random subset is used (``random_state``).
    random_state : int, default=0

    Attributes
    ----------
    coef_ : ndarray of shape (k,), all >= 0
    n_pairs_ : int
        Informative pairs used (different target scores).
    """

    def __init__(self, alpha: float = 1e-4, max_pairs: int = 200_000, random_state: int = 0):
        self.alpha = alpha
        self.max_pairs = max_pairs
        self.random_state = random_state

    def fit(self, Z, y, groups):
        Z = check_array(Z, dtype=np.float64)
        y = check_array(y, dtype=np.float64, ensure_2d=False)
        if groups is None:
            raise ValueError("the rank objective needs the query groups (pairs are formed within a query)")
        check_consistent_length(Z, y, groups)
        i, j = within_query_pairs(np.asarray(groups))
        informative = y[i] != y[j]
        i, j = i[informative], j[informative]
        if i.size > self.max_pairs:
            keep = np.sort(np.random.default_rng(self.random_state).choice(i.size, self.max_pairs, replace=False))
            i, j = i[keep], j[keep]
        self.n_pairs_ = int(i.size)
        k = Z.shape[1]
        if i.size == 0:
            self.coef_ = np.zeros(k)
            return self
        # each pair oriented so that the reference prefers its first document
        D = (Z[i] - Z[j]) * np.sign(y[i] - y[j])[:, None]
        n = float(i.size)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            margin = D @ w
            value = np.logaddexp(0.0, -margin).sum() / n + 0.5 * self.alpha * w @ w
            p_wrong = 0.5 * (1.0 - np.tanh(0.5 * margin))  # sigmoid(-margin), no overflow
            return float(value), -(D.T @ p_wrong) / n + self.alpha * w

        result = minimize(loss, np.full(k, 1.0 / k), jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * k)
        self.coef_ = np.maximum(result.x, 0.0)  # L-BFGS-B keeps bounds; guards -0.0
        return self
