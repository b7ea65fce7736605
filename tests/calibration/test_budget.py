"""The decision side of a budgeted collection (pipeline/calibration/budget*.py): the band, the
first round's strata, the purchase order, the stopping rule, the plan. The benchmark's
targets, smaller, are in test_budget_bench.py."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration.budget import (
    Band,
    band_grid,
    band_priority,
    curve_band,
    query_profiles,
    stratified_order,
    take_within,
)
from pipeline.calibration.budget_run import BudgetRule, BudgetRun
from pipeline.calibration.calibrators import make_calibrator
from pipeline.calibration.synthetic import skewed_map, skewed_sample

poly = lambda: make_calibrator("poly")  # noqa: E731


def test_the_grid_is_local_score_quantiles_over_the_region():
    local = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(band_grid(local, (0.9, 1.0), points=3), [0.9, 0.95, 1.0])
    with pytest.raises(ValueError, match="quantile levels"):
        band_grid(local, (0.9, 0.5))


def test_the_band_holds_the_curve_and_is_unbounded_where_no_pair_was_bought():
    s = skewed_sample(400, seed=1)
    rows = s.local < 0.5  # nothing bought above 0.5
    grid = np.array([0.1, 0.3, 0.45, 0.7])
    band = curve_band(s.local[rows], s.reference[rows], s.groups[rows], grid, poly, n_bootstrap=50, seed=0)
    assert np.all(np.isfinite(band.widths[:3])) and np.isinf(band.widths[3]) and band.width == np.inf
    assert np.all(band.lower[:3] <= skewed_map(grid[:3]) + 0.02) and np.all(
        skewed_map(grid[:3]) - 0.02 <= band.upper[:3]
    )
    one_query = curve_band(s.local[:5], s.reference[:5], np.zeros(5), grid, poly, n_bootstrap=10)
    assert one_query.width == np.inf  # a single query: nothing to resample


def test_the_band_is_the_fit_plus_minus_z_standard_deviations_over_whole_query_resamples():
    s = skewed_sample(300, seed=3)
    grid = np.array([0.2, 0.5, 0.8])
    band = curve_band(s.local, s.reference, s.groups, grid, poly, n_bootstrap=40, confidence=0.9, seed=5)
    rng = np.random.default_rng(5)
    curves = []
    for _ in range(40):  # the same resamples by hand: whole queries with replacement, as weights
        weight = np.bincount(rng.integers(0, 300, 300), minlength=300)[s.groups].astype(float)
        rows = weight > 0
        curves.append(poly().fit(s.local[rows], s.reference[rows], sample_weight=weight[rows]).predict(grid))
    fit = poly().fit(s.local, s.reference).predict(grid)
    half = 1.6448536 * np.std(curves, axis=0, ddof=1)
    np.testing.assert_allclose(band.lower, fit - half, rtol=1e-9)
    np.testing.assert_allclose(band.upper, fit + half, rtol=1e-9)


def test_the_band_narrows_with_more_queries():
    s = skewed_sample(2000, seed=2)
    grid = band_grid(s.local, (0.5, 0.9))
    widths = []
    for n_q in (200, 800, 2000):
        rows = s.groups < n_q
        widths.append(curve_band(s.local[rows], s.reference[rows], s.groups[rows], grid, poly, n_bootstrap=60).width)
    assert widths[0] > widths[1] > widths[2]


def test_stratified_order_takes_every_stratum_in_turn():
    best = np.concatenate([np.zeros(90), np.ones(10)])  # 90% of the queries score 0
    order = stratified_order(best, strata=2, seed=0)
    assert sorted(order.tolist()) == list(range(100))
    assert set(best[order[:2]]) == {0.0, 1.0} and best[order[:20]].sum() == 10  # the top comes early
    with_categories = stratified_order(np.zeros(6), strata=1, categories=list("aaaabb"), seed=0)
    assert {c for c in np.array(list("aaaabb"))[with_categories[:2]]} == {"a", "b"}
    assert stratified_order(best, strata=2, seed=0).tolist() == order.tolist()  # deterministic
    assert stratified_order(best, strata=2, seed=1).tolist() != order.tolist()


def test_take_within_never_crosses_the_limit_and_skips_what_is_bought():
    cost = np.array([5.0, 3.0, 4.0, 1.0])
    assert take_within(np.arange(4), cost, 9.0, np.zeros(4, dtype=bool)) == [0, 1, 3]  # 2 would cross: skipped
    assert take_within(np.arange(4), cost, 9.0, np.array([True, False, False, False])) == [1, 2, 3]
    assert take_within(np.arange(4), cost, 0.0, np.zeros(4, dtype=bool)) == []


def test_priority_goes_to_queries_where_the_band_is_widest_per_pair():
    band = Band(np.array([0.5, 1.0]), np.array([0.0, 0.0]), np.array([0.1, 0.5]))
    local = np.array([0.1, 0.1, 0.95, 0.1, 0.6, 0.7])
    codes, _, sizes = query_profiles(local, np.array([0, 0, 1, 1, 2, 2]))
    priority = band_priority(band, local, codes, sizes)
    assert priority[0] == 0.0  # outside the region, whose bottom is bounded
    assert priority[1] > priority[2] > 0  # 0.95 holds one wide point; (0.6, 0.7) two narrower ones, per pair
    unbounded = Band(np.array([0.5, 1.0]), np.array([0.0, -np.inf]), np.array([0.1, np.inf]))
    above = band_priority(unbounded, np.array([1.2, 0.6]), np.array([0, 1]), np.array([1, 1]))
    assert above[0] > above[1]  # a pair beyond an unbounded end is what bounds it


def test_a_run_buys_whole_queries_in_rounds_with_a_uniform_share_and_stops_at_the_target():
    s = skewed_sample(600, seed=4)
    rule = BudgetRule(band=0.05, region=(0.5, 0.95), round_pairs=300, uniform_share=0.25, n_bootstrap=40)
    run = BudgetRun(s.local, s.groups, rule, poly, seed=0)
    first = run.next_round()
    assert sum(run.sizes[q] for q in first.queries) <= 300 and any(first.uniform) and not all(first.uniform)
    uniform_pairs = sum(run.sizes[q] for q, u in zip(first.queries, first.uniform) if u)
    assert uniform_pairs <= 75
    while not (purchase := first if not run.rounds else run.next_round()).empty:
        run.add(purchase, [s.reference[run.rows_of(q)] for q in purchase.queries])
        if run.measure().met:
            break
    assert run.rounds[-1].met and run.rounds[-2].band <= 0.05  # two rounds in a row (confirm_rounds=2)
    assert run.pairs_bought < s.local.size / 2
    assert [r.pairs_total for r in run.rounds] == sorted(r.pairs_total for r in run.rounds)
    with pytest.raises(ValueError, match="2 API scores for"):
        q = int(np.flatnonzero(~run.bought)[0])
        run.add(type(first)([q], [False]), [np.zeros(2) if run.sizes[q] != 2 else np.zeros(3)])


def test_a_cost_limit_is_never_crossed_by_a_round():
    s = skewed_sample(300, seed=5)
    cost = np.random.default_rng(0).uniform(0.5, 2.0, 300)
    run = BudgetRun(s.local, s.groups, BudgetRule(round_pairs=400), poly, cost=cost, seed=0)
    purchase = run.next_round(limit=20.0)
    assert 0 < cost[purchase.queries].sum() <= 20.0


@pytest.mark.parametrize(
    ("change", "message"),
    [({"band": 0}, "band must be > 0"), ({"agreement_metric": "accuracy"}, "agreement_metric"),
     ({"uniform_share": 1.5}, "uniform_share"), ({"confirm_rounds": 0}, "confirm_rounds")],
)  # fmt: skip
def test_a_bad_rule_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        BudgetRule(**change)


# -- edges, found by mutation testing (mutation/run_mutmut.py pipeline/calibration/budget.py) -----


def test_width_at_interpolates_inside_and_ranks_unbounded_ends_first():
    band = Band(np.array([0.2, 0.4, 0.6]), np.array([-np.inf, 0.0, 0.0]), np.array([np.inf, 0.1, 0.2]))
    unbounded = 4 * 0.2 + 1  # four times the widest bounded point, plus 1
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    np.testing.assert_allclose(
        band.width_at(scores), [unbounded, unbounded, (unbounded + 0.1) / 2, 0.1, 0.15, 0.2, 0.0]
    )
    top = Band(np.array([0.2, 0.4]), np.array([0.0, -np.inf]), np.array([0.3, np.inf]))
    np.testing.assert_allclose(top.width_at([0.1, 0.2, 0.4, 0.9]), [0.0, 0.3, 2.2, 2.2])  # 4 * 0.3 + 1
    three = Band(np.array([0.2, 0.4, 0.6]), np.array([0.0, 0.0, -np.inf]), np.array([0.1, 0.3, np.inf]))
    np.testing.assert_allclose(three.width_at([0.7]), [2.2])  # beyond the unbounded end: its own width
    nothing = Band(np.array([0.2, 0.4]), np.full(2, -np.inf), np.full(2, np.inf))
    np.testing.assert_allclose(nothing.width_at([0.1, 0.3, 0.5]), [1.0, 1.0, 1.0])  # no bounded point: 0 + 1
    empty = Band(np.empty(0), np.empty(0), np.empty(0))
    assert empty.width == np.inf and empty.width_at(np.ones((2, 3))).shape == (2, 3)


def test_band_grid_accepts_the_whole_range_and_refuses_empty_or_out_of_range_regions():
    local = np.linspace(0, 1, 101)
    assert band_grid(local, (0.0, 1.0)).size == 21  # 21 points by default
    for region in [(0.5, 0.5), (0.5, 1.5), (-0.1, 0.5)]:
        with pytest.raises(ValueError, match="quantile levels"):
            band_grid(local, region)


def test_the_band_is_bounded_on_the_bought_range_edges_and_from_two_queries():
    local = np.array([0.1, 0.5, 0.9, 0.2, 0.6, 0.8])
    reference = local + np.array([0.01, -0.02, 0.0, 0.02, 0.01, -0.01])
    groups = np.array([0, 0, 0, 1, 1, 1])
    grid = np.array([0.05, 0.1, 0.9, 0.95])
    band = curve_band(local, reference, groups, grid, poly, n_bootstrap=20)
    assert np.all(np.isfinite(band.lower[1:3])) and np.all(np.isfinite(band.upper[1:3]))  # the edges are bought
    assert band.lower[0] == band.lower[3] == -np.inf and band.upper[0] == band.upper[3] == np.inf
    assert (
        band.lower.tolist() == curve_band(local, reference, groups, grid, poly, n_bootstrap=20, seed=0).lower.tolist()
    )
    assert curve_band(np.empty(0), np.empty(0), np.empty(0), grid, poly).width == np.inf


def test_query_profiles_take_each_querys_best_score_even_below_zero():
    codes, best, sizes = query_profiles(np.array([-3.0, -1.0, -2.0, -5.0]), np.array(["a", "a", "b", "b"]))
    assert codes.tolist() == [0, 0, 1, 1] and best.tolist() == [-1.0, -2.0] and sizes.tolist() == [2, 2]
    codes, best, sizes = query_profiles(np.empty(0), np.empty(0, dtype=int))
    assert codes.size == best.size == sizes.size == 0


def test_stratified_order_cycles_through_exactly_the_requested_strata():
    order = stratified_order(np.arange(100.0), strata=4, seed=3)
    assert sorted(order.tolist()) == list(range(100))
    for start in range(0, 100, 4):  # every turn takes one query of each quartile
        assert sorted(order[start : start + 4] // 25) == [0, 1, 2, 3]
    assert stratified_order(np.arange(100.0)).tolist() == stratified_order(np.arange(100.0), strata=5, seed=0).tolist()
    empty = stratified_order(np.empty(0))
    assert empty.size == 0 and empty.dtype == np.intp


def test_stratified_order_crosses_strata_with_categories_without_merging_any():
    best = np.repeat([0.0, 1.0, 2.0], 4)
    categories = ["a", "b"] * 6
    order = stratified_order(best, strata=3, categories=categories, seed=0)
    assert sorted(order.tolist()) == list(range(12))
    first = {(best[q], categories[q]) for q in order[:6]}
    assert len(first) == 6  # each of the 3 x 2 cells once before any cell's second query


def test_take_within_stops_once_the_limit_is_reached_exactly():
    cost = np.array([2.0, 3.0, 0.0])
    assert take_within(np.arange(3), cost, 5.0, np.zeros(3, dtype=bool)) == [0, 1]


def test_band_priority_is_the_summed_width_per_pair():
    band = Band(np.array([0.0, 1.0]), np.zeros(2), np.array([0.2, 0.4]))
    local = np.array([0.5, 0.0, 1.0])
    priority = band_priority(band, local, np.array([0, 1, 1]), np.array([1, 2, 0]))
    np.testing.assert_allclose(priority, [0.3, 0.3, 0.0])  # 0.3 / 1; (0.2 + 0.4) / 2; no pair
