"""The fit-at-scale shortcuts give the figures the exact paths give.

Exact equalities where the shortcut is exact (sufficient statistics, reweighted pairs, the
shared bootstrap draws, the vectorised table reader, the cached query codes); stated tolerances
where it is a documented approximation (source maps held fixed in the weight bootstrap, model
choices on a query subsample): on a small generated table, forced onto the fast path, every
figure lies within the exact run's interval and every interval's width is within 10% + a small
absolute slack of the exact one's.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.optimize import nnls
from sklearn.linear_model import LinearRegression

from pipeline.calibration import metrics
from pipeline.calibration.calibrators import AutoCalibrator, query_subsample
from pipeline.calibration.fusion import NonNegativeFusion
from pipeline.calibration.fusion_bootstrap import FusionWeightBootstrap
from pipeline.calibration.nnls import nonnegative_least_squares, positive_regression
from pipeline.calibration.pairwise import PairwiseRankWeights, query_layout, sample_pairs
from pipeline.calibration.synthetic import latent_sample
from pipeline.config.compose import compose_config
from pipeline.config.fit import FitSettings
from pipeline.data.table import read_table, write_table
from pipeline.fit.evaluation import evaluate
from pipeline.fit.outputs import shown_rows
from pipeline.fit.run import fit_final, load_table


def _sample(n_queries=120, seed=3, docs=(1, 12)):
    return latent_sample(("probability", "cosine"), (0.4, 0.7), n_queries=n_queries, docs=docs, seed=seed)


def _resample(groups, counts):
    """Rows and fresh query ids of the table a multiplicity vector stands for (copies distinct)."""
    rows = [np.flatnonzero(groups == q) for q in range(counts.size)]
    picked = np.repeat(np.arange(counts.size), counts.astype(int))
    index = np.concatenate([rows[q] for q in picked])
    return index, np.repeat(np.arange(picked.size), [rows[q].size for q in picked])


def _mapped(fusion, X):
    return np.column_stack([s.transform(X[:, j]) for j, s in enumerate(fusion.scales_)])


# --- weight bootstrap: exact where it claims to be ---------------------------------------------


@pytest.mark.parametrize("center", ["none", "query"])
def test_score_weights_of_a_resample_are_the_least_squares_fit_on_it(center):
    s = _sample()
    fusion = NonNegativeFusion(objective="score", center=center).fit(s.sources, s.target, groups=s.groups)
    boot = FusionWeightBootstrap(fusion, s.sources, s.target, s.groups)
    M = _mapped(fusion, s.sources)
    target = np.log(np.clip(s.target, 1e-6, 1 - 1e-6) / (1 - np.clip(s.target, 1e-6, 1 - 1e-6)))
    for b in range(3):
        counts = np.bincount(np.random.default_rng(b).integers(0, 120, 120), minlength=120).astype(float)
        index, groups = _resample(s.groups, counts)
        Z = (M[index] - M[index].mean(0)) / M[index].std(0)
        t = target[index]
        if center == "query":
            from pipeline.calibration.fusion import _center_by_group

            Z, t = _center_by_group(Z, groups), _center_by_group(t, groups)
        coef = LinearRegression(positive=True).fit(Z, t).coef_
        np.testing.assert_allclose(boot.weights(counts, np.random.default_rng(0))[0], coef / coef.sum(), atol=1e-9)


@pytest.mark.parametrize("graded", [False, True])
def test_rank_weights_of_a_resample_are_the_pairwise_fit_on_it_while_all_pairs_are_used(graded):
    s = _sample(n_queries=60, docs=(2, 8))
    if graded:  # graded labels: many tied pairs, which carry no order and must not count
        s = dataclasses.replace(s, target=np.round(s.target * 4) / 4)
    fusion = NonNegativeFusion(objective="rank").fit(s.sources, s.target, groups=s.groups)
    boot = FusionWeightBootstrap(fusion, s.sources, s.target, s.groups)
    assert boot.pairs is not None  # a small table: every pair listed, reweighted per resample
    M = _mapped(fusion, s.sources)
    for b in range(3):
        counts = np.bincount(np.random.default_rng(b).integers(0, 60, 60), minlength=60).astype(float)
        index, groups = _resample(s.groups, counts)
        Z = (M[index] - M[index].mean(0)) / M[index].std(0)
        coef = PairwiseRankWeights().fit(Z, s.target[index], groups).coef_
        np.testing.assert_allclose(boot.weights(counts, np.random.default_rng(0))[0], coef / coef.sum(), atol=2e-4)


def _fixed_maps_refits(s, fusion, counts_list, max_pairs):
    """The refit the linearised path stands for: on each resampled table, the mapped sources
    standardised afresh and the pairwise objective fitted on (a subsample of) its pairs."""
    M = _mapped(fusion, s.sources)
    out = []
    for b, counts in enumerate(counts_list):
        index, groups = _resample(s.groups, counts)
        Z = (M[index] - M[index].mean(0)) / M[index].std(0)
        coef = PairwiseRankWeights(max_pairs=max_pairs, random_state=b).fit(Z, s.target[index], groups).coef_
        out.append(coef / coef.sum())
    return np.array(out)


def test_linearised_rank_weights_are_the_refit_one_newton_step_away():
    s = _sample(n_queries=500, docs=(8, 12), seed=7)
    fusion = NonNegativeFusion(objective="rank").fit(s.sources, s.target, groups=s.groups)
    boot = FusionWeightBootstrap(fusion, s.sources, s.target, s.groups)
    assert boot.linear is not None  # beyond LISTED_PAIRS: linearised
    draws = [np.bincount(np.random.default_rng(b).integers(0, 500, 500), minlength=500).astype(float) for b in range(5)]
    exact = _fixed_maps_refits(s, fusion, draws, max_pairs=10**9)  # every pair: no subsample noise
    fast = np.array([boot.weights(c, np.random.default_rng(0))[0] for c in draws])
    np.testing.assert_allclose(fast, exact, atol=5e-4)  # resamples move the weights by ~1e-2
    assert np.abs(exact - fusion.weights_).max() > 5e-3


def test_linearised_rank_intervals_carry_the_pair_subsample_noise():
    s = _sample(n_queries=500, docs=(8, 12), seed=7)
    fusion = NonNegativeFusion(objective="rank").fit(s.sources, s.target, groups=s.groups)
    boot = FusionWeightBootstrap(fusion, s.sources, s.target, s.groups)
    boot.rank.max_pairs = 2000  # a subsample far below the table's ~24k pairs: noise dominates
    draws = [
        np.bincount(np.random.default_rng(b).integers(0, 500, 500), minlength=500).astype(float) for b in range(150)
    ]
    exact = _fixed_maps_refits(s, fusion, draws, max_pairs=2000)
    fast = np.vstack([boot.weights(c, np.random.default_rng([1, b])) for b, c in enumerate(draws)])
    assert fast.shape == (150 * 10, 2)  # 10 draws of the subsample noise per resample
    ratio = fast[:, 0].std() / exact[:, 0].std()
    assert 0.85 < ratio < 1.15, ratio
    boot.rank.max_pairs = 10**9  # every pair: the query resampling alone
    queries_only = np.vstack([boot.weights(c, np.random.default_rng(0)) for c in draws])
    assert queries_only.shape == (150, 2)
    assert fast[:, 0].std() > 1.5 * queries_only[:, 0].std()  # the noise is there, and it is most of the spread


@pytest.mark.parametrize("seed", range(6))
def test_small_nonnegative_least_squares_is_scipys(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(40, 4)) @ np.diag([1, 0.1, 3, 1])
    A[:, 3] = A[:, 0] * 0.5 + A[:, 1]  # collinear columns too
    b = rng.normal(size=40) + A @ np.array([1.0, -1.0, 0.5, 0.0])
    expected = nnls(A, b)[0]
    got = nonnegative_least_squares(A.T @ A, A.T @ b)
    assert np.linalg.norm(A @ got - b) == pytest.approx(np.linalg.norm(A @ expected - b), rel=1e-9, abs=1e-12)
    assert np.all(got >= 0)


def test_sampled_pairs_are_informative_within_query_pairs_drawn_in_proportion_to_query_weight():
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    y = np.array([0.1, 0.2, 0.2, 0.5, 0.6, 0.1, 0.2, 0.3, 0.4, 0.9])  # rows 1 and 2 tie
    weights = np.array([1.0, 3.0, 1.0, 5.0])
    i, j = sample_pairs(y, query_layout(groups), 60_000, np.random.default_rng(0), query_weights=weights)
    assert i.size == 60_000
    assert np.all(groups[i] == groups[j]) and np.all(i != j) and np.all(y[i] != y[j])
    per_query = np.bincount(groups[i], minlength=4) / i.size
    informative = np.array([2, 1, 6, 0]) * weights  # pairs not tied, times the query's weight
    np.testing.assert_allclose(per_query, informative / informative.sum(), atol=0.01)
    pair = np.minimum(i, j) * 100 + np.maximum(i, j)
    query2 = pair[groups[i] == 2]
    assert (
        np.unique(query2).size == 6
        and np.bincount(np.unique(query2, return_inverse=True)[1]).min() > 0.14 * (query2.size / 6) * 6 / 6.0
    )  # each of query 2's six pairs is drawn, about equally


# --- model choices on a query subsample ---------------------------------------------------------


def test_query_subsample_takes_whole_queries_up_to_the_limit_and_nothing_below_it():
    groups = np.repeat(np.arange(50), 4)
    assert query_subsample(groups, 200, 0) is None and query_subsample(groups, None, 0) is None
    rows = query_subsample(groups, 50, 0)
    taken = np.unique(groups[rows])
    assert 50 <= rows.size < 54 and rows.size == 4 * taken.size  # whole queries, just past the limit
    np.testing.assert_array_equal(rows, query_subsample(groups, 50, 0))
    assert not np.array_equal(rows, query_subsample(groups, 50, 1))


def test_auto_compares_on_the_subsample_and_fits_the_chosen_family_on_every_row():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(400), 5)
    x = rng.uniform(0, 1, groups.size)
    y = 1 / (1 + np.exp(-8 * (x - 0.6))) + rng.normal(0, 0.03, x.size)
    full = AutoCalibrator(random_state=0).fit(x, y, groups=groups)
    part = AutoCalibrator(random_state=0, max_rows=500).fit(x, y, groups=groups)
    assert part.chosen_ == full.chosen_
    assert part.best_.x_min_ == x.min() and part.best_.x_max_ == x.max()  # refitted on every row
    np.testing.assert_allclose(part.predict(x), full.predict(x))


# --- exact speed-ups ----------------------------------------------------------------------------


def test_shared_bootstrap_draws_are_the_draws_made_afresh():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(300), 4)
    x, y = rng.normal(size=groups.size), rng.normal(size=groups.size)
    metrics._COUNTS_CACHE.clear()
    first = metrics.agreement(x, y, groups, n_bootstrap=200)[0]
    assert metrics._COUNTS_CACHE  # kept for the next configuration
    again = metrics.agreement(x, y, groups, n_bootstrap=200)[0]
    metrics._COUNTS_CACHE.clear()
    afresh = metrics.agreement(x, y, groups, n_bootstrap=200)[0]
    assert first == again == afresh


def test_query_codes_are_computed_once_read_only_and_follow_a_replaced_table(tmp_path):
    path = write_table(
        tmp_path / "t.csv",
        {
            "query_id": ["b", "a", "b", "c"],
            "doc_id": list("wxyz"),
            "reference": [1.0, 2, 3, 4],
            "local": [1.0, 2, 3, 4],
        },
    )
    table = read_table(path, target="reference", sources=["local"])
    codes = table.group_codes()
    assert codes.tolist() == [0, 1, 0, 2] and table.group_codes() is codes and not codes.flags.writeable
    assert table.n_queries == 3 and table.small_queries() == 2
    other = dataclasses.replace(table, query_ids=np.array(["a", "a", "b", "b"], dtype=object))
    assert other.group_codes().tolist() == [0, 0, 1, 1] and other.n_queries == 2 and other.small_queries() == 0


def test_the_vectorised_reader_reads_what_a_cell_by_cell_float_reads(tmp_path):
    cells = ["1", " 2.5 ", "1e-3", "-0", "1_000", "0x1p-2" if False else "3.", ".5", "+4"]
    path = tmp_path / "t.csv"
    lines = ["query_id,doc_id,reference,local"] + [f" q{i % 3} ,d{i},{c},{c}" for i, c in enumerate(cells)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    table = read_table(path, target="reference", sources=["local"])
    np.testing.assert_array_equal(table.target, [float(c) for c in cells])
    assert table.query_ids.tolist() == [f"q{i % 3}" for i in range(len(cells))]  # ids stripped


def test_plot_rows_are_every_row_or_an_even_spread_with_both_ends():
    x = np.random.default_rng(0).normal(size=1000)
    assert np.array_equal(shown_rows(x, 1000), np.argsort(x, kind="stable"))
    rows = shown_rows(x, 101)
    assert rows.size == 101 and rows[0] == x.argmin() and rows[-1] == x.argmax()
    assert np.all(np.diff(x[rows]) >= 0)


# --- end to end: fast settings vs exact settings on one small table -----------------------------


@pytest.fixture(scope="module")
def fused_table(tmp_path_factory):
    s = _sample(n_queries=260, seed=5, docs=(2, 14))
    path = tmp_path_factory.mktemp("fast") / "paired_scores.csv"
    write_table(
        path,
        {
            "query_id": s.groups.astype(str),
            "doc_id": np.arange(s.target.size).astype(str),
            "reference": s.target,
            "a": s.sources[:, 0],
            "b": s.sources[:, 1],
        },
    )
    return path


def _report(path, *overrides):
    cfg = FitSettings.of(
        compose_config(
            [
                f"data.path={path}",
                "data.sources=[a,b]",
                "evaluate.n_bootstrap=300",
                "fusion.n_bootstrap=120",
                *overrides,
            ]
        )
    )
    table = load_table(cfg)
    return evaluate(table, cfg, fit_final(cfg, table))


@pytest.mark.slow
def test_fast_paths_report_the_exact_paths_figures_within_their_intervals(fused_table):
    n = sum(1 for _ in open(fused_table)) - 1
    exact = _report(
        fused_table, "calibrator.auto_max_rows=null", "fusion.auto_max_rows=null", "fusion.bootstrap_maps=refit"
    )
    # forced onto the fast paths: model choices on half the rows, maps fixed in the bootstrap
    fast = _report(fused_table, f"calibrator.auto_max_rows={n // 2}", f"fusion.auto_max_rows={n // 2}")
    for e, f in zip(exact.results, fast.results):
        assert e.name == f.name
        for name in ("pearson", "spearman", "combined", "ndcg", "mae"):
            a, b = e.metrics[name], f.metrics[name]
            assert a.low <= b.value <= a.high and b.low <= a.value <= b.high, (e.name, name, a, b)
            assert abs(b.width - a.width) <= 0.1 * a.width + 0.002, (e.name, name, a, b)
    for source, a in exact.fusion.weights.items():
        b = fast.fusion.weights[source]
        assert a.low <= b.value <= a.high, (source, a, b)
        assert abs(b.width - a.width) <= 0.1 * a.width + 0.01, (source, a, b)
    assert fast.settings["fusion_bootstrap_maps"] == "fixed" and exact.settings["fusion_bootstrap_maps"] == "refit"


@pytest.mark.parametrize("seed", range(4))
def test_positive_regression_is_sklearns(seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(500, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.1, 500)
    w = rng.uniform(0.1, 2.0, 500) if seed % 2 else None
    expected = LinearRegression(positive=True).fit(X, y, sample_weight=w)
    intercept, coef = positive_regression(X, y, w)
    np.testing.assert_allclose(coef, expected.coef_, atol=1e-9)
    assert intercept == pytest.approx(expected.intercept_, abs=1e-9)


def test_linearised_noise_shrinks_as_the_subsample_nears_every_pair():
    """Without replacement, a subsample of most pairs has little noise (the finite-population
    factor): at 80% of the pairs the linearised spread follows the refit's, not a with-replacement one."""
    s = _sample(n_queries=500, docs=(8, 12), seed=7)
    fusion = NonNegativeFusion(objective="rank").fit(s.sources, s.target, groups=s.groups)
    boot = FusionWeightBootstrap(fusion, s.sources, s.target, s.groups)
    draws = [
        np.bincount(np.random.default_rng(b).integers(0, 500, 500), minlength=500).astype(float) for b in range(120)
    ]
    pairs = [float(c @ boot.linear.P) for c in draws]
    boot.rank.max_pairs = m = int(0.8 * min(pairs))
    exact = _fixed_maps_refits(s, fusion, draws, max_pairs=m)
    fast = np.vstack([boot.weights(c, np.random.default_rng([2, b])) for b, c in enumerate(draws)])
    ratio = fast[:, 0].std() / exact[:, 0].std()
    assert 0.85 < ratio < 1.15, ratio


