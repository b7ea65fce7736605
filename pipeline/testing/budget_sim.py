"""Budgeted against uniform collection on generated data with a known map (bench and tests).

Both arms run :class:`~pipeline.calibration.budget_run.BudgetRun` with the same band estimator,
rounds and stopping rule; the uniform arm buys every round uniformly at random
(``uniform_share=1``). "Buying" reads the generated reference scores.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pipeline.calibration.budget_plan import estimate_pairs
from pipeline.calibration.budget_run import BudgetRule, BudgetRun
from pipeline.calibration.calibrators import grouped_splits, make_calibrator
from pipeline.calibration.synthetic import SkewedSample, skewed_map, skewed_sample


@dataclass
class ArmResult:
    pairs: int
    rounds: int
    band: float
    coverage: float  # share of the band's grid points where it holds the known map
    met: bool
    agreement: float | None  # held-out agreement (the rule's metric, uniform part) at the stop
    planned: float | None = None  # the plan's estimate from the first round (budgeted arm)
    planned_low: float | None = None
    planned_high: float | None = None


def run_arm(sample: SkewedSample, rule: BudgetRule, seed: int, *, uniform: bool, plan: bool = False) -> ArmResult:
    """Rounds until the rule is met (or every query is bought)."""
    arm_rule = replace(rule, uniform_share=1.0) if uniform else rule
    run = BudgetRun(sample.local, sample.groups, arm_rule, lambda: make_calibrator("poly"), seed=seed)
    estimate = None
    while True:
        purchase = run.next_round()
        if purchase.empty:
            break
        run.add(purchase, [sample.reference[run.rows_of(q)] for q in purchase.queries])
        measured = run.measure()
        if plan and len(run.rounds) == 1:
            estimate = estimate_pairs(run, simulations=5, seed=seed)
        if measured.met:
            break
    band = run.band
    truth = skewed_map(band.grid)
    held_out = run.held_out_agreement()
    return ArmResult(
        pairs=run.pairs_bought,
        rounds=len(run.rounds),
        band=band.width,
        coverage=float(np.mean((band.lower <= truth) & (truth <= band.upper))),
        met=bool(run.rounds[-1].met),
        agreement=None if held_out is None else held_out["value"],
        planned=None if estimate is None else estimate.pairs,
        planned_low=None if estimate is None else estimate.low,
        planned_high=None if estimate is None else estimate.high,
    )


def full_data_agreement(sample: SkewedSample, rule: BudgetRule, seed: int) -> float:
    """The rule's metric for a calibrator fitted on every pair, held out by query (5 folds)."""
    from pipeline.calibration.metrics import agreement

    predictions = np.empty(sample.local.size)
    for train, test in grouped_splits(sample.local.size, sample.groups, rule.n_splits, seed):
        model = make_calibrator("poly").fit(sample.local[train], sample.reference[train])
        predictions[test] = model.predict(sample.local[test])
    figures, _ = agreement(predictions, sample.reference, sample.groups, n_bootstrap=0, seed=seed)
    return figures[rule.agreement_metric].value


def compare(n_queries: int, rule: BudgetRule, seed: int) -> tuple[ArmResult, ArmResult, float]:
    """``(uniform, budgeted, full-data agreement)`` on one generated sample."""
    sample = skewed_sample(n_queries, seed=seed)
    return (
        run_arm(sample, rule, seed, uniform=True),
        run_arm(sample, rule, seed, uniform=False, plan=True),
        full_data_agreement(sample, rule, seed),
    )


def coverage_at_stop(n_queries: int, rule: BudgetRule, seed: int) -> tuple[float, float]:
    """``(uniform, budgeted)`` coverage of the known map by each arm's band where it stopped, on
    one generated sample: the cheap part of :func:`compare`, for coverage over many seeds (one
    run's coverage is nearly all or nothing: the fit's error is one smooth curve)."""
    sample = skewed_sample(n_queries, seed=seed)
    return run_arm(sample, rule, seed, uniform=True).coverage, run_arm(sample, rule, seed, uniform=False).coverage


def fixed_design_coverage(
    n_queries: int, bought: int, draws: int, seed: int = 0
) -> tuple[float, np.ndarray, np.ndarray]:
    """Coverage of the band without any stopping rule: ``bought`` queries drawn uniformly once,
    the reference redrawn ``draws`` times around the known map. Returns ``(coverage, true sd of
    the fit, mean band half-width / 1.96)`` on the grid (the latter two at its 0.9, 0.945 and
    0.99 quantile points): whether the bootstrap band is as wide as the fit's real spread."""
    from pipeline.calibration.budget import band_grid, curve_band

    sample = skewed_sample(n_queries, seed=seed)
    grid = band_grid(sample.local, (0.9, 0.99))
    chosen = np.random.default_rng(seed + 1).permutation(n_queries)[:bought]
    rows = np.isin(sample.groups, chosen)
    x, g = sample.local[rows], sample.groups[rows]
    truth = skewed_map(grid)
    fits, halves, covered = [], [], []
    for k in range(draws):
        rng = np.random.default_rng([seed, k])
        y = skewed_map(x) + rng.normal(0, 0.02, n_queries)[g] + rng.normal(0, 0.05, x.size)
        band = curve_band(x, y, g, grid, lambda: make_calibrator("poly"), n_bootstrap=100, seed=k)
        fits.append(make_calibrator("poly").fit(x, y).predict(grid))
        halves.append(band.widths / 2)
        covered.append(np.mean((band.lower <= truth) & (truth <= band.upper)))
    points = [0, grid.size // 2, grid.size - 1]
    return float(np.mean(covered)), np.std(fits, axis=0)[points], (np.mean(halves, axis=0) / 1.96)[points]
