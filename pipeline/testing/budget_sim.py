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
