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
  cross-products (its sufficient statistics): exactly the resampled table's problem;
* ``objective="rank"``, up to :data:`LISTED_PAIRS` within-query pairs: the pairwise objective is
  minimised on every informative pair, weighted by its query's multiplicity: exactly the
  resampled table's objective;
* ``objective="rank"`` beyond: linearised (:class:`_LinearisedRank`): one Newton step from the
  full-data optimum, from per-query sums of gradients and Hessians, plus the noise of the refit's
  ``max_pairs`` subsample drawn from its known normal distribution.

Why holding the maps fixed is sound: a map is a monotone curve fitted to every row; the weights
depend on it only through averages over all rows (means, spreads, pairwise differences), whose
resampling variability is dominated by which queries are drawn, not by the map's small changes.
What it leaves out is measured, not assumed (bench/README.md, ``tests/fit/test_fast_paths.py``):
on 100k pairs the interval's width moves by 2-5% against the full refit, which
``fusion.bootstrap_maps=refit`` still runs.
"""

from __future__ import annotations

import numpy as np

from pipeline.calibration.fusion import NonNegativeFusion, _center_by_group
from pipeline.calibration.fusion_scale import infer_score_type, target_scale
from pipeline.calibration.nnls import nonnegative_least_squares
from pipeline.calibration.pairwise import (
    ENUMERATE_MAX_PAIRS,
    PairwiseRankWeights,
    fit_rank_weights,
    oriented_differences,
    pair_blocks,
    query_layout,
    within_query_pairs,
)

#: draws of the linearised rank refit's pair-subsample noise per query resample
NOISE_DRAWS = 10

#: up to this many within-query pairs the rank objective is refitted on each resample's pairs;
#: beyond, it is linearised (:class:`_LinearisedRank`)
LISTED_PAIRS = 20_000


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
            sizes = self.layout[3]
            self.pairs_per_query = sizes * (sizes - 1.0) / 2.0
            self.pairs = None
            self.linear = None
            if float(self.pairs_per_query.sum()) <= LISTED_PAIRS:
                # every informative pair, weighted by its query's multiplicity: the resample's
                # own objective, minimised from the full-data optimum
                i, j = within_query_pairs(np.asarray(groups))
                keep = self.y[i] != self.y[j]
                self.pairs = (i[keep], j[keep], codes[i[keep]])
                self.start = self._refit_rank(np.ones(self.n_queries), self._std(np.ones(self.n_queries))[1])
            else:
                self.linear = _LinearisedRank(self, np.asarray(groups))

    def weights(self, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The normalised weights the fusion gets on the resample ``counts`` (shape (Q,)): an
        array of shape (m, k), one row per draw of the refit's own randomness (m = 1 except for
        the linearised rank objective, whose pair-subsample noise has a known distribution and
        is drawn :data:`NOISE_DRAWS` times, so the interval's Monte Carlo error is the query
        resamples' alone)."""
        n, std = self._std(counts)
        if self.fusion.objective == "score":
            coef = (self._score_coef(counts, n) * std)[None, :]  # the coefficients on the standardised sources
        else:
            coef = np.atleast_2d(self._rank_coef(counts, std, rng))
        coef = np.where(self.constant, 0.0, coef)
        total = coef.sum(axis=1, keepdims=True)
        k = coef.shape[1]
        return np.where(total > 0, coef / np.where(total > 0, total, 1.0), 1.0 / k)

    def _std(self, counts: np.ndarray) -> tuple[float, np.ndarray]:
        """Rows of the resample, and each mapped source's standard deviation over them."""
        n = float(counts @ self.count)
        mean = (counts @ self.sum) / n
        var = np.maximum((counts @ self.sum_sq) / n - mean**2, 0.0)
        return n, np.where(self.constant | (var <= 0), 1.0, np.sqrt(var))

    def _rank_coef(self, counts: np.ndarray, std: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        if self.linear is not None:
            return self.linear.coef(counts, std, rng)
        return self._refit_rank(counts, std)

    def _refit_rank(self, counts: np.ndarray, std: np.ndarray) -> np.ndarray:
        """The rank objective minimised on the resample's informative pairs (listed once,
        weighted by their query's multiplicity)."""
        i, j, q = self.pairs
        pair_weights = counts[q]  # each copy of a query brings its pairs once more
        drawn = pair_weights > 0
        if not drawn.any():
            return np.zeros(std.size)
        D = oriented_differences(self.M, self.y, i[drawn], j[drawn]) / std
        return fit_rank_weights(D, self.rank.alpha, pair_weights=pair_weights[drawn], start=self.start)

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


class _LinearisedRank:
    """The rank objective's refit on a resample, by one Newton step from the full-data optimum
    plus the noise of the refit's pair subsample, from per-query sums over every pair.

    With ``v`` the coefficients on the mapped (unstandardised) sources, the resample's mean
    pairwise loss has gradient ``c @ G / N`` and Hessian ``c @ H / N`` at the full-data optimum
    ``v0`` (``G``, ``H``: each query's sums over its informative pairs, ``N = c @ P`` its pairs),
    plus the L2 term on the standardised scale. One Newton step lands within ``O(|v - v0|^2)`` of
    the resample's all-pairs optimum; resampled weights move by tenths of a percent, so that
    error is negligible. The refit does not see all pairs but ``max_pairs`` of them: its estimate
    deviates from the all-pairs optimum by ``-H^-1 (g_S - g_N)``, a mean of ``max_pairs`` pair
    gradients, whose covariance ``H^-1 S H^-1 (1 - max_pairs / N) / max_pairs`` (``S``: the pair
    gradients' covariance, from per-query sums of their squares; no finite-population factor
    where the refit samples with replacement) is drawn from a normal distribution: at 100k pairs
    and more, that subsample noise is most of the interval's width.
    """

    def __init__(self, boot: FusionWeightBootstrap, groups: np.ndarray):
        self.boot = boot
        k = boot.M.shape[1]
        fusion = boot.fusion
        self.v0 = fusion.coef_ / fusion.scale_  # the full-data optimum, on the mapped sources' scale
        self.tri = [(a, b) for a in range(k) for b in range(a, k)]
        Q = boot.n_queries
        self.P = np.zeros(Q)
        self.G = np.zeros((Q, k))
        self.H = np.zeros((Q, len(self.tri)))
        self.S = np.zeros((Q, len(self.tri)))
        codes, y, M = boot.layout[0], boot.y, boot.M
        for i, j in pair_blocks(groups, max_pairs=2_000_000):
            keep = y[i] != y[j]
            i, j = i[keep], j[keep]
            q = codes[i]
            D = (M[i] - M[j]) * np.sign(y[i] - y[j])[:, None]
            margin = D @ self.v0
            wrong = 0.5 * (1.0 - np.tanh(0.5 * margin))  # sigmoid(-margin)
            self.P += np.bincount(q, minlength=Q)
            for a in range(k):
                self.G[:, a] += np.bincount(q, weights=-wrong * D[:, a], minlength=Q)
            curve = wrong * (1.0 - wrong)
            for at, (a, b) in enumerate(self.tri):
                self.H[:, at] += np.bincount(q, weights=curve * D[:, a] * D[:, b], minlength=Q)
                self.S[:, at] += np.bincount(q, weights=wrong**2 * D[:, a] * D[:, b], minlength=Q)

    def _square(self, packed: np.ndarray) -> np.ndarray:
        k = self.G.shape[1]
        out = np.empty((k, k))
        for (a, b), v in zip(self.tri, packed):
            out[a, b] = out[b, a] = v
        return out

    def coef(self, counts: np.ndarray, std: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """The coefficients on the standardised sources for the resample ``counts``."""
        n_pairs = float(counts @ self.P)
        if not n_pairs > 0 or not np.any(self.v0 > 0):
            return np.zeros(std.size)
        alpha = self.boot.rank.alpha
        grad = (counts @ self.G) / n_pairs + alpha * std**2 * self.v0
        hess = self._square(counts @ self.H) / n_pairs + alpha * np.diag(std**2)
        v = self.v0 - np.linalg.solve(hess, grad)
        m = self.boot.rank.max_pairs
        if n_pairs > m:
            mean_grad = (counts @ self.G) / n_pairs
            spread = self._square(counts @ self.S) / n_pairs - np.outer(mean_grad, mean_grad)
            listed = float(counts @ self.boot.pairs_per_query) <= ENUMERATE_MAX_PAIRS
            inverse = np.linalg.inv(hess)
            cov = inverse @ spread @ inverse * ((1.0 - m / n_pairs) if listed else 1.0) / m
            rng = rng if rng is not None else np.random.default_rng(self.boot.rank.random_state)
            noise = rng.multivariate_normal(np.zeros(v.size), (cov + cov.T) / 2.0, size=NOISE_DRAWS, method="eigh")
            v = v + noise
        return np.maximum(v * std, 0.0)
