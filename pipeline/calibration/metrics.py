"""Agreement metrics between a local score and the reference score, with bootstrap intervals.

Definitions (one configuration at a time; never mix figures of different configurations):

* ``pearson``   -- score correlation: Pearson r over all pairs.
* ``spearman``  -- rank similarity: Spearman rho within each query (average ranks for ties),
  averaged over queries. ``kendall``: Kendall tau-b within each query, averaged.
* ``topk``      -- |top-k(local) & top-k(reference)| / min(k, n_q) per query, averaged. Ties are
  broken by table order.
* ``ndcg``      -- NDCG@k of the local order with the reference scores as gains (shifted to be
  non-negative within a query when needed), ties in the local score averaged as scikit-learn's
  ``ndcg_score`` does; averaged over queries.
* ``mae``       -- mean absolute error over all pairs (only meaningful on the reference scale).
* ``combined``  -- combined consistency = mean(pearson, spearman), as the seed report defines it,
  but always from the same configuration.

Per-query metrics need at least 2 documents; rank correlations are also undefined when either
score is constant within the query. Such queries are excluded from those averages and counted.

Intervals: percentile bootstrap over *queries* (queries are the independent units), computed
from per-query sufficient statistics so that 1000 resamples of 10k queries take milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.calibration.groups import query_codes

METRICS = ("pearson", "spearman", "kendall", "topk", "ndcg", "mae", "combined")
RANK_METRICS = ("spearman", "kendall", "topk", "ndcg")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)  # before the mean: a float32 mean would be float32-rounded
    y = np.asarray(y, dtype=np.float64)
    x = x - x.mean()
    y = y - y.mean()
    denom = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.dot(x, y) / denom) if denom > 0 else float("nan")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (scipy's ``rankdata(method='average')``)."""
    order = np.argsort(values, kind="stable")
    sorted_vals = values[order]
    new_group = np.concatenate([[True], sorted_vals[1:] != sorted_vals[:-1]])
    group_id = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.concatenate([starts[1:], [values.shape[0]]])
    mean_rank = (starts + ends + 1) / 2.0  # average of positions start+1..end
    ranks = np.empty(values.shape[0], dtype=np.float64)
    ranks[order] = mean_rank[group_id]
    return ranks


def _dcg_tie_averaged(scores: np.ndarray, gains: np.ndarray, discount: np.ndarray) -> float:
    """DCG of the order by ``scores`` where tied documents share their average gain."""
    neg_unique, inverse, counts = np.unique(-scores, return_inverse=True, return_counts=True)
    group_gain = np.bincount(inverse, weights=gains) / counts
    cum_discount = np.concatenate([[0.0], np.cumsum(discount)])
    ends = np.cumsum(counts)
    starts = ends - counts
    n = discount.shape[0]
    return float(np.sum(group_gain * (cum_discount[np.minimum(ends, n)] - cum_discount[np.minimum(starts, n)])))


def ndcg_at_k(local: np.ndarray, reference: np.ndarray, k: int) -> float:
    gains = reference - min(0.0, float(reference.min()))
    k = min(k, local.shape[0])
    discount = 1.0 / np.log2(np.arange(k) + 2.0)
    ideal = float(np.sum(np.sort(gains)[::-1][:k] * discount))
    if ideal <= 0:
        return float("nan")
    return _dcg_tie_averaged(local, gains, discount) / ideal


def topk_overlap(local: np.ndarray, reference: np.ndarray, k: int) -> float:
    k = min(k, local.shape[0])
    top_local = np.argsort(-local, kind="stable")[:k]
    top_ref = np.argsort(-reference, kind="stable")[:k]
    return float(np.intersect1d(top_local, top_ref).shape[0] / k)


@dataclass
class PerQuery:
    """Per-query statistics from which every metric (and every bootstrap resample) is computed."""

    n: np.ndarray  # (Q,) pairs per query
    sums: np.ndarray  # (Q, 5): sum x, sum y, sum xx, sum yy, sum xy
    abs_err: np.ndarray  # (Q,) sum |x - y|
    rank: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (Q,) values, NaN = undefined
    n_small: int = 0  # queries with < 2 documents
    n_constant: int = 0  # queries where a rank correlation is undefined (constant scores)


