"""The rounds of a budgeted collection (pipeline/calibration/budget_run.py), piece by piece: the
rule's bounds, what each round buys within its limits, what ``measure`` computes and when the
run counts as done. Exact where the code is exact (the band, the held-out agreement and the
round's account are recomputed here by hand); written against the mutants that survived
``python mutation/run_mutmut.py pipeline/calibration/budget_run.py``."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration.budget import band_priority, curve_band, query_profiles, stratified_order, take_within
from pipeline.calibration.budget_run import BudgetRule, BudgetRun, Purchase, Round
from pipeline.calibration.calibrators import grouped_splits, make_calibrator
from pipeline.calibration.metrics import agreement
from pipeline.calibration.synthetic import skewed_sample

poly = lambda: make_calibrator("poly")  # noqa: E731


def small_run(n_queries: int = 120, seed: int = 4, **rule) -> tuple[BudgetRun, object]:
    s = skewed_sample(n_queries, seed=seed)
    settings = {"band": 0.05, "region": (0.5, 0.95), "round_pairs": 300, "n_bootstrap": 20, **rule}
    return BudgetRun(s.local, s.groups, BudgetRule(**settings), poly, seed=seed), s


def buy(run: BudgetRun, sample, purchase: Purchase) -> Round:
    run.add(purchase, [sample.reference[run.rows_of(q)] for q in purchase.queries])
    return run.measure()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"agreement": 0.0}, "agreement must be > 0 or None, got 0.0"),
        ({"agreement": -0.5}, "agreement must be > 0 or None"),
        ({"round_pairs": 0}, "^round_pairs, strata >= 1; n_bootstrap, grid_points >= 2$"),
        ({"strata": 0}, "round_pairs, strata >= 1"),
        ({"n_bootstrap": 1}, "round_pairs, strata >= 1"),
        ({"grid_points": 1}, "round_pairs, strata >= 1"),
        ({"confirm_rounds": 0}, "confirm_rounds must be >= 1, got 0"),
        ({"uniform_share": 1.01}, "uniform_share must lie in"),
    ],
)
def test_each_bound_of_the_rule_is_refused_on_its_own(change, message):
    with pytest.raises(ValueError, match=message):
        BudgetRule(**change)


def test_the_smallest_allowed_rule_is_accepted():
    BudgetRule(
        agreement=0.5, uniform_share=0.0, round_pairs=1, strata=1, n_bootstrap=2, grid_points=2, confirm_rounds=1
    )
    BudgetRule(agreement=2.0, uniform_share=1.0)


def test_a_new_run_knows_nothing_and_keeps_each_querys_rows_in_dataset_order():
    groups = np.tile(np.arange(50), 30)  # interleaved: every query's rows far apart
    local = np.linspace(0, 1, groups.size)
    run = BudgetRun(local, groups, BudgetRule(grid_points=7, region=(0.0, 1.0)), poly)
    assert np.isnan(run.reference).all() and not run.bought.any()
    assert run.grid.size == 7
    for q in (0, 17, 49):
        assert run.rows_of(q).tolist() == list(range(q, groups.size, 50))
    with pytest.raises(ValueError, match=r"cost must have one entry per query \(50\), got shape \(3,\)"):
        BudgetRun(local, groups, BudgetRule(), poly, cost=np.ones(3))


def test_the_first_round_follows_the_stratified_order_of_the_rule_categories_and_seed():
    s = skewed_sample(200, seed=1)
    categories = ["a" if q % 4 else "b" for q in range(200)]
    rule = BudgetRule(round_pairs=400, uniform_share=0.0, strata=3)
    run = BudgetRun(s.local, s.groups, rule, poly, categories=categories, seed=9)
    _, best, sizes = query_profiles(s.local, s.groups)
    order = stratified_order(best, strata=3, categories=categories, seed=9)
    expected = take_within(order, sizes.astype(float), 400, np.zeros(200, dtype=bool))
    assert run.next_round().queries == expected


def test_uniform_draws_are_deterministic_for_a_seed_and_never_repeat_in_a_round():
    first, _ = small_run(uniform_share=1.0)
    again, _ = small_run(uniform_share=1.0)
    assert first.next_round().queries == again.next_round().queries
    run, _ = small_run(uniform_share=0.5)
    purchase = run.next_round()
    assert len(set(purchase.queries)) == len(purchase.queries)
    assert any(purchase.uniform) and not all(purchase.uniform)


def test_a_round_that_can_buy_everything_buys_each_query_once():
    run, _ = small_run(n_queries=12, round_pairs=10_000, uniform_share=0.5)
    purchase = run.next_round()
    assert sorted(purchase.queries) == list(range(12))  # the uniform half is not bought again by the rest


def test_a_cost_limit_is_filled_not_just_respected():
    run, _ = small_run(uniform_share=0.2)
    free = run.next_round()  # no limit: the round's pairs
    cost = float(run.cost[free.queries].sum())
    exact = run.next_round(limit=cost)
    assert exact.queries == free.queries  # a limit equal to the round's cost takes all of it
    assert run.next_round(limit=float("inf")).queries == free.queries
    half = run.next_round(limit=cost / 2)
    spent = float(run.cost[half.queries].sum())
    assert spent <= cost / 2 and spent >= 0.8 * cost / 2  # the rest of the round gets what the uniform part left


def test_measure_is_the_band_and_held_out_agreement_recomputed_by_hand():
    run, s = small_run(agreement=0.5, confidence=0.9)
    run.cost = run.cost * 2.5  # a cost unit other than pairs
    first = run.next_round()
    entry = buy(run, s, first)
    rows = run.bought[run.codes]
    band = curve_band(
        run.local[rows], run.reference[rows], run.codes[rows], run.grid, poly, n_bootstrap=20, confidence=0.9, seed=4
    )
    np.testing.assert_array_equal(run.band.lower, band.lower)
    np.testing.assert_array_equal(run.band.upper, band.upper)
    pairs = int(run.sizes[first.queries].sum())
    assert (entry.index, entry.queries, entry.pairs, entry.pairs_total) == (0, len(first.queries), pairs, pairs)
    assert entry.cost == pytest.approx(2.5 * pairs) and entry.cost_total == pytest.approx(2.5 * pairs)
    assert entry.band == band.width

    # the held-out agreement: out-of-fold fits over whole queries, scored on the uniform part
    idx = np.flatnonzero(rows)
    codes = run.codes[idx]
    predictions = np.empty(idx.size)
    for train, test in grouped_splits(idx.size, codes, 5, 4):
        predictions[test] = poly().fit(run.local[idx[train]], run.reference[idx[train]]).predict(run.local[idx[test]])
    keep = run.uniform[codes]
    figures, _ = agreement(
        predictions[keep], run.reference[idx[keep]], codes[keep], n_bootstrap=100, confidence=0.9, seed=4
    )
    mae = figures["mae"]
    assert entry.agreement == {"value": mae.value, "low": mae.low, "high": mae.high}
    assert run.held_out_agreement() == entry.agreement

    second = buy(run, s, run.next_round())
    assert second.index == 1 and second.pairs_total == run.pairs_bought > pairs
    assert second.cost_total == pytest.approx(2.5 * run.pairs_bought)
    assert run.band.lower.tolist() == curve_band(
        run.local[run.bought[run.codes]], run.reference[run.bought[run.codes]], run.codes[run.bought[run.codes]],
        run.grid, poly, n_bootstrap=20, confidence=0.9, seed=5,
    ).lower.tolist()  # fmt: skip  # each round its own bootstrap seed: seed + round index


def test_held_out_agreement_needs_two_queries_and_a_uniform_one():
    run, s = small_run(uniform_share=0.0)
    assert run.measure().queries == 0  # nothing added yet: an empty round, not a crash
    assert run.held_out_agreement() is None
    q = run.next_round().queries
    run.add(Purchase(q[:1], [True]), [s.reference[run.rows_of(q[0])]])
    assert run.held_out_agreement() is None  # one query: nothing to hold out
    run.add(Purchase(q[1:2], [False]), [s.reference[run.rows_of(q[1])]])
    assert run.held_out_agreement() is not None  # two queries, one of them uniform
    only_chosen, s2 = small_run(uniform_share=0.0)
    buy(only_chosen, s2, only_chosen.next_round())
    assert only_chosen.held_out_agreement() is None  # no uniform query: no honest figure


def test_a_query_bought_uniformly_once_stays_uniform():
    run, s = small_run()
    q = int(run.next_round().queries[0])
    scores = [s.reference[run.rows_of(q)]]
    run.add(Purchase([q], [True]), scores)
    run.add(Purchase([q], [False]), scores)
    assert run.uniform[q]


def exact_targets(**rule):
    """A run whose first round is measured, then the same run with its targets set to exactly
    what was measured (confirm_rounds=1): ``<=`` must count the equality as met."""
    probe, s = small_run(confirm_rounds=1, **rule)
    measured = buy(probe, s, probe.next_round())
    return measured, s


def test_a_band_exactly_at_the_target_meets_it_and_one_above_does_not():
    measured, s = exact_targets()
    at, _ = small_run(confirm_rounds=1, band=measured.band)
    assert buy(at, s, at.next_round()).met
    above, _ = small_run(confirm_rounds=1, band=measured.band * 0.999)
    assert not buy(above, s, above.next_round()).met


def test_an_agreement_interval_exactly_at_the_target_meets_it_and_a_wider_one_does_not():
    measured, s = exact_targets(band=10.0, agreement=1.0)
    width = measured.agreement["high"] - measured.agreement["low"]
    at, _ = small_run(confirm_rounds=1, band=10.0, agreement=width)
    assert buy(at, s, at.next_round()).met
    narrower, _ = small_run(confirm_rounds=1, band=10.0, agreement=width * 0.999)
    assert not buy(narrower, s, narrower.next_round()).met
    band_only, _ = small_run(confirm_rounds=1, band=1e-9, agreement=10.0)
    assert not buy(band_only, s, band_only.next_round()).met  # both targets, not either


def test_an_agreement_target_without_a_uniform_query_is_not_met():
    run, s = small_run(confirm_rounds=1, band=10.0, agreement=10.0, uniform_share=0.0)
    assert not buy(run, s, run.next_round()).met


def test_met_needs_confirm_rounds_in_a_row():
    once, s = small_run(confirm_rounds=1, band=10.0)
    assert buy(once, s, once.next_round()).met
    never, _ = small_run(confirm_rounds=2, band=1e-9)
    assert not buy(never, s, never.next_round()).met and not buy(never, s, never.next_round()).met
    twice, _ = small_run(confirm_rounds=2, band=10.0)
    assert not buy(twice, s, twice.next_round()).met and buy(twice, s, twice.next_round()).met


def test_later_rounds_buy_where_the_band_is_widest_per_pair():
    run, s = small_run(uniform_share=0.0, round_pairs=200)
    buy(run, s, run.next_round())
    priority = band_priority(run.band, run.local, run.codes, run.sizes)
    second = run.next_round()
    left = ~run.bought
    assert priority[second.queries[0]] == priority[left].max()
    assert min(priority[second.queries]) >= np.sort(priority[left])[::-1][len(second.queries) * 3]


def test_a_round_as_json_writes_an_unbounded_band_as_null():
    entry = Round(0, 2, 10, 1.5, 10, 1.5, float("inf"), {"value": 0.1, "low": 0.05, "high": 0.2}, False)
    assert entry.as_dict() == {
        "index": 0, "queries": 2, "pairs": 10, "cost": 1.5, "pairs_total": 10, "cost_total": 1.5,
        "band": None, "agreement": {"value": 0.1, "low": 0.05, "high": 0.2}, "met": False,
    }  # fmt: skip
    assert Round(1, 1, 5, 5.0, 15, 6.5, 0.02).as_dict()["band"] == 0.02
