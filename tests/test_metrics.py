"""Metrics against scipy / scikit-learn on random data; grouped CV never leaks a query."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import ndcg_score

from pipeline.calibrators import grouped_splits
from pipeline.metrics import PAIRWISE_MAX_DOCS, agreement, average_ranks, ndcg_at_k, pearson, per_query_stats, topk_overlap


def _random_queries(seed: int, n_queries: int = 40, ties: bool = False):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(2, 15, n_queries)
    groups = np.repeat(np.arange(n_queries), sizes)
    rng.shuffle(groups)  # rows of a query need not be contiguous
    x = rng.normal(size=groups.size)
    y = 0.6 * x + rng.normal(size=groups.size)
    if ties:
        x, y = np.round(x, 0), np.round(y, 0)
    return x, y, groups


@pytest.mark.parametrize("seed", range(5))
def test_pearson_matches_scipy(seed):
    x, y, _ = _random_queries(seed)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_per_query_rank_metrics_match_scipy(seed, ties):
    x, y, groups = _random_queries(seed, ties=ties)
    pq = per_query_stats(x, y, groups, k=3)
    for q in range(groups.max() + 1):
        xs, ys = x[groups == q], y[groups == q]
        if np.all(xs == xs[0]) or np.all(ys == ys[0]):
            assert np.isnan(pq.rank["spearman"][q])
            continue
        assert pq.rank["spearman"][q] == pytest.approx(stats.spearmanr(xs, ys).statistic, abs=1e-12)
        assert pq.rank["kendall"][q] == pytest.approx(stats.kendalltau(xs, ys, variant="b").statistic, abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_ndcg_matches_sklearn_including_ties(seed, ties):
    rng = np.random.default_rng(seed)
    local = rng.normal(size=12)
    gains = rng.uniform(0, 1, 12)
    if ties:
        local = np.round(local)
    for k in (1, 3, 5, 12):
        assert ndcg_at_k(local, gains, k) == pytest.approx(ndcg_score([gains], [local], k=k), abs=1e-12)


def test_average_ranks_matches_scipy():
    rng = np.random.default_rng(0)
    v = rng.integers(0, 5, 50).astype(float)
    np.testing.assert_allclose(average_ranks(v), stats.rankdata(v, method="average"))


def test_topk_overlap_counts_shared_documents():
    local = np.array([0.9, 0.8, 0.1, 0.7])
    ref = np.array([0.9, 0.1, 0.8, 0.7])
    assert topk_overlap(local, ref, 2) == 0.5
    assert topk_overlap(local, ref, 3) == pytest.approx(2 / 3)
    assert topk_overlap(local, ref, 10) == 1.0  # k beyond the query size uses the whole query


def test_rank_correlations_perfect_and_reversed():
    x = np.arange(12.0)
    groups = np.repeat([0, 1], 6)
    pq = per_query_stats(x, np.where(groups == 0, x, -x), groups, k=3)
    np.testing.assert_array_equal(pq.rank["kendall"], [1.0, -1.0])
    np.testing.assert_array_equal(pq.rank["spearman"], [1.0, -1.0])


@pytest.mark.parametrize("ties", [False, True])
def test_block_and_large_query_paths_agree_with_scipy_and_sklearn(ties):
    rng = np.random.default_rng(7)
    sizes = [2, 3, 7, 7, 7, PAIRWISE_MAX_DOCS, PAIRWISE_MAX_DOCS + 1, 400]
    groups = np.repeat(np.arange(len(sizes)), sizes)
    x = rng.normal(size=groups.size)
    y = np.abs(0.5 * x + rng.normal(size=groups.size))
    if ties:
        x = np.round(x * 2) / 2
    pq = per_query_stats(x, y, groups, k=5)
    for q in range(len(sizes)):
        xs, ys = x[groups == q], y[groups == q]
        assert pq.rank["spearman"][q] == pytest.approx(stats.spearmanr(xs, ys).statistic, abs=1e-12)
        assert pq.rank["kendall"][q] == pytest.approx(stats.kendalltau(xs, ys).statistic, abs=1e-12)
        assert pq.rank["ndcg"][q] == pytest.approx(ndcg_score([ys], [xs], k=5), abs=1e-12)
        assert pq.rank["topk"][q] == pytest.approx(topk_overlap(xs, ys, 5))


def test_bootstrap_point_inside_interval_and_intervals_shrink_with_more_queries():
    small = agreement(*_random_queries(1, 20), n_bootstrap=400, seed=0)[0]
    large = agreement(*_random_queries(1, 400), n_bootstrap=400, seed=0)[0]
    for name, m in large.items():
        assert m.low <= m.value <= m.high, name
    assert large["pearson"].width < small["pearson"].width / 2
    assert large["spearman"].width < small["spearman"].width / 2


def test_the_bootstrap_draws_every_query_including_the_last():
    """29 queries agree perfectly; only the last one is ordered the other way round. A bootstrap
    that never drew the last query would see a perfect Spearman in every resample."""
    n_q, n_d = 30, 5
    groups = np.repeat(np.arange(n_q), n_d)
    local = np.tile(np.arange(n_d, dtype=float), n_q)
    reference = local.copy()
    reference[-n_d:] = reference[-n_d:][::-1]
    metrics, _ = agreement(local, reference, groups, n_bootstrap=500, seed=0)
    assert metrics["spearman"].value == pytest.approx((29 - 1) / 30)
    assert metrics["spearman"].low < 1.0 - 1e-9  # resamples with the last query in them


def test_point_values_are_the_metric_definitions():
    x, y, groups = _random_queries(2)
    m, pq = agreement(x, y, groups, n_bootstrap=10)
    assert m["pearson"].value == pytest.approx(pearson(x, y))
    assert m["mae"].value == pytest.approx(np.mean(np.abs(x - y)))
    assert m["spearman"].value == pytest.approx(np.nanmean(pq.rank["spearman"]))
    assert m["combined"].value == pytest.approx((m["pearson"].value + m["spearman"].value) / 2)


def test_single_document_queries_count_for_score_metrics_only():
    x = np.array([0.1, 0.5, 0.9, 0.3])
    y = np.array([0.2, 0.4, 0.8, 0.9])
    groups = np.array([0, 0, 0, 1])
    m, pq = agreement(x, y, groups, n_bootstrap=10)
    assert pq.n_small == 1
    assert np.isnan(pq.rank["spearman"][1])
    assert m["spearman"].value == pytest.approx(1.0)
    assert m["pearson"].value == pytest.approx(pearson(x, y))


@pytest.mark.parametrize("n_splits", [2, 5, 10])
def test_grouped_splits_never_share_a_query(n_splits):
    _, _, groups = _random_queries(3, 30)
    splits = grouped_splits(groups.size, groups, n_splits, seed=0)
    covered = np.zeros(groups.size, dtype=int)
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
        covered[test] += 1
    assert np.all(covered == 1)  # every row is held out exactly once


def test_bootstrap_resamples_whole_queries_not_pairs():
    """Pairs of one query share a query-level effect, so they are not independent: the interval
    must be as wide as a plain bootstrap over whole queries gives, not the ~sqrt(docs per query)
    times narrower interval of a bootstrap over pairs."""
    rng = np.random.default_rng(3)
    n_q, n_d = 60, 20
    groups = np.repeat(np.arange(n_q), n_d)
    query_effect = np.repeat(rng.normal(0, 1.0, n_q), n_d)  # what the pairs of a query share
    local = query_effect + rng.normal(0, 0.3, n_q * n_d)
    reference = query_effect * rng.choice([0.2, 1.8], n_q).repeat(n_d) + rng.normal(0, 0.3, n_q * n_d)
    metrics, _ = agreement(local, reference, groups, n_bootstrap=2000, seed=0)
    plain = []
    for _ in range(2000):  # the textbook cluster bootstrap: draw queries, keep all their pairs
        rows = (rng.integers(0, n_q, n_q)[:, None] * n_d + np.arange(n_d)).ravel()
        plain.append(np.corrcoef(local[rows], reference[rows])[0, 1])
    low, high = np.quantile(plain, [0.025, 0.975])
    assert metrics["pearson"].width == pytest.approx(high - low, rel=0.2)