PAIRWISE_MAX_DOCS = 256  # larger queries use the per-query path (O(n log n) Kendall from scipy)
_BLOCK_ELEMENTS = 1 << 20  # bound on m * n * n for one pairwise block


def _rank_block(X: np.ndarray, Y: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """Rank metrics for m queries of the same size n at once, from pairwise comparisons.

    For document i: ``gt`` = documents scored strictly higher, ``eq`` = tied (itself included).
    Average ascending rank = (n - gt - eq) + (eq + 1) / 2; in the descending order a tied group
    occupies positions gt .. gt + eq - 1, whose mean discount is its tie-averaged discount.
    """
    m, n = X.shape
    kk = min(k, n)
    out: dict[str, np.ndarray] = {}
    top_l = np.zeros((m, n), dtype=bool)
    top_r = np.zeros((m, n), dtype=bool)
    np.put_along_axis(top_l, np.argsort(-X, axis=1, kind="stable")[:, :kk], True, axis=1)
    np.put_along_axis(top_r, np.argsort(-Y, axis=1, kind="stable")[:, :kk], True, axis=1)
    out["topk"] = (top_l & top_r).sum(axis=1) / kk

    sx = np.sign(X[:, :, None] - X[:, None, :])  # sign(x_i - x_j)
    sy = np.sign(Y[:, :, None] - Y[:, None, :])
    with np.errstate(invalid="ignore", divide="ignore"):
        out["kendall"] = (sx * sy).sum(axis=(1, 2)) / np.sqrt((sx * sx).sum(axis=(1, 2)) * (sy * sy).sum(axis=(1, 2)))
        gt_x, eq_x = (sx < 0).sum(axis=2), (sx == 0).sum(axis=2)
        gt_y, eq_y = (sy < 0).sum(axis=2), (sy == 0).sum(axis=2)
        rx = (n - gt_x - eq_x) + (eq_x + 1) / 2.0
        ry = (n - gt_y - eq_y) + (eq_y + 1) / 2.0
        rx -= rx.mean(axis=1, keepdims=True)
        ry -= ry.mean(axis=1, keepdims=True)
        out["spearman"] = (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))

        gains = Y - np.minimum(0.0, Y.min(axis=1, keepdims=True))
        discount = np.zeros(n)
        discount[:kk] = 1.0 / np.log2(np.arange(kk) + 2.0)
        cum = np.concatenate([[0.0], np.cumsum(discount)])
        dcg = (gains * (cum[gt_x + eq_x] - cum[gt_x]) / eq_x).sum(axis=1)
        ideal = (np.sort(gains, axis=1)[:, ::-1] * discount).sum(axis=1)
        out["ndcg"] = np.where(ideal > 0, dcg / ideal, np.nan)
    return out


def _rank_single(x: np.ndarray, y: np.ndarray, k: int) -> dict[str, float]:
    """Rank metrics for one (large) query."""
    from scipy.stats import kendalltau

    out = {"topk": topk_overlap(x, y, k), "ndcg": ndcg_at_k(x, y, k), "spearman": np.nan, "kendall": np.nan}
    if np.ptp(x) > 0 and np.ptp(y) > 0:
        out["spearman"] = pearson(average_ranks(x), average_ranks(y))
        out["kendall"] = float(kendalltau(x, y, variant="b").statistic)
    return out


