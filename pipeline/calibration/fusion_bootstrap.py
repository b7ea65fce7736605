"""Bootstrap of fusion weights over whole queries, with the fitted source maps held fixed.

The report gives each fusion weight a percentile interval from refitting the fusion on
resamples of whole queries. Refitting the whole fusion per resample (every source's isotonic
map, then the weights) costs one full fusion fit per draw: 200 draws of a million-row table took
most of a quarter of an hour. Here a resample is a vector of query multiplicities ``c`` (how often
each query was drawn) and only the weights are refitted, on the mapped sources the exported
fusion computed once:

* the standardisation (mean, standard deviation of each mapped source) comes from per-query sums
  weighted by ``c``: exactly what the resampled table gives;
* ``objective="score"``: the non-negative least squares problem is solved from per-query sums of
  cross-products (its sufficient statistics), exactly the resampled table's problem;
* ``objective="rank"``: within-query pairs drawn with probability proportional to ``c`` (a
  fresh draw of ``max_pairs`` per resample, as the refit subsamples the resampled table's pairs),
  warm-started at the full-data weights.

Why holding the maps fixed is sound: a map is a monotone curve fitted to a million rows; the
weights depend on it only through averages over all rows (means, spreads, pairwise
differences), whose resampling variability is dominated by which queries are drawn, not by the
map's small changes, and the monotone shape keeps every pair's orientation. What it leaves out
is measured, not assumed: ``tests/fit/test_fast_paths.py`` and ``bench/bench_fit.py --compare``
put its intervals next to the full refit's (widths within 10%).
"""

from __future__ import annotations

import itertools

import numpy as np

from pipeline.calibration.fusion import NonNegativeFusion, _center_by_group
from pipeline.calibration.fusion_scale import infer_score_type, target_scale
from pipeline.calibration.pairwise import (
    PairwiseRankWeights,
    fit_rank_weights,
    oriented_differences,
    query_layout,
    sample_pairs,
    within_query_pairs,
)


