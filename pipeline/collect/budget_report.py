"""The learning curve of a budgeted collection: ``budget.json`` and ``budget.png``.

Per round: pairs bought, band width, held-out agreement; the pairs still needed, extrapolated
from how the band shrank so far; and the money spent and saved against buying the whole dataset.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.files import atomic_output_path, atomic_write_json, commit_output

if TYPE_CHECKING:
    from pipeline.api.spend import Spent
    from pipeline.calibration.budget_run import Round
    from pipeline.collect.budgeted import BudgetOutcome
    from pipeline.config.collect import BudgetConfig
    from pipeline.data.dataset import Dataset


def extrapolate(rounds: list[Round], target: float) -> dict[str, Any] | None:
    """Pairs at which the band would reach ``target``, from a power law ``band ~ pairs^s`` fitted
    to the rounds so far (log-log least squares over the rounds with a bounded band); None with
    fewer than two such rounds or a band that did not shrink."""
    points = [(r.pairs_total, r.band) for r in rounds if math.isfinite(r.band) and r.band > 0 and r.pairs_total > 0]
    if len(points) < 2:
        return None
    x, y = np.log([p for p, _ in points]), np.log([b for _, b in points])
    slope, intercept = np.polyfit(x, y, 1)
    if not slope < 0:
        return None
    needed = math.exp((math.log(target) - intercept) / slope)
    return {
        "exponent": round(float(slope), 4),
        "pairs_needed": int(math.ceil(max(needed, rounds[-1].pairs_total))),
        "more_pairs": int(math.ceil(max(0.0, needed - rounds[-1].pairs_total))),
        "rounds_used": len(points),
    }


def _round(r: Round, spent: Spent) -> dict[str, Any]:
    return {**r.as_dict(), "spent": {"pairs": spent.pairs, "cost": round(spent.cost, 6)}}


def budget_report(outcome: BudgetOutcome, budget: BudgetConfig, dataset: Dataset) -> dict[str, Any]:
    run = outcome.run
    grid = run.grid
    last = outcome.rounds[-1] if outcome.rounds else None
    met = bool(last and last.met)
    return {
        "stop": outcome.stop,
        "target": {
            "band": budget.band,
            "region": list(budget.region),
            "region_local_scores": [float(grid[0]), float(grid[-1])] if grid.size else None,
            "agreement": budget.agreement,
            "agreement_metric": budget.agreement_metric,
        },
        # per round: pairs/cost bought (cost: the cost model's estimate of the pairs this run sent,
        # in the budget's unit; 0 for cached pairs), the table so far, and the ledger's spend after it
        "rounds": [_round(r, spent) for r, spent in zip(outcome.rounds, outcome.spent_after, strict=True)],
        "bought": {
            "queries": len(outcome.bought),
            "pairs": int(run.sizes[run.bought].sum()),
            "uniform_queries": len(outcome.uniform),
        },
        "spent": {"pairs": outcome.spent_pairs, "cost": round(outcome.spent_cost, 6)},
        "limits": {"pairs": budget.pairs, "cost": budget.cost},
        "full_dataset": {
            "queries": len(dataset.queries),
            "pairs": outcome.full_pairs,
            "cost": round(outcome.full_cost, 6),
        },
        "saved": {
            "pairs": outcome.full_pairs - int(run.sizes[run.bought].sum()),
            "cost": round(outcome.full_cost - outcome.spent_cost, 6),
        },
        "extrapolated": None if met else extrapolate(outcome.rounds, budget.band),
    }


def write_budget_report(outcome: BudgetOutcome, budget: BudgetConfig, dataset: Dataset, out=None) -> Path:
    out = out or sys.stdout
    report = budget_report(outcome, budget, dataset)
    path = atomic_write_json(Path(budget.report), report)
    plot = plot_budget(report, path.with_suffix(".png"))
    spent, full, saved = report["spent"], report["full_dataset"], report["saved"]
    extra = spent["pairs"] - report["bought"]["pairs"]
    print(
        f"budget: {outcome.stop} after {len(outcome.rounds)} round(s): {report['bought']['pairs']} of "
        f"{full['pairs']} pairs in the table; spent {spent['pairs']} pairs, cost {spent['cost']:.4f} "
        f"(the whole dataset: {full['cost']:.4f}; saved {saved['cost']:.4f})"
        + (
            f"; the {extra} spent pairs not in the table: failed or cut-short requests, queries the budget "
            "stopped part-way (their answers stay cached), any earlier run's on this API"
            if extra > 0
            else ""
        ),
        file=out,
    )
    more = report["extrapolated"]
    if more is not None:
        print(
            f"budget: at the rate the band shrank (band ~ pairs^{more['exponent']}), about "
            f"{more['more_pairs']} more pairs reach band {budget.band:g}",
            file=out,
        )
    print(f"wrote {path}" + (f" and {plot.name}" if plot else ""), file=out)
    return path


def plot_budget(report: dict[str, Any], path: Path) -> Path | None:
    """Pairs bought vs band width (log-log, with the target and the extrapolation) and vs the
    held-out agreement with its interval. None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rounds = report["rounds"]
    pairs = np.array([r["pairs_total"] for r in rounds], dtype=float)
    band = np.array([np.nan if r["band"] is None else r["band"] for r in rounds], dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    finite = np.isfinite(band)
    left.plot(pairs[finite], band[finite], "o-", color="tab:blue", label="band width")
    left.axhline(report["target"]["band"], color="tab:red", ls="--", label="target")
    more = report.get("extrapolated")
    if more is not None and finite.any():
        end = more["pairs_needed"]
        left.plot(
            [pairs[finite][-1], end], [band[finite][-1], report["target"]["band"]], ":", color="tab:blue",
            label=f"extrapolated: {end} pairs",
        )  # fmt: skip
    left.set_xscale("log")
    left.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")  # 0.06, not 6x10^-2
    for axis in (left.xaxis, left.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    hidden = [str(r["index"] + 1) for r, ok in zip(rounds, finite) if not ok]  # said, not silently dropped
    left.set_xlabel("pairs bought" + (f" (round {', '.join(hidden)}: band unbounded, not drawn)" if hidden else ""))
    left.set_ylabel("bootstrap band of the fitted curve")
    left.set_title("band over local-score quantiles " + "-".join(f"{q:g}" for q in report["target"]["region"]))
    left.legend()
    left.grid(alpha=0.3, which="both")
    with_agreement = [r for r in rounds if r.get("agreement")]
    if with_agreement:
        x = [r["pairs_total"] for r in with_agreement]
        value = np.array([r["agreement"]["value"] for r in with_agreement])
        low = np.array([r["agreement"]["low"] for r in with_agreement])
        high = np.array([r["agreement"]["high"] for r in with_agreement])
        right.plot(x, value, "o-", color="tab:green", label=report["target"]["agreement_metric"])
        right.fill_between(x, low, high, color="tab:green", alpha=0.2, lw=0, label="95% interval")
        right.legend()
    right.set_xlabel("pairs bought")
    right.set_ylabel("held-out agreement (uniform part)")
    right.set_title(f"spent {report['spent']['cost']:.4f} of {report['full_dataset']['cost']:.4f} for every pair")
    right.grid(alpha=0.3)
    fig.tight_layout()
    tmp, final = atomic_output_path(path)
    try:
        fig.savefig(tmp, dpi=110, format="png")
        return commit_output(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
