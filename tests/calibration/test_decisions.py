"""Keep/drop decisions at thresholds (pipeline/calibration/decisions.py), checked against plain
per-pair and per-query reimplementations, and the transferred threshold against a brute-force
search over every cut."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration.decisions import (
    decision_agreement,
    decision_agreements,
    decision_counts,
    default_thresholds,
    held_out_cuts,
    transfer_threshold,
    transfer_thresholds,
)


def _sample(seed=0, n_queries=120, docs=8):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_queries), docs)
    reference = rng.uniform(size=groups.size)
    score = np.clip(reference + rng.normal(0, 0.15, groups.size), 0, 1)
    return score, reference, groups


@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_point_figures_are_the_plain_definitions(t):
    score, reference, groups = _sample()
    figures = decision_agreement(
        decision_counts(score, reference, groups, [t]), n_bootstrap=0, confidence=0.95, seed=0
    )[0]
    keep, truth = score >= t, reference >= t
    assert figures["accuracy"].value == pytest.approx(np.mean(keep == truth))
    assert figures["precision"].value == pytest.approx(np.sum(keep & truth) / np.sum(keep))
    assert figures["recall"].value == pytest.approx(np.sum(keep & truth) / np.sum(truth))
    same = [np.array_equal(keep[groups == q], truth[groups == q]) for q in np.unique(groups)]
    assert figures["identical"].value == pytest.approx(np.mean(same))


def test_intervals_cover_the_value_and_shrink_with_more_queries():
    small = decision_agreement(
        decision_counts(*_sample(n_queries=60), [0.5]), n_bootstrap=300, confidence=0.95, seed=0
    )[0]
    large = decision_agreement(
        decision_counts(*_sample(n_queries=960), [0.5]), n_bootstrap=300, confidence=0.95, seed=0
    )[0]
    for name, m in small.items():
        assert m.low <= m.value <= m.high, name
        assert large[name].width < 0.6 * m.width, name


def test_nothing_kept_gives_nan_precision_not_an_error():
    score, reference, groups = _sample()
    figures = decision_agreement(
        decision_counts(score * 0.1, reference, groups, [0.5]), n_bootstrap=50, confidence=0.9, seed=0
    )[0]
    assert np.isnan(figures["precision"].value) and figures["recall"].value == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_transferred_threshold_is_the_best_cut(seed):
    rng = np.random.default_rng(seed)
    raw = np.round(rng.normal(size=300), 1)  # ties in the raw score too
    reference = 1 / (1 + np.exp(-(2 * raw + rng.normal(0, 0.7, raw.size))))
    cut = transfer_threshold(raw, reference, 0.6)
    candidates = np.concatenate([[-np.inf], (np.unique(raw)[1:] + np.unique(raw)[:-1]) / 2, [np.inf]])
    accuracy = lambda c: np.mean((raw >= c) == (reference >= 0.6))  # noqa: E731
    assert accuracy(cut) == pytest.approx(max(accuracy(c) for c in candidates))
    assert cut in candidates


def test_transferred_threshold_at_the_ends():
    raw = np.array([0.1, 0.2, 0.3])
    assert transfer_threshold(raw, np.array([0.9, 0.9, 0.9]), 0.5) == -np.inf  # keep everything
    assert transfer_threshold(raw, np.array([0.1, 0.1, 0.1]), 0.5) == np.inf  # keep nothing
    assert transfer_threshold(raw, np.array([0.1, 0.6, 0.9]), 0.5) == pytest.approx(0.15)


def test_a_per_row_cut_decides_like_the_shifted_score():
    score, reference, groups = _sample(seed=3)
    direct = decision_counts(score, reference, groups, [0.4], local_thresholds=[0.37])
    shifted = decision_counts(score - 0.37, reference, groups, [0.4], local_thresholds=[0.0])
    for field in ("both", "local", "reference", "identical"):
        np.testing.assert_array_equal(getattr(direct, field), getattr(shifted, field))


def test_default_thresholds_are_probability_levels_or_quantiles():
    assert default_thresholds(np.array([0.0, 0.4, 1.0])) == [0.1, 0.3, 0.5, 0.7, 0.9]
    logits = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(default_thresholds(logits), [-4.0, -2.0, 0.0, 2.0, 4.0])


@pytest.mark.parametrize("seed", range(3))
def test_held_out_cuts_from_the_whole_tables_sort_are_each_folds_own(seed):
    """One sort of the table, filtered per fold, gives what sorting each fold's training rows
    gives (ties included: the order among them decides the midpoints)."""
    rng = np.random.default_rng(seed)
    raw = np.round(rng.normal(size=500), 1)  # many ties: the order among them matters
    reference = 1 / (1 + np.exp(-(raw + rng.normal(0, 0.5, raw.size))))
    folds = rng.integers(0, 4, raw.size)
    splits = [(np.flatnonzero(folds != f), np.flatnonzero(folds == f)) for f in range(4)]
    cuts = [0.3, 0.5, 0.8, 0.99]
    held_out, final = held_out_cuts(raw, reference, cuts, splits)
    for train, test in splits:
        own = transfer_thresholds(raw[train], reference[train], cuts)
        assert own == [transfer_threshold(raw[train], reference[train], t) for t in cuts]
        np.testing.assert_array_equal(held_out[test], np.broadcast_to(own, (test.size, len(cuts))))
    assert final == transfer_thresholds(raw, reference, cuts)
    assert len({tuple(held_out[test[0]]) for _, test in splits}) > 1  # the folds do differ


def test_several_sets_of_counts_in_one_pass_equal_each_on_its_own():
    rng = np.random.default_rng(4)
    groups = np.repeat(np.arange(40), 6)
    reference = rng.random(groups.size)
    score = np.clip(reference + rng.normal(0, 0.2, groups.size), 0, 1)
    cuts = [0.2, 0.5, 0.8]
    a = decision_counts(score, reference, groups, cuts)
    b = decision_counts(score, reference, groups, cuts, local_thresholds=[0.3, 0.4, 0.9])
    boot = {"n_bootstrap": 200, "confidence": 0.9, "seed": 3}
    together = decision_agreements([a, b], **boot)
    assert together == [decision_agreement(a, **boot), decision_agreement(b, **boot)]
    assert together[0] != together[1]


def test_a_score_on_the_threshold_is_kept_on_both_sides():
    counts = decision_counts(np.array([0.5, 0.4]), np.array([0.5, 0.7]), np.array([0, 0]), [0.5])
    assert (counts.local[0, 0], counts.reference[0, 0], counts.both[0, 0]) == (1.0, 2.0, 1.0)
    cut = decision_counts(np.array([0.2, 0.1]), np.array([0.5, 0.7]), np.array([0, 0]), [0.5], local_thresholds=[0.2])
    assert cut.local[0, 0] == 1.0


def test_a_tie_between_keeping_all_and_another_cut_keeps_all():
    """Keeping everything and keeping nothing both agree on one of these two pairs: the lowest
    cut wins (``-inf``), so a tie never drops what the reference might keep."""
    assert transfer_threshold(np.array([1.0, 2.0]), np.array([0.9, 0.1]), 0.5) == float("-inf")


def test_no_pairs_no_cut_to_learn():
    assert transfer_thresholds(np.array([]), np.array([]), [0.3, 0.5]) == [float("-inf")] * 2


def test_a_row_in_no_test_fold_has_no_cut():
    raw = np.linspace(0, 1, 20)
    reference = raw.copy()
    splits = [(np.arange(10, 20), np.arange(0, 5))]  # rows 5..9 in no test fold
    held_out, _ = held_out_cuts(raw, reference, [0.5], splits)
    assert not np.any(np.isnan(held_out[:5])) and np.all(np.isnan(held_out[5:10]))


@pytest.mark.parametrize(
    ("reference", "probability"),
    [
        (np.array([0.0, 1.0]), True),
        (np.array([0.0, 1.5]), False),  # above 1: not a probability
        (np.array([-0.5, 0.5]), False),  # below 0
        (np.array([-2.0, 1.0]), False),
    ],
)
def test_probability_levels_only_for_a_reference_within_0_and_1(reference, probability):
    assert (default_thresholds(reference) == [0.1, 0.3, 0.5, 0.7, 0.9]) is probability


def test_the_report_block_writes_an_unbounded_cut_as_null():
    from pipeline.calibration.decisions import as_dict
    from pipeline.calibration.metrics import MetricValue

    figures = {m: MetricValue(1.0, 1.0, 1.0) for m in ("accuracy", "precision", "recall", "identical")}
    block = as_dict([0.1, 0.5, 0.9], [figures] * 3, [figures] * 3, [float("-inf"), 0.25, float("inf")])
    assert [b["transferred_threshold"] for b in block] == [None, 0.25, None]
    assert block[1]["calibrated"]["accuracy"]["value"] == 1.0


def test_intervals_are_the_same_for_the_same_seed():
    score, reference, groups = _sample(seed=5)
    counts = decision_counts(score, reference, groups, [0.5])
    boot = {"n_bootstrap": 100, "confidence": 0.9}
    assert decision_agreements([counts], seed=1, **boot) == decision_agreements([counts], seed=1, **boot)
    assert decision_agreements([counts], seed=1, **boot) != decision_agreements([counts], seed=2, **boot)


def test_no_pairs_count_as_no_queries():
    counts = decision_counts(np.empty(0), np.empty(0), np.empty(0, dtype=int), [0.5, 0.7])
    assert counts.n.shape == (0,) and counts.both.shape == counts.identical.shape == (0, 2)