def nonnegative_least_squares(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``argmin_{b >= 0} b'Gb - 2 r'b`` for a small positive semi-definite ``G``, by checking
    every active set (2^k - 1 of them; k is the number of sources): the unique point that is
    feasible and satisfies the KKT conditions, the minimiser sklearn's NNLS reaches on the rows."""
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


class FusionWeightBootstrap:
    """Refit a fitted :class:`~pipeline.calibration.fusion.NonNegativeFusion`'s weights for query
    multiplicities ``c`` (module docstring), its source maps fixed.

    Parameters
    ----------
    fusion : NonNegativeFusion
        The fitted fusion (the exported model's).
    X : ndarray of shape (n_samples, k)
        The sources it was fitted on.
    y : ndarray of shape (n_samples,)
        The reference.
    groups : ndarray of shape (n_samples,)
        Query id of each row.
    """

    def __init__(self, fusion: NonNegativeFusion, X: np.ndarray, y: np.ndarray, groups: np.ndarray):
        self.fusion = fusion
        X = np.asarray(X, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float64)
        self.layout = query_layout(groups)
        codes = self.layout[0]
        self.n_queries = self.layout[3].size
        M = np.column_stack([s.transform(X[:, j]) for j, s in enumerate(fusion.scales_)])
        self.constant = np.ptp(M, axis=0) == 0
        k = M.shape[1]
        per_query = lambda v: np.bincount(codes, weights=v, minlength=self.n_queries)  # noqa: E731
        self.count = self.layout[3].astype(np.float64)
        self.sum = np.column_stack([per_query(M[:, j]) for j in range(k)])
        self.sum_sq = np.column_stack([per_query(M[:, j] ** 2) for j in range(k)])
        self.M = M
        self.start: np.ndarray | None = None
        if fusion.objective == "score":
            if fusion.scale == "raw":
                t = self.y
            else:
                t = target_scale(self.y, fusion.target_type or infer_score_type(self.y))
            if fusion.center == "query":
                M, t = _center_by_group(M, np.asarray(groups)), _center_by_group(t, np.asarray(groups))
            pairs = [(a, b) for a in range(k) for b in range(a, k)]
            self.cross = np.column_stack([per_query(M[:, a] * M[:, b]) for a, b in pairs])
            self.cross_pairs = pairs
            self.msum = np.column_stack([per_query(M[:, j]) for j in range(k)])
            self.tsum = per_query(t)
            self.mt = np.column_stack([per_query(M[:, j] * t) for j in range(k)])
        else:
            self.rank = PairwiseRankWeights(random_state=fusion.random_state)
            self.pairs = None
            sizes = self.layout[3]
            self.pairs_per_query = sizes * (sizes - 1.0) / 2.0
            if float(self.pairs_per_query.sum()) <= self.rank.max_pairs:
                # every informative pair, weighted by its query's multiplicity: the resampled
                # table's pairs exactly, while they are within max_pairs
                i, j = within_query_pairs(np.asarray(groups))
                keep = self.y[i] != self.y[j]
                self.pairs = (i[keep], j[keep], codes[i[keep]])
            # every resample starts L-BFGS-B at the full-data optimum (unnormalised): a few steps
            self.start = self._rank_coef(np.ones(self.n_queries), self._std(np.ones(self.n_queries))[1], None)

    def weights(self, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The normalised weights the fusion gets on the resample ``counts`` (shape (Q,))."""
        n, std = self._std(counts)
        if self.fusion.objective == "score":
            coef = self._score_coef(counts, n) * std  # the coefficients on the standardised sources
        else:
            coef = self._rank_coef(counts, std, rng)
        coef = np.where(self.constant, 0.0, coef)
        total = float(coef.sum())
        k = coef.size
        return np.full(k, 1.0 / k) if not total > 0 else coef / total

    def _std(self, counts: np.ndarray) -> tuple[float, np.ndarray]:
        """Rows of the resample, and each mapped source's standard deviation over them."""
        n = float(counts @ self.count)
        mean = (counts @ self.sum) / n
        var = np.maximum((counts @ self.sum_sq) / n - mean**2, 0.0)
        return n, np.where(self.constant | (var <= 0), 1.0, np.sqrt(var))

    def _rank_coef(self, counts: np.ndarray, std: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """The rank objective's coefficients on the resample, from the pairs its refit would use:
        all of its informative pairs up to ``max_pairs``, else ``max_pairs`` of them."""
        pair_weights = None
        total = float(counts @ self.pairs_per_query)  # the resample's pairs (ties included)
        if self.pairs is not None and total <= self.rank.max_pairs:
            i, j, q = self.pairs
            pair_weights = counts[q]  # each copy of a query brings its pairs once more
            drawn = pair_weights > 0
            i, j, pair_weights = i[drawn], j[drawn], pair_weights[drawn]
        else:
            # the refit takes max_pairs of the resample's N pairs without replacement; drawn
            # with replacement, max_pairs / (1 - max_pairs / N) pairs carry the same sampling
            # variance (the finite-population correction), at O(max_pairs) per resample
            share = min(self.rank.max_pairs / total, 0.5) if total > 0 else 0.0
            rng = rng if rng is not None else np.random.default_rng(self.rank.random_state)
            n_pairs = int(round(self.rank.max_pairs / (1.0 - share)))
            i, j = sample_pairs(self.y, self.layout, n_pairs, rng, query_weights=counts)
        if i.size == 0:
            return np.zeros(std.size)
        D = oriented_differences(self.M, self.y, i, j) / std
        return fit_rank_weights(D, self.rank.alpha, pair_weights=pair_weights, start=self.start)

    def _score_coef(self, counts: np.ndarray, n: float) -> np.ndarray:
        k = self.msum.shape[1]
        cross = counts @ self.cross
        gram = np.empty((k, k))
        for (a, b), v in zip(self.cross_pairs, cross):
            gram[a, b] = gram[b, a] = v
        msum = counts @ self.msum
        tsum = counts @ self.tsum
        gram -= np.outer(msum, msum) / n  # centred: the intercept is free
        rhs = counts @ self.mt - msum * tsum / n
        return nonnegative_least_squares(gram, rhs)
