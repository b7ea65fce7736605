"""Per-score intervals (pipeline/calibration/conformal.py fits, pipeline/runtime/intervals.py
applies): held-out coverage at the nominal rate on generated data, narrower where the noise is
low, and a table reader that refuses what it cannot apply."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration.calibrators import grouped_splits, make_calibrator
from pipeline.calibration.conformal import conformal_offsets, fit_intervals
from pipeline.calibration.fusion import ScoreCalibrationModel
from pipeline.fit.evaluation import out_of_fold
from pipeline.runtime.intervals import IntervalError, compile_intervals
from pipeline.testing.intervals_data import interval_sample


def _fitted(seed, heteroscedastic, n_queries=400):
    x, y, g, _ = interval_sample(n_queries, seed=seed, heteroscedastic=heteroscedastic)
    model = ScoreCalibrationModel(make_calibrator("isotonic"), sources=["x"])
    held_out, _ = out_of_fold(model, x[:, None], y, g, grouped_splits(x.size, g, 5, seed))
    table = fit_intervals(held_out, y, y_range=(0.0, 1.0))
    return model.fit(x[:, None], y, groups=g), compile_intervals(table)


@pytest.mark.parametrize("coverage", [0.8, 0.9, 0.95])
def test_held_out_coverage_is_nominal_over_seeds(coverage):
    got = []
    for seed in range(4):
        model, apply = _fitted(seed, heteroscedastic=False)
        x, y, _, _ = interval_sample(400, seed=100 + seed)
        low, high = apply(model.predict(x[:, None]), coverage)
        got.append(np.mean((low <= y) & (y <= high)))
    assert abs(np.mean(got) - coverage) <= 0.02, got
    assert all(abs(c - coverage) <= 0.04 for c in got), got


def test_intervals_are_narrow_where_the_noise_is_low_and_cover_in_each_half():
    widths, cover = {"low": [], "high": []}, {"low": [], "high": []}
    for seed in range(3):
        model, apply = _fitted(seed, heteroscedastic=True, n_queries=600)
        x, y, _, sd = interval_sample(600, seed=200 + seed, heteroscedastic=True)
        low, high = apply(model.predict(x[:, None]), 0.9)
        for half, rows in (("low", sd < np.median(sd)), ("high", sd >= np.median(sd))):
            widths[half].append(np.mean(high[rows] - low[rows]))
            cover[half].append(np.mean((low[rows] <= y[rows]) & (y[rows] <= high[rows])))
    assert np.mean(widths["low"]) <= 0.6 * np.mean(widths["high"]), widths
    for half in cover:
        assert abs(np.mean(cover[half]) - 0.9) <= 0.03, (half, cover)


def test_offsets_are_the_conformal_ranks():
    r = np.arange(1.0, 20.0)  # 19 residuals: 1..19
    assert conformal_offsets(r, 0.9) == (1.0, 19.0)  # ranks floor(20 * .05) = 1, ceil(20 * .95) = 19
    assert conformal_offsets(r, 0.5) == (5.0, 15.0)
    assert conformal_offsets(r[:5], 0.9) == (None, None)  # too few for a bounded interval
    low, high = conformal_offsets(np.random.default_rng(0).normal(size=10_000), 0.9)
    assert low == pytest.approx(-1.645, abs=0.05) and high == pytest.approx(1.645, abs=0.05)


def _table(**change):
    s = np.linspace(0, 1, 1000)
    table = fit_intervals(s, s + np.random.default_rng(0).normal(0, 0.05, s.size), y_range=(0.0, 1.0))
    table.update(change)
    return table


def test_a_coverage_between_stored_ones_uses_the_next_one_up_and_none_above_the_top():
    apply = compile_intervals(_table())
    s = np.array([0.5])
    assert np.array_equal(apply(s, 0.85), apply(s, 0.9)) and not np.array_equal(apply(s, 0.9), apply(s, 0.8))
    with pytest.raises(IntervalError, match=r"coverage 0.995 is above the largest this artifact holds \(0.99\)"):
        apply(s, 0.995)
    with pytest.raises(IntervalError, match=r"coverage must lie in \(0, 1\), got 1"):
        apply(s, 1.0)


def test_an_unbounded_side_is_the_end_of_the_range_and_intervals_stay_in_it():
    table = _table(lower=[[None] * 5] * len(_table()["lower"]))
    low, high = compile_intervals(table)(np.array([0.2, 0.999]), 0.9)
    assert np.all(low == 0.0) and np.all(high <= 1.0) and np.all(low <= high)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "score-intervals/v9"}, "unknown intervals format"),
        ({"edges": _table()["edges"][::-1]}, "must be increasing"),
        ({"coverage": [0.5, 0.8, 0.9, 0.95, 1.2]}, "within \\(0, 1\\)"),
        ({"lower": [[0.0] * 5]}, "must be"),
        ({"y_range": [1.0, 0.0]}, "is not a range"),
        ({"upper": None}, "lower/upper must be"),
        ({"upper": [["a"] * 5]}, "malformed intervals table"),
        ({"edges": [[0.2], [0.5]]}, "^intervals: edges and coverage must be flat lists$"),
        ({"coverage": [[0.5, 0.8, 0.9, 0.95, 0.99]]}, "must be flat lists"),
        ({"edges": [_table()["edges"][0]] + _table()["edges"][:-1]}, "must be increasing"),  # a bin of no width
        ({"coverage": [0.5, 0.5, 0.9, 0.95, 0.99]}, "must be increasing"),
        ({"coverage": [0.0, 0.8, 0.9, 0.95, 0.99]}, "within \\(0, 1\\)"),
        (
            {"coverage": [0.5, 0.8, 0.9, 0.95, 1.0]},
            "^intervals: edges and coverages must be increasing, coverages within \\(0, 1\\)$",
        ),
        ({"y_range": [0.0, float("inf")]}, "is not a range"),
        ({"y_range": [0.0]}, "malformed intervals table"),
    ],
)
def test_a_malformed_table_is_refused(change, message):
    with pytest.raises(IntervalError, match=message):
        compile_intervals(_table(**change))


def test_the_refusal_names_the_unknown_format():
    with pytest.raises(IntervalError, match="unknown intervals format 'score-intervals/v9'; this reader knows"):
        compile_intervals(_table(format="score-intervals/v9"))


def test_an_offset_unbounded_the_wrong_way_is_refused():
    """+inf as a lower offset (or -inf as an upper one) is no interval, even when the other side
    is unbounded too (so ``lower > upper`` alone does not catch it)."""
    n, k = len(_table()["lower"]), 5
    with pytest.raises(IntervalError, match="^intervals: a lower offset lies above its upper offset$"):
        compile_intervals(_table(lower=[[float("inf")] * k] * n, upper=[[float("inf")] * k] * n))
    with pytest.raises(IntervalError, match="lower offset lies above"):
        compile_intervals(_table(lower=[[float("-inf")] * k] * n, upper=[[float("-inf")] * k] * n))


def test_a_zero_width_interval_is_an_interval():
    n = len(_table()["lower"])
    low, high = compile_intervals(_table(lower=[[0.0] * 5] * n, upper=[[0.0] * 5] * n))(np.array([0.3]), 0.9)
    assert low[0] == high[0] == 0.3


def test_a_constant_reference_is_a_range_of_one_point():
    low, high = compile_intervals(_table(y_range=[0.5, 0.5]))(np.array([0.1, 0.9]), 0.9)
    assert np.all(low == 0.5) and np.all(high == 0.5)


def test_a_score_on_an_edge_belongs_to_the_bin_above_it():
    table = _table(edges=[0.5], lower=[[-0.1] * 5, [-0.3] * 5], upper=[[0.1] * 5, [0.3] * 5], y_range=[-5, 5])
    apply = compile_intervals(table)
    low, high = apply(np.array([0.4999, 0.5, 0.5001]), 0.9)
    np.testing.assert_allclose(low, [0.3999, 0.2, 0.2001])
    np.testing.assert_allclose(high, [0.5999, 0.8, 0.8001])


def test_coverage_zero_and_the_message_that_lists_what_is_held():
    apply = compile_intervals(_table())
    with pytest.raises(IntervalError, match=r"coverage must lie in \(0, 1\), got 0"):
        apply(np.array([0.5]), 0.0)
    with pytest.raises(IntervalError, match=r"it holds 0.5, 0.8, 0.9, 0.95, 0.99$"):
        apply(np.array([0.5]), 0.999)


def test_an_inverted_interval_is_refused():
    table = _table()
    table["lower"] = [[v + 1.0 if v is not None else None for v in row] for row in table["upper"]]
    with pytest.raises(IntervalError, match="lower offset lies above"):
        compile_intervals(table)


def test_ranks_at_the_smallest_sample_that_bounds_a_90_percent_interval():
    """(m + 1) * 0.05 reaches 1 at m = 19: 18 residuals cannot bound a 90% interval, 19 can
    (the smallest and the largest)."""
    r = np.arange(1.0, 20.0)
    assert conformal_offsets(r[:18], 0.9) == (None, None)
    assert conformal_offsets(r, 0.9) == (1.0, 19.0)


@pytest.mark.parametrize(("n", "bins"), [(399, 1), (400, 2), (2000, 10), (5000, 10)])
def test_bins_hold_at_least_200_pairs_and_number_at_most_10(n, bins):
    s = np.linspace(0, 1, n)
    table = fit_intervals(s, s, y_range=(0.0, 1.0))
    assert len(table["counts"]) == bins == len(table["edges"]) + 1
    assert sum(table["counts"]) == n and min(table["counts"]) >= min(n, 200)


def test_pairs_on_a_bin_edge_are_counted_in_the_bin_the_reader_puts_them_in():
    """Many calibrated scores tie on an edge (a flat stretch of the map); the fit must count
    them where the reader (runtime/intervals.py, ``side="right"``: the bin above) applies them."""
    predicted = np.repeat([0.0, 0.5, 1.0], [200, 400, 200])
    table = fit_intervals(predicted, predicted + np.linspace(-0.1, 0.1, predicted.size), y_range=(-1.0, 2.0))
    assert 0.5 in table["edges"]
    reader_bins = np.searchsorted(np.asarray(table["edges"]), predicted, side="right")
    assert table["counts"] == np.bincount(reader_bins, minlength=len(table["counts"])).tolist()
    assert table["method"].startswith("split-conformal per bin of the calibrated score")
