"""Metrics against scipy / scikit-learn on random data; grouped CV never leaks a query."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import ndcg_score

from pipeline.calibration.calibrators import grouped_splits
from pipeline.calibration.metrics import (
    PAIRWISE_MAX_DOCS,
    agreement,
    average_ranks,
    ndcg_at_k,
    pearson,
    per_query_stats,
    topk_overlap,
)


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


# -- what mutation testing found unguarded (make mutate, pipeline/calibration/metrics.py) -------------------


def test_the_interval_is_the_percentile_bootstrap_over_whole_queries_written_out():
    """The MAE interval, recomputed here from the definition: B resamples of Q whole queries drawn
    with replacement (numpy's generator seeded with `seed`, one (B, Q) draw), the pairs' mean
    absolute error of each resample, then the (1-c)/2 and (1+c)/2 quantiles."""
    x, y, groups = _random_queries(7, n_queries=25)
    metrics, _ = agreement(x, y, groups, n_bootstrap=300, confidence=0.9, seed=11)
    ids, inverse = np.unique(groups, return_inverse=True)
    abs_sum = np.bincount(inverse, weights=np.abs(x - y))
    n = np.bincount(inverse).astype(float)
    draws = np.random.default_rng(11).integers(0, ids.size, size=(300, ids.size))
    counts = np.stack([np.bincount(d, minlength=ids.size) for d in draws]).astype(float)
    resampled = (counts @ abs_sum) / (counts @ n)
    low, high = np.quantile(resampled, [0.05, 0.95])
    assert metrics["mae"].value == pytest.approx(abs_sum.sum() / n.sum(), abs=1e-12)
    assert metrics["mae"].low == pytest.approx(low, abs=1e-12) and metrics["mae"].high == pytest.approx(high, abs=1e-12)


def test_the_bootstrap_draws_the_first_query_too():
    n_q, n_d = 30, 5
    groups = np.repeat(np.arange(n_q), n_d)
    local = np.tile(np.arange(n_d, dtype=float), n_q)
    reference = local.copy()
    reference[:n_d] = reference[:n_d][::-1]  # only the first query disagrees
    metrics, _ = agreement(local, reference, groups, n_bootstrap=500, seed=0)
    assert metrics["spearman"].low < 1.0 - 1e-9


def test_the_defaults_are_top_3_1000_resamples_and_seed_0():
    x, y, groups = _random_queries(3)
    default, _ = agreement(x, y, groups)
    explicit, _ = agreement(x, y, groups, k=3, n_bootstrap=1000, confidence=0.95, seed=0)
    assert default == explicit


def test_without_resamples_the_figures_stand_and_the_intervals_are_undefined():
    x, y, groups = _random_queries(4)
    metrics, _ = agreement(x, y, groups, n_bootstrap=0)
    for name, m in metrics.items():
        assert np.isfinite(m.value) and np.isnan(m.low) and np.isnan(m.high), name
        assert m.as_dict() == {"value": round(m.value, 6), "ci_low": None, "ci_high": None}


def test_undefined_figures_are_nan_without_a_numpy_warning():
    """A query whose scores are all equal, one whose reference gains are all zero, a constant
    column: the figures are NaN (excluded from means), and nothing prints a RuntimeWarning."""
    import warnings

    groups = np.repeat([0, 1, 2], 4)
    local = np.array([0.2, 0.2, 0.2, 0.2, 0.1, 0.4, 0.3, 0.9, 0.5, 0.6, 0.7, 0.8])
    reference = np.array([0.1, 0.3, 0.2, 0.4, 0.0, 0.0, 0.0, 0.0, 0.5, 0.7, 0.6, 0.9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pq = per_query_stats(local, reference, groups, 3)
        agreement(local, reference, groups, n_bootstrap=50)
        assert np.isnan(pearson(np.ones(5), np.arange(5.0)))
        assert np.isnan(ndcg_at_k(np.arange(4.0), np.zeros(4), 3))
    assert np.isnan(pq.rank["spearman"][0]) and np.isnan(pq.rank["ndcg"][1]) and np.isfinite(pq.rank["ndcg"][2])


def test_ndcg_of_a_reference_with_negative_scores_shifts_that_query_alone():
    """Logit references can be negative: gains are the query's scores shifted so the lowest is 0
    (only when it is below 0), per query. Worked by hand for a perfect and a reversed ranking."""
    reference = np.array([-1.0, 0.0, 1.0])  # gains 0, 1, 2
    reversed_ndcg = (0 + 1 / np.log2(3) + 2 / np.log2(4)) / (2 + 1 / np.log2(3))
    assert ndcg_at_k(np.array([0.1, 0.2, 0.3]), reference, 3) == pytest.approx(1.0)
    assert ndcg_at_k(np.array([0.3, 0.2, 0.1]), reference, 3) == pytest.approx(reversed_ndcg)
    groups = np.repeat([0, 1], 3)  # the second query's scores are >= 0: no shift there
    pq = per_query_stats(np.array([0.3, 0.2, 0.1, 0.3, 0.2, 0.1]), np.array([-1.0, 0.0, 1.0, 1.0, 2.0, 3.0]), groups, 3)
    assert pq.rank["ndcg"][0] == pytest.approx(reversed_ndcg)
    assert pq.rank["ndcg"][1] == pytest.approx(
        (1 + 2 / np.log2(3) + 3 / np.log2(4)) / (3 + 2 / np.log2(3) + 1 / np.log2(4))
    )


def test_a_query_beyond_the_block_size_ranks_probabilities_like_scipy():
    """Queries with more documents than PAIRWISE_MAX_DOCS take the per-query path; scores in
    [0, 0.5] (a range below 1) must still be ranked."""
    rng = np.random.default_rng(5)
    n = PAIRWISE_MAX_DOCS + 10
    local, reference = rng.uniform(0, 0.5, n), rng.uniform(0, 0.5, n)
    reference = 0.5 * local + 0.5 * reference
    pq = per_query_stats(local, reference, np.zeros(n, dtype=int), 3)
    assert pq.rank["spearman"][0] == pytest.approx(stats.spearmanr(local, reference).statistic, abs=1e-12)
    assert pq.rank["kendall"][0] == pytest.approx(stats.kendalltau(local, reference).statistic, abs=1e-12)


def test_tied_scores_leave_the_top_k_in_table_order():
    """As the report's footnote says: among tied documents, the earlier rows are the top-k (a
    stable sort), in both the block path and the single-query function, and whatever the order
    in which the table interleaves its queries. Two score levels, not one: numpy's default sort
    keeps an all-equal array in order but reorders ties among mixed values."""

    def query(n: int):
        local = np.tile([0.6, 0.8], n // 2)  # the odd rows tie at the top
        reference = np.zeros(n)
        reference[[1, 3, 5, 7, 9]] = [5.0, 4.0, 3.0, 2.0, 1.0]  # the first five of them, in table order
        return local, reference

    for n in (30, PAIRWISE_MAX_DOCS + 40):  # the block path, then the single-query path
        local, reference = query(n)
        assert topk_overlap(local, reference, 5) == 1.0
        assert topk_overlap(reference, local, 5) == 1.0
        assert topk_overlap(local, local.copy(), 5) == 1.0  # identical scores, identical top-k
        # two queries interleaved row by row in the table
        groups = np.tile([0, 1], n)
        pq = per_query_stats(np.repeat(local, 2), np.repeat(reference, 2), groups, 5)
        assert pq.rank["topk"].tolist() == [1.0, 1.0]
        pq = per_query_stats(np.repeat(local, 2), np.repeat(local, 2), groups, 5)
        assert pq.rank["topk"].tolist() == [1.0, 1.0]


def test_small_and_constant_queries_are_counted():
    groups = np.array([0, 1, 1, 2, 2, 2, 3, 3])  # one single-document query, a two-document one
    local = np.array([0.5, 0.1, 0.9, 0.3, 0.3, 0.3, 0.2, 0.4])  # query 2 is constant
    reference = np.array([0.4, 0.2, 0.8, 0.1, 0.5, 0.9, 0.3, 0.6])
    pq = per_query_stats(local, reference, groups, 3)
    assert pq.n_small == 1 and pq.n_constant == 1
    assert pq.n.tolist() == [1.0, 2.0, 3.0, 2.0]
    assert pq.rank["spearman"][1] == pytest.approx(1.0)  # two documents are a ranking


@pytest.mark.parametrize("shape", [(4, 2), (2, 4)])
def test_two_dimensional_scores_are_refused(shape):
    with pytest.raises(ValueError, match="must be 1-D of equal length"):
        per_query_stats(np.zeros(shape), np.zeros(shape), np.zeros(shape[0], dtype=int), 3)


def test_paired_differences_are_per_query_and_paired():
    """A minus B on the same queries: the point value is the difference of the two figures, and
    an interval over the same resampled queries on both sides (identical inputs: exactly 0)."""
    from pipeline.calibration.metrics import paired_difference

    x, y, groups = _random_queries(8, n_queries=30)
    a = per_query_stats(x, y, groups, 3)
    b = per_query_stats(x + np.random.default_rng(1).normal(0, 1, x.size), y, groups, 3)
    diff = paired_difference(a, b, n_bootstrap=200, seed=0)
    ma, _ = agreement(x, y, groups, n_bootstrap=0)
    mb, _ = agreement(x + np.random.default_rng(1).normal(0, 1, x.size), y, groups, n_bootstrap=0)
    for name in ("pearson", "spearman", "mae", "topk"):
        assert diff[name].value == pytest.approx(ma[name].value - mb[name].value, abs=1e-12), name
        assert diff[name].low <= diff[name].value <= diff[name].high
    same = paired_difference(a, a, n_bootstrap=50)
    assert all(m.value == 0 and m.low == 0 and m.high == 0 for m in same.values())
    with pytest.raises(ValueError, match="^paired_difference needs statistics of the same queries$"):
        paired_difference(a, per_query_stats(x[:20], y[:20], groups[:20], 3))
    assert paired_difference(a, b) == paired_difference(a, b, n_bootstrap=1000, confidence=0.95, seed=0)  # defaults


def test_a_constant_query_beyond_the_block_size_is_nan_without_a_warning():
    import warnings

    n = PAIRWISE_MAX_DOCS + 5
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's ConstantInputWarning included
        for local, reference in ((np.full(n, 0.3), rng.uniform(size=n)), (rng.uniform(size=n), np.full(n, 0.3))):
            pq = per_query_stats(local, reference, np.zeros(n, dtype=int), 3)
            assert np.isnan(pq.rank["spearman"][0]) and np.isnan(pq.rank["kendall"][0])
