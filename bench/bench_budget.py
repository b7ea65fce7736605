"""Budgeted collection against uniform random query sampling: paid pairs to the same band.

On generated reranker-like data (``pipeline.calibration.synthetic.skewed_sample``: per-query
relevance offsets, a steep local score so the median pair scores ~0.03 and the top decile starts
near 0.3; the reference is a known monotone cubic of the local score plus a per-query shift and
pair noise), several seeds. Both arms run ``BudgetRun`` with the same band estimator (bootstrap
over whole queries of the fitted third-order calibrator, on local-score quantiles 0.9-0.99: the
top decile but its last percent), the same rounds and the same stopping rule (band and held-out
agreement interval widths); the baseline arm, measured in the same run, buys every round
uniformly at random.

Targets (issue #25):
- the budgeted arm reaches the band with >= 40% fewer paid pairs than the uniform arm;
- each arm's band covers the known map at its nominal rate (95%, per grid point);
- held-out agreement at the stop within its target of the full-data calibrator's;
- the plan's estimate (from the first round) within a factor 1.5 of the pairs the run used.

    python bench/bench_budget.py [--queries 5000] [--seeds 8] [--coverage-seeds 48] [--band 0.012] [--agreement 0.01]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pipeline.calibration.budget_run import BudgetRule
from pipeline.testing.budget_sim import compare, coverage_at_stop, fixed_design_coverage


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=5000)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--band", type=float, default=0.012)
    parser.add_argument("--agreement", type=float, default=0.01, help="width target of the held-out MAE interval")
    parser.add_argument("--round-pairs", type=int, default=500)
    parser.add_argument("--confirm", type=int, default=2, help="rounds in a row that must meet the targets")
    parser.add_argument(
        "--coverage-seeds", type=int, default=48,
        help="seeds of the coverage figure (the table's seeds and more, both arms without the plan)",
    )  # fmt: skip
    parser.add_argument(
        "--fixed-draws", type=int, default=40, help="draws of the fixed-design coverage check (0: skip)"
    )
    args = parser.parse_args()
    rule = BudgetRule(
        band=args.band, region=(0.9, 0.99), agreement=args.agreement, agreement_metric="mae",
        round_pairs=args.round_pairs, confirm_rounds=args.confirm,
    )  # fmt: skip
    print(
        f"{args.queries} queries per sample, band <= {args.band:g} over local-score quantiles 0.9-0.99, "
        f"MAE interval <= {args.agreement:g}, rounds of {args.round_pairs} pairs"
    )
    header = "seed   uniform  budgeted  ratio   coverage u/b   MAE at stop u/b   full-data MAE   plan (range)          plan/used"
    print(header)
    rows = []
    for seed in range(args.seeds):
        started = time.perf_counter()
        uniform, budgeted, full = compare(args.queries, rule, seed)
        rows.append((uniform, budgeted, full))
        print(
            f"{seed:<5}  {uniform.pairs:>7}  {budgeted.pairs:>8}  {budgeted.pairs / uniform.pairs:5.2f}   "
            f"{uniform.coverage:5.2f}/{budgeted.coverage:4.2f}      {uniform.agreement:.4f}/{budgeted.agreement:.4f}"
            f"     {full:.4f}          {budgeted.planned:>6.0f} ({budgeted.planned_low:.0f}-{budgeted.planned_high:.0f})"
            f"    {budgeted.planned / budgeted.pairs:5.2f}   ({time.perf_counter() - started:.0f} s)"
        )
    uniform_pairs = np.array([u.pairs for u, _, _ in rows], dtype=float)
    budget_pairs = np.array([b.pairs for _, b, _ in rows], dtype=float)
    saving = 1.0 - budget_pairs.sum() / uniform_pairs.sum()
    covered = [(u.coverage, b.coverage) for u, b, _ in rows]
    for seed in range(args.seeds, args.coverage_seeds):
        covered.append(coverage_at_stop(args.queries, rule, seed))
    covered = np.array(covered)
    coverage_u, coverage_b = covered.mean(axis=0)
    # a run's coverage is nearly all or nothing (the fit's error is one smooth curve): the runs
    # are the sample, so the standard error is over runs, not grid points
    error_u, error_b = covered.std(axis=0, ddof=1) / np.sqrt(len(covered))
    whole_u, whole_b = (covered == 1.0).mean(axis=0)
    gap = max(max(abs(u.agreement - f), abs(b.agreement - f)) for u, b, f in rows)
    plan_ratio = np.array([b.planned / b.pairs for _, b, _ in rows])
    met = all(u.met and b.met for u, b, _ in rows)
    print()
    checks = [
        (f"paid pairs to the target: budgeted/uniform {1 - saving:.2f} (saving {saving:.0%}; target >= 40%)",
         saving >= 0.40),
        (f"band covers the known map at the stop, {len(covered)} runs x 21 points: uniform {coverage_u:.3f} "
         f"+- {error_u:.3f}, budgeted {coverage_b:.3f} +- {error_b:.3f} (nominal 0.95; target >= 0.90); "
         f"the whole map inside the band in {whole_u:.0%} / {whole_b:.0%} of runs",
         min(coverage_u, coverage_b) >= 0.90),
        (f"held-out MAE at the stop vs the full-data calibrator's: largest gap {gap:.4f} (target <= {args.agreement:g})",
         gap <= args.agreement),
        (f"plan/used: {plan_ratio.min():.2f}-{plan_ratio.max():.2f} (target within 1/1.5-1.5)",
         bool(np.all((plan_ratio >= 1 / 1.5) & (plan_ratio <= 1.5)))),
        ("every run met its target before running out of queries", met),
    ]  # fmt: skip
    for text, ok in checks:
        print(("  met     " if ok else "  MISSED  ") + text)
    if args.fixed_draws:
        coverage, sd, half = fixed_design_coverage(args.queries, 800, args.fixed_draws)
        print(
            f"\nfixed design (800 queries drawn uniformly once, the reference redrawn {args.fixed_draws} times, no "
            f"stopping rule): coverage {coverage:.3f}; the fit's real sd at local-score quantiles 0.9/0.945/0.99 "
            f"{' '.join(f'{v:.4f}' for v in sd)}, the band's half-width/1.96 {' '.join(f'{v:.4f}' for v in half)}"
        )
    ok = all(ok for _, ok in checks)
    print("\nall targets met" if ok else "\nsome targets missed")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