@pytest.mark.parametrize("objective", ["score", "rank"])
def test_a_constant_source_gets_no_weight_in_any_resample(objective):
    s = _sample(n_queries=80, docs=(3, 9))
    X = np.column_stack([s.sources, np.full(s.target.size, 0.5)])
    fusion = NonNegativeFusion(objective=objective, scale="raw").fit(X, s.target, groups=s.groups)
    boot = FusionWeightBootstrap(fusion, X, s.target, s.groups)
    for b in range(3):
        counts = np.bincount(np.random.default_rng(b).integers(0, 80, 80), minlength=80).astype(float)
        w = boot.weights(counts, np.random.default_rng(b))
        assert np.all(w[:, 2] == 0) and np.allclose(w.sum(axis=1), 1.0) and np.all(w >= 0)


def test_score_weights_on_the_raw_scale_fit_the_raw_reference():
    s = _sample()
    fusion = NonNegativeFusion(objective="score", scale="raw").fit(s.sources, s.target, groups=s.groups)
    boot = FusionWeightBootstrap(fusion, s.sources, s.target, s.groups)
    counts = np.bincount(np.random.default_rng(5).integers(0, 120, 120), minlength=120).astype(float)
    index, _ = _resample(s.groups, counts)
    Z = (s.sources[index] - s.sources[index].mean(0)) / s.sources[index].std(0)
    coef = LinearRegression(positive=True).fit(Z, s.target[index]).coef_
    np.testing.assert_allclose(boot.weights(counts, np.random.default_rng(0))[0], coef / coef.sum(), atol=1e-9)
    full = boot.weights(np.ones(120), np.random.default_rng(0))[0]
    np.testing.assert_allclose(full, fusion.weights_, atol=1e-9)  # every query once: the fitted weights


def test_nonnegative_least_squares_edges():
    gram = np.array([[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_array_equal(nonnegative_least_squares(gram, np.array([-1.0, -2.0])), [0.0, 0.0])  # nothing helps
    got = nonnegative_least_squares(gram, np.array([2.0, -3.0]))  # one coefficient active
    assert got[1] == 0 and got[0] == pytest.approx(1.0)
    np.testing.assert_allclose(nonnegative_least_squares(gram, gram @ [0.3, 0.7]), [0.3, 0.7])  # interior optimum
    np.testing.assert_allclose(nonnegative_least_squares(np.eye(3) * 4, np.array([4.0, 0.0, 8.0])), [1.0, 0.0, 2.0])
