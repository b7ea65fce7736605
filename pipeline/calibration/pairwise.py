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

from pipeline.calibration.groups import query_codes


def within_query_pairs(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(i, j)`` of every unordered pair of rows sharing a group (i before j in the
    table). Vectorised per distinct group size."""
    blocks = list(pair_blocks(groups))
    if not blocks:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    return np.concatenate([i for i, _ in blocks]), np.concatenate([j for _, j in blocks])


def pair_blocks(groups: np.ndarray, max_pairs: int | None = None):
    """:func:`within_query_pairs` in blocks of queries of one size (at most ``max_pairs`` pairs
    a block, when given), so a caller can go over 12M pairs without holding them all."""
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    sizes = np.diff(np.r_[starts, groups.size])
    for size in np.unique(sizes):
        if size < 2:
            continue
        a, b = np.triu_indices(int(size), 1)
        base = starts[sizes == size][:, None]
        step = base.shape[0] if max_pairs is None else max(1, max_pairs // a.size)
        for lo in range(0, base.shape[0], step):
            chunk = base[lo : lo + step]
            yield order[chunk + a].ravel(), order[chunk + b].ravel()


def query_layout(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(codes, order, starts, sizes)``: each row's query code (0..Q-1, in sorted order of the
    ids), the rows sorted by query (stable), and each query's first position and size in it."""
    codes = query_codes(groups)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    return codes, order, np.cumsum(sizes) - sizes, sizes


def sample_pairs(
    y: np.ndarray,
    layout: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    n_pairs: int,
    rng: np.random.Generator,
    query_weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` informative within-query pairs ``(i, j)`` drawn with replacement, each query's
    pairs in proportion to ``query_weights`` (1 each by default; a bootstrap passes how often each
    query was drawn), without listing every pair.

    A query is drawn with probability proportional to its weight times its number of pairs, then
    two distinct documents of it uniformly; pairs the reference ties are rejected and drawn again,
    so the result is uniform over the (weighted) informative pairs, as the enumerating path's
    subsample is. Returns fewer pairs only when 20 rounds find too few informative ones (a
    reference that ties nearly everything); the caller then enumerates.
    """
    _, order, starts, sizes = layout
    mass = sizes * (sizes - 1) / 2.0
    if query_weights is not None:
        mass = mass * query_weights
    total = float(mass.sum())
    if not total > 0:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    got_i: list[np.ndarray] = []
    got_j: list[np.ndarray] = []
    have = 0
    share = mass / total
    for _ in range(20):
        want = int((n_pairs - have) * 1.1) + 16
        # how many pairs each query gives: one multinomial draw, O(Q), instead of a search per pair
        q = np.repeat(np.arange(sizes.size), rng.multinomial(want, share))
        n = sizes[q]
        a = (rng.random(want) * n).astype(np.intp)
        b = (rng.random(want) * (n - 1)).astype(np.intp)
        b += b >= a
        i, j = order[starts[q] + a], order[starts[q] + b]
        keep = y[i] != y[j]
        got_i.append(i[keep])
        got_j.append(j[keep])
        have += int(keep.sum())
        if have >= n_pairs:
            break
    return np.concatenate(got_i)[:n_pairs], np.concatenate(got_j)[:n_pairs]


def oriented_differences(Z: np.ndarray, y: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """``(Z_i - Z_j)``, each pair oriented so that the reference prefers its first document."""
    return (Z[i] - Z[j]) * np.sign(y[i] - y[j])[:, None]


def fit_rank_weights(
    D: np.ndarray, alpha: float, *, pair_weights: np.ndarray | None = None, start: np.ndarray | None = None
) -> np.ndarray:
    """Non-negative ``w`` minimising the (weighted) mean of ``log(1 + exp(-D w))`` + ``alpha/2 |w|^2``.

    ``pair_weights`` weigh the pairs (a bootstrap resample's query multiplicities); ``start`` is
    where L-BFGS-B begins (the full-data weights, for a resample).
    """
    k = D.shape[1]
    if pair_weights is None:
        n = float(D.shape[0])

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            margin = D @ w
            value = np.logaddexp(0.0, -margin).sum() / n + 0.5 * alpha * w @ w
            p_wrong = 0.5 * (1.0 - np.tanh(0.5 * margin))  # sigmoid(-margin), no overflow
            return float(value), -(D.T @ p_wrong) / n + alpha * w

    else:
        share = pair_weights / pair_weights.sum()

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            margin = D @ w
            value = share @ np.logaddexp(0.0, -margin) + 0.5 * alpha * w @ w
            p_wrong = 0.5 * (1.0 - np.tanh(0.5 * margin))
            return float(value), -(D.T @ (share * p_wrong)) + alpha * w

    x0 = np.full(k, 1.0 / k) if start is None else np.asarray(start, dtype=np.float64)
    result = minimize(loss, x0, jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * k)
    return np.maximum(result.x, 0.0)  # L-BFGS-B keeps bounds; guards -0.0


#: above this many within-query pairs (informative or not), pairs are sampled, not listed
ENUMERATE_MAX_PAIRS = 2_000_000


class PairwiseRankWeights(BaseEstimator):
    """Non-negative linear weights that order within-query pairs like the target.

    Parameters
    ----------
    alpha : float, default=1e-4
        L2 strength on the weights (per pair, on standardised inputs).
    max_pairs : int, default=200_000
        Above this many informative pairs, a uniform random subset is used (``random_state``):
        taken from the listed pairs up to :data:`ENUMERATE_MAX_PAIRS` within-query pairs, drawn
        with replacement by :func:`sample_pairs` beyond (listing 12M pairs of a million-row table
        cost seconds and ~300 MB for 200k of them).
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
        groups = np.asarray(groups)
        i = j = None
        layout = query_layout(groups)
        sizes = layout[3]
        if float(np.sum(sizes * (sizes - 1.0) / 2.0)) > ENUMERATE_MAX_PAIRS:
            i, j = sample_pairs(y, layout, self.max_pairs, np.random.default_rng(self.random_state))
            if i.size < self.max_pairs:
                i = None  # too few informative pairs to sample: list them
        if i is None:
            i, j = within_query_pairs(groups)
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
        self.coef_ = fit_rank_weights(oriented_differences(Z, y, i, j), self.alpha)
        return self
