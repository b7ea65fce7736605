"""align's ranking of candidates and its coordinate search, on figures and evaluators written by
hand (no model): which candidate wins, in which order the figures decide, what is written, and
which candidates the search tries. Milliseconds: these are the tests ``make mutate`` runs against
pipeline/align/search.py; tests/align/test_align.py runs the whole command on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from pipeline.align.search import Measured, best_of, coordinate_search, measure, monotone_pearson, plain
from pipeline.calibration.metrics import MetricValue

NAN = float("nan")


def _m(
    name: str,
    spearman: float,
    kendall: float = 0.5,
    pearson: float = 0.8,
    mae: float = 0.1,
    max_delta: float = 0.2,
    error: str | None = None,
) -> Measured:
    return Measured(
        {"template": name},
        MetricValue(spearman, spearman - 0.1, spearman + 0.1),
        MetricValue(kendall, kendall - 0.1, kendall + 0.1),
        pearson,
        mae,
        max_delta,
        error=error,
    )


def _winner(*candidates: Measured) -> str:
    return best_of(candidates).settings["template"]


# --- the ranking ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, winner",
    [
        # per-query Spearman decides first, whatever the other figures say
        (_m("a", 0.90, kendall=0.1, pearson=0.1, mae=0.9, max_delta=0.9), _m("b", 0.80), "a"),
        # Spearman equal at 4 decimals (not exactly): Kendall decides, against the 5th decimal
        (_m("a", 0.90004, kendall=0.5), _m("b", 0.90001, kendall=0.6), "b"),
        # ... a Spearman difference at the 4th decimal still decides
        (_m("a", 0.9001, kendall=0.1), _m("b", 0.9000, kendall=0.9), "a"),
        # Spearman and Kendall equal: Pearson after the monotone map
        (_m("a", 0.9, pearson=0.95, mae=0.5), _m("b", 0.9, pearson=0.90, mae=0.0), "a"),
        # Kendall equal at 4 decimals (not exactly): Pearson decides, against the 5th decimal
        (_m("a", 0.9, kendall=0.50004, pearson=0.7), _m("b", 0.9, kendall=0.50001, pearson=0.8), "b"),
        # Pearson equal at 4 decimals: raw MAE, compared exactly, against the 5th decimal
        (_m("a", 0.9, pearson=0.80004, mae=0.100001), _m("b", 0.9, pearson=0.80001, mae=0.1), "b"),
        # ... then the largest |delta|, exactly
        (_m("a", 0.9, max_delta=0.2000001), _m("b", 0.9, max_delta=0.2), "b"),
    ],
)
def test_candidates_are_ranked_by_rank_agreement_then_monotone_fit_then_raw_error(a, b, winner):
    assert _winner(a, b) == winner
    assert _winner(b, a) == winner


@pytest.mark.parametrize("field", ["spearman", "kendall", "pearson", "mae", "max_delta"])
def test_an_undefined_figure_ranks_as_the_worst_value_of_its_kind(field):
    worst_defined = {"spearman": -1.0, "kendall": -1.0, "pearson": -1.0, "mae": 1e300, "max_delta": 1e300}[field]
    defined = _m("defined", 0.5, **({} if field == "spearman" else {field: worst_defined}))
    if field == "spearman":
        defined = _m("defined", worst_defined)
    undefined = _m("undefined", NAN) if field == "spearman" else _m("undefined", 0.5, **{field: NAN})
    assert _winner(undefined, defined) == "defined"
    assert _winner(defined, undefined) == "defined"


def test_a_failed_candidate_ranks_after_every_measured_one():
    failed = Measured({"template": "failed"}, error="could not load")
    hopeless = _m("hopeless", NAN, kendall=NAN, pearson=NAN, mae=NAN, max_delta=NAN)
    assert _winner(failed, hopeless) == "hopeless"
    assert failed.rank_key() > hopeless.rank_key() and not failed.ok and hopeless.ok


def test_as_dict_rounds_writes_undefined_as_null_and_a_failure_as_its_error():
    m = Measured(
        {"template": "vllm", "max_length": MetricValue(512, 0, 0)},
        MetricValue(0.123456789, 0.1, 0.2),
        MetricValue(NAN, NAN, NAN),
        0.987654321,
        0.0123456789,
        NAN,
    )
    out = json.loads(json.dumps(m.as_dict(), allow_nan=False))
    assert out == {
        "settings": {"template": "vllm", "max_length": 512},
        "spearman": {"value": 0.123457, "ci_low": 0.1, "ci_high": 0.2},
        "kendall": {"value": None, "ci_low": None, "ci_high": None},
        "pearson_monotone": 0.987654,
        "mae": 0.01234568,
        "max_abs_delta": None,
    }
    finite = Measured({}, MetricValue(0.5, 0.4, 0.6), MetricValue(0.5, 0.4, 0.6), 0.5, 0.1, 0.0123456789).as_dict()
    assert finite["max_abs_delta"] == 0.01234568
    failed = Measured({"template": "official"}, error="OSError: no such file")
    assert failed.as_dict() == {"settings": {"template": "official"}, "error": "OSError: no such file"}
    assert plain(3) == 3 and plain(MetricValue(0.5, 0, 1)) == 0.5


# --- the figures ------------------------------------------------------------------------------


def test_monotone_pearson_forgives_a_monotone_transform_but_not_a_reordering():
    local = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert monotone_pearson(local, local**3) == pytest.approx(1.0)
    # a swapped pair: the best non-decreasing map pools it at the mean (pool adjacent violators)
    api = np.array([0.1, 0.3, 0.2, 0.4, 0.5])
    fitted = np.array([0.1, 0.25, 0.25, 0.4, 0.5])
    assert monotone_pearson(local, api) == pytest.approx(np.corrcoef(fitted, api)[0, 1], abs=1e-12)
    # scores spanning exactly 1 (probabilities from 0 to 1) are not "constant"
    unit = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    assert monotone_pearson(unit, unit**2) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "local, api",
    [
        ([0.3, 0.3, 0.3], [0.1, 0.2, 0.3]),  # constant candidate
        ([0.1, 0.2, 0.3], [0.5, 0.5, 0.5]),  # constant API
        ([0.1, 0.2, 0.3], [0.3, 0.2, 0.1]),  # reversed: the best monotone map is constant
    ],
)
def test_monotone_pearson_is_undefined_when_a_side_or_the_map_is_constant(local, api):
    assert np.isnan(monotone_pearson(np.array(local), np.array(api)))


def test_measure_reports_per_query_rank_agreement_and_raw_errors():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(6), 5)
    api = rng.uniform(size=30)
    local = api + rng.normal(scale=0.1, size=30)
    m = measure({"template": "vllm"}, local, api, groups, n_bootstrap=200, seed=1)
    per_query = [stats.spearmanr(local[groups == g], api[groups == g]).statistic for g in range(6)]
    assert m.spearman.value == pytest.approx(np.mean(per_query), abs=1e-12)
    assert m.spearman.low < m.spearman.value < m.spearman.high
    per_query_tau = [stats.kendalltau(local[groups == g], api[groups == g]).statistic for g in range(6)]
    assert m.kendall.value == pytest.approx(np.mean(per_query_tau), abs=1e-12)
    assert m.mae == pytest.approx(np.abs(local - api).mean()) and m.max_delta == pytest.approx(
        np.abs(local - api).max()
    )
    assert m.pearson_monotone == pytest.approx(monotone_pearson(local, api))
    assert m.scores is local and m.settings == {"template": "vllm"} and m.ok
    # the interval is the bootstrap's of those settings: another seed or size draws another interval
    again = measure({}, local, api, groups, n_bootstrap=200, seed=1)
    assert (again.spearman.low, again.spearman.high) == (m.spearman.low, m.spearman.high)
    other = measure({}, local, api, groups, n_bootstrap=200, seed=2)
    fewer = measure({}, local, api, groups, n_bootstrap=20, seed=1)
    assert (other.spearman.low, other.spearman.high) != (m.spearman.low, m.spearman.high)
    assert (fewer.spearman.low, fewer.spearman.high) != (m.spearman.low, m.spearman.high)


# --- the search -------------------------------------------------------------------------------


def _evaluator(quality: dict[tuple, float], calls: list):
    """Each candidate (a, b) scores ``quality[(a, b)]`` on every figure; calls records the order."""

    def evaluate(s):
        calls.append((s["a"], s["b"]))
        q = quality[(s["a"], s["b"])]
        return Measured(dict(s), MetricValue(q, q, q), MetricValue(q, q, q), q, 1 - q, 1 - q)

    return evaluate


def test_coordinate_search_tries_every_single_change_before_moving_greedily():
    # (a=1) alone looks better than the start, but the optimum is (a=0, b=1): a purely greedy pass
    # that moves to a=1 first never tries b=1 on a=0
    quality = {(0, 0): 0.50, (1, 0): 0.60, (1, 1): 0.55, (0, 1): 0.99}
    calls: list = []
    results = coordinate_search(
        {"a": 0, "b": 0},
        {"a": [0, 1], "b": [0, 1]},
        _evaluator(quality, calls),
        max_passes=2,
        good_enough=lambda m: False,
    )
    best = best_of(results)
    assert (best.settings["a"], best.settings["b"]) == (0, 1)
    assert calls[0] == (0, 0) and results[0].settings == {"a": 0, "b": 0}  # the start first
    assert len(calls) == len(set(calls)) == 4  # every distinct candidate once


def test_the_combination_of_each_axis_best_single_change_is_tried():
    # a and b each help alone; together they are best, and only the combination step reaches it
    # without a greedy pass (max_passes=0)
    quality = {(0, 0): 0.1, (1, 0): 0.5, (0, 1): 0.4, (1, 1): 0.9, (2, 0): 0.2, (0, 2): 0.3}
    calls: list = []
    results = coordinate_search(
        {"a": 0, "b": 0},
        {"a": [1, 2], "b": [1, 2]},
        _evaluator(quality, calls),
        max_passes=0,
        good_enough=lambda m: False,
    )
    assert calls == [(0, 0), (1, 0), (2, 0), (0, 1), (0, 2), (1, 1)]
    assert best_of(results).settings == {"a": 1, "b": 1}


def test_greedy_passes_move_from_the_best_and_stop_at_max_passes():
    # a chain only greedy moves reach: (1,0) after the single changes, (1,1) in pass 1, (2,1) then
    # (2,2) in pass 2
    quality = {
        (0, 0): 0.1,
        (1, 0): 0.2,
        (2, 0): 0.05,
        (0, 1): 0.05,
        (0, 2): 0.05,
        (1, 1): 0.3,
        (1, 2): 0.05,
        (2, 1): 0.4,
        (2, 2): 0.5,
        (0, 3): 0.0,
    }
    for passes, expected in [(1, (1, 1)), (2, (2, 2)), (5, (2, 2))]:
        calls: list = []
        results = coordinate_search(
            {"a": 0, "b": 0},
            {"a": [0, 1, 2], "b": [0, 1, 2]},
            _evaluator(quality, calls),
            max_passes=passes,
            good_enough=lambda m: False,
        )
        best = best_of(results)
        assert (best.settings["a"], best.settings["b"]) == expected, passes
        assert len(calls) == len(set(calls))
    # a pass that changes nothing ends the search: every candidate of the grid was tried at most once
    assert len(results) == len(calls) <= 9


def test_the_search_stops_as_soon_as_the_best_is_good_enough_and_reports_progress():
    quality = {(0, 0): 0.1, (1, 0): 0.95, (2, 0): 0.3, (0, 1): 0.2, (0, 2): 0.2, (1, 1): 0.2, (1, 2): 0.2}
    calls: list = []
    seen: list = []
    results = coordinate_search(
        {"a": 0, "b": 0},
        {"a": [1, 2], "b": [1, 2]},
        _evaluator(quality, calls),
        max_passes=3,
        good_enough=lambda m: m.spearman.value >= 0.9,
        on_result=lambda m, best: seen.append((m.settings["a"], best.settings["a"])),
    )
    assert calls == [(0, 0), (1, 0)]  # nothing after the first good-enough candidate
    assert [m.settings for m in results] == [{"a": 0, "b": 0}, {"a": 1, "b": 0}]
    assert seen == [(0, 0), (1, 1)]  # each result with the best so far


def test_good_enough_reached_in_a_greedy_pass_ends_the_search():
    quality = {
        (0, 0): 0.1,
        (1, 0): 0.2,
        (0, 1): 0.15,
        (1, 1): 0.3,
        (2, 1): 0.95,
        (2, 0): 0.05,
        (1, 2): 0.0,
        (0, 2): 0.0,
        (2, 2): 0.0,
    }
    calls: list = []
    coordinate_search(
        {"a": 0, "b": 0},
        {"a": [1, 2], "b": [1, 2]},
        _evaluator(quality, calls),
        max_passes=5,
        good_enough=lambda m: m.spearman.value >= 0.9,
    )
    assert calls[-1] == (2, 1) and len(calls) == len(set(calls))


def test_settings_that_differ_only_in_a_metric_wrapper_are_one_candidate():
    calls: list = []

    def evaluate(s):
        calls.append(dict(s))
        return Measured(dict(s), MetricValue(0.5, 0.4, 0.6), MetricValue(0.5, 0.4, 0.6), 0.5, 0.1, 0.1)

    coordinate_search(
        {"max_length": 512},
        {"max_length": [MetricValue(512, 0, 0), 256]},
        evaluate,
        max_passes=1,
        good_enough=lambda m: False,
    )
    assert [plain(c["max_length"]) for c in calls] == [512, 256]


def test_the_combination_is_not_tried_once_a_single_change_is_good_enough():
    # the single change b=1 is good enough; a=1 was the best change of axis a, but (1, 1) costs
    # a candidate for nothing
    quality = {(0, 0): 0.1, (1, 0): 0.5, (0, 1): 0.95, (1, 1): 0.2}
    calls: list = []
    coordinate_search(
        {"a": 0, "b": 0},
        {"a": [1], "b": [1]},
        _evaluator(quality, calls),
        max_passes=3,
        good_enough=lambda m: m.spearman.value >= 0.9,
    )
    assert calls == [(0, 0), (1, 0), (0, 1)]


def test_a_tie_does_not_move_the_search():
    # (1, 0) ties with the start: the greedy pass stays at the start (only a strict improvement
    # moves), so (1, 2), reachable only from (1, 0), is never evaluated
    quality = {(0, 0): 0.5, (1, 0): 0.5, (0, 1): 0.1, (0, 2): 0.05, (1, 1): 0.2, (1, 2): 0.0}
    calls: list = []
    results = coordinate_search(
        {"a": 0, "b": 0}, {"a": [1], "b": [1, 2]}, _evaluator(quality, calls), max_passes=3, good_enough=lambda m: False
    )
    assert (1, 2) not in calls and sorted(calls) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    assert best_of(results).settings == {"a": 0, "b": 0}  # of tied candidates, the first evaluated


def test_monotone_pearson_is_nan_when_the_best_monotone_map_is_constant():
    """Scores that fall where the API's rise: the isotonic fit is one value, whose mean may round
    away from it, so the figure must be NaN (ranked last), never a tiny defined correlation."""
    assert np.isnan(monotone_pearson(np.arange(1.0, 7.0), np.array([0.35, 0.3, 0.25, 0.2, 0.15, 0.1])))
