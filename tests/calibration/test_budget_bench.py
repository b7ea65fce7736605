"""bench/bench_budget.py's targets on a smaller sample (seconds, not minutes): kept apart from
test_budget.py's unit tests, which mutation testing runs once per mutant."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration.budget_run import BudgetRule
from pipeline.testing.budget_sim import compare


@pytest.mark.slow
def test_the_benchmarks_targets_on_a_smaller_sample():
    """bench/bench_budget.py, smaller: budgeted >= 40% fewer pairs than uniform to the same band;
    the plan within a factor 1.5; agreement at the stop close to the full-data calibrator's."""
    rule = BudgetRule(band=0.02, region=(0.9, 0.99), agreement=0.02, round_pairs=300, n_bootstrap=50)
    saved, ratios = [], []
    for seed in (0, 1):
        uniform, budgeted, full = compare(2500, rule, seed)
        assert uniform.met and budgeted.met
        saved.append(1 - budgeted.pairs / uniform.pairs)
        ratios.append(budgeted.planned / budgeted.pairs)
        assert abs(budgeted.agreement - full) <= 0.02 and budgeted.coverage >= 0.9
    assert np.mean(saved) >= 0.40, saved
    assert all(1 / 1.5 <= r <= 1.5 for r in ratios), ratios