def per_query_stats(local: np.ndarray, reference: np.ndarray, groups: np.ndarray, k: int) -> PerQuery:
    """Split by query once and compute all per-query statistics.

    Queries of equal size are processed together as (m, n) blocks, so 10k queries cost a few
    vectorised passes rather than 10k Python iterations.
    """
    local = np.asarray(local, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if local.shape != reference.shape or local.ndim != 1:
        raise ValueError(f"local and reference must be 1-D of equal length, got {local.shape} and {reference.shape}")
    inverse = query_codes(groups)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_q = counts.shape[0]
    weights = lambda v: np.bincount(inverse, weights=v, minlength=n_q)  # noqa: E731
    sums = np.stack(
        [
            weights(local),
            weights(reference),
            weights(local * local),
            weights(reference * reference),
            weights(local * reference),
        ],
        axis=1,
    )
    rank = {name: np.full(n_q, np.nan) for name in RANK_METRICS}
    for n in np.unique(counts[counts >= 2]):
        queries = np.flatnonzero(counts == n)
        rows = order[starts[queries][:, None] + np.arange(n)]  # (m, n) row indices
        if n > PAIRWISE_MAX_DOCS:
            for q, idx in zip(queries, rows):
                for name, value in _rank_single(local[idx], reference[idx], k).items():
                    rank[name][q] = value
            continue
        step = max(1, _BLOCK_ELEMENTS // int(n * n))
        for lo in range(0, queries.shape[0], step):
            idx = rows[lo : lo + step]
            for name, values in _rank_block(local[idx], reference[idx], k).items():
                rank[name][queries[lo : lo + step]] = values
    multi = counts >= 2
    return PerQuery(
        n=counts.astype(np.float64),
        sums=sums,
        abs_err=weights(np.abs(local - reference)),
        rank=rank,
        n_small=int(np.sum(~multi)),
        n_constant=int(np.sum(multi & np.isnan(rank["spearman"]))),
    )


def _columns(stats: PerQuery) -> np.ndarray:
    """(Q, m) matrix of every per-query column a resample's metrics are sums of: n, the five
    sums, the absolute errors, and each rank metric's values (0 where undefined) and validity."""
    cols = [stats.n[:, None], stats.sums, stats.abs_err[:, None]]
    for values in stats.rank.values():
        valid = ~np.isnan(values)
        cols += [np.where(valid, values, 0.0)[:, None], valid.astype(np.float64)[:, None]]
    return np.hstack(cols)


def _metrics_from_counts(
    stats: PerQuery, counts: np.ndarray, totals: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Metrics for each row of ``counts`` (B, Q): how often each query is drawn. One matrix
    product gives every sum (``totals``, when the caller already has it)."""
    if totals is None:
        totals = counts @ _columns(stats)
    n = totals[:, 0]
    sx, sy, sxx, syy, sxy = totals[:, 1:6].T
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sxy - sx * sy / n
        r = cov / np.sqrt((sxx - sx * sx / n) * (syy - sy * sy / n))
        out = {"pearson": r, "mae": totals[:, 6] / n}
        for at, name in enumerate(stats.rank):
            out[name] = totals[:, 7 + 2 * at] / totals[:, 8 + 2 * at]
    out["combined"] = (out["pearson"] + out["spearman"]) / 2.0
    return out


@dataclass
class MetricValue:
    value: float
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def as_dict(self) -> dict[str, Any]:
        f = lambda v: None if not np.isfinite(v) else round(float(v), 6)  # noqa: E731
        return {"value": f(self.value), "ci_low": f(self.low), "ci_high": f(self.high)}


def agreement(
    local: np.ndarray,
    reference: np.ndarray,
    groups: np.ndarray,
    *,
    k: int = 3,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, MetricValue], PerQuery]:
    """All metrics with percentile-bootstrap intervals over queries."""
    stats = per_query_stats(local, reference, groups, k)
    columns = _columns(stats)
    return _with_intervals(
        lambda counts: _metrics_from_counts(stats, counts, counts @ columns),
        stats.n.shape[0],
        n_bootstrap,
        confidence,
        seed,
    ), stats


def paired_difference(
    a: PerQuery, b: PerQuery, *, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[str, MetricValue]:
    """Every metric of ``a`` minus the same metric of ``b`` (two scorings of the same queries),
    with a paired bootstrap interval: both sides see the same resampled queries each time."""
    if a.n.shape != b.n.shape:
        raise ValueError("paired_difference needs statistics of the same queries")

    left_cols, right_cols = _columns(a), _columns(b)

    def difference(counts: np.ndarray) -> dict[str, np.ndarray]:
        # one product per side (not one over both sides' columns: the same statistics must give
        # bit-identical sides, and a difference of exactly 0)
        left = _metrics_from_counts(a, counts, counts @ left_cols)
        right = _metrics_from_counts(b, counts, counts @ right_cols)
        return {name: left[name] - right[name] for name in METRICS}

    return _with_intervals(difference, a.n.shape[0], n_bootstrap, confidence, seed)


#: the draw counts of the last (n_q, n_bootstrap, seed) asked for, compactly: every configuration
#: of one evaluation resamples the same queries with the same seed, so they are drawn once
_COUNTS_CACHE: dict[tuple[int, int, int], list[np.ndarray]] = {}


def _draw_counts(n_q: int, n_bootstrap: int, seed: int):
    """(b, n_q) float matrices of query draw counts, ``n_bootstrap`` rows in all: b resamples of
    n_q queries with replacement. The same numbers for the same arguments, whether drawn now or
    taken from the cache (one entry: ~50 MB at 1000 resamples of 50k queries). Each matrix is the
    same buffer, overwritten by the next: use it before asking for the next."""
    key = (n_q, n_bootstrap, seed)
    chunks = _COUNTS_CACHE.get(key)
    if chunks is None:
        rng = np.random.default_rng(seed)
        counts = np.empty((n_bootstrap, n_q), dtype=np.uint8)  # a query drawn 256 times: widened below
        for row in range(n_bootstrap):
            # one resample at a time: a (b, n_q) block of draws was a fresh 160 MB array per block
            # on 50k queries, whose page faults cost seconds; a row's n_q bins also stay in cache
            drawn = np.bincount(rng.integers(0, n_q, size=n_q), minlength=n_q)
            if counts.dtype == np.uint8 and drawn.max() > 255:
                counts = counts.astype(np.uint32)
            counts[row] = drawn
        chunks = [counts]
        _COUNTS_CACHE.clear()
        _COUNTS_CACHE[key] = chunks
    # converted into one reused float64 buffer of at most ~32 MB: a fresh 160 MB array per chunk
    # cost more in page faults (1.5 s on 50k queries) than the products computed from it
    rows = max(1, min(n_bootstrap, (1 << 22) // max(n_q, 1)))
    buffer = np.empty((rows, n_q))
    for counts in chunks:
        for lo in range(0, counts.shape[0], rows):
            part = counts[lo : lo + rows]
            out = buffer[: part.shape[0]]
            np.copyto(out, part)
            yield out


def ratio_intervals(
    ratios: dict[Any, tuple[np.ndarray, np.ndarray]], n_q: int, *, n_bootstrap: int, confidence: float, seed: int
) -> dict[Any, MetricValue]:
    """Figures that are ratios of per-query sums (``sum numerator / sum denominator``), each with a
    percentile-bootstrap interval over the same query resamples as :func:`agreement`'s.

    Parameters
    ----------
    ratios : dict
        ``key -> (numerator, denominator)``, each of shape (n_q,); any hashable keys.
    n_q : int
        Number of queries.
    n_bootstrap : int
        Resamples (0: no intervals).
    confidence : float
        Coverage of the intervals.
    seed : int
        Seed of the resamples.

    Returns
    -------
    dict
        ``name -> MetricValue``; NaN where the denominator is 0.
    """
    names = list(ratios)
    columns = np.column_stack([col for name in names for col in ratios[name]]) if names else np.empty((n_q, 0))

    def compute(counts: np.ndarray) -> dict[str, np.ndarray]:
        totals = counts @ columns
        with np.errstate(invalid="ignore", divide="ignore"):
            return {name: totals[:, 2 * i] / totals[:, 2 * i + 1] for i, name in enumerate(names)}

    return _with_intervals(compute, n_q, n_bootstrap, confidence, seed)


def _with_intervals(compute, n_q: int, n_bootstrap: int, confidence: float, seed: int) -> dict[str, MetricValue]:
    """Point values (every query once) and percentile-bootstrap intervals over queries of the
    metrics ``compute`` derives from a (B, Q) matrix of query draw counts."""
    point = {name: float(v[0]) for name, v in compute(np.ones((1, n_q))).items()}
    alpha = (1.0 - confidence) / 2.0
    draws: dict[str, list[np.ndarray]] = {name: [] for name in point}
    for counts in _draw_counts(n_q, n_bootstrap, seed):
        for name, values in compute(counts).items():
            draws[name].append(values)
    result = {}
    for name in point:
        values = np.concatenate(draws[name]) if n_bootstrap else np.array([])
        values = values[np.isfinite(values)]
        if values.size:
            low, high = np.quantile(values, [alpha, 1.0 - alpha])
        else:
            low = high = float("nan")
        result[name] = MetricValue(point[name], float(low), float(high))
    return result
