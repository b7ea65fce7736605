"""``python -m pipeline evaluate``: held-out agreement of raw vs calibrated scores.

Writes ``<report.dir>/metrics.json`` (for ``dvc metrics``) and the plots; prints the table.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from pipeline.config import PipelineConfig
from pipeline.data import PairedTable
from pipeline.evaluation import EvaluationError, EvaluationReport, build_model, evaluate, report_dict
from pipeline.files import atomic_write_json
from pipeline.fusion import ScoreCalibrationModel
from pipeline.report import format_report
from pipeline.stages.common import describe_table, load_table, user_errors

METRICS_FILE = "metrics.json"


def run_evaluation(cfg: PipelineConfig, table: PairedTable, model: ScoreCalibrationModel | None = None) -> EvaluationReport:
    """Evaluate, print, write metrics.json and plots; ``model`` is the one fitted on all rows
    (fitted here for the plot when not given)."""
    started = time.perf_counter()
    n_configs = 2 * len(table.source_names) + (len(table.source_names) > 1)
    print(f"evaluating {n_configs} configurations with {cfg.evaluate.n_splits}-fold GroupKFold by query ...", flush=True)
    report = evaluate(table, cfg)
    print(format_report(report))
    for warning in report.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    out_dir = Path(cfg.report.dir)
    atomic_write_json(out_dir / METRICS_FILE, report_dict(report, table))
    written = [str(out_dir / METRICS_FILE)]
    if cfg.report.plots:
        if model is None:
            model = fit_final(cfg, table)
        written += [str(p) for p in write_plots(table, report, model, out_dir)]
    print(f"wrote {', '.join(written)} ({time.perf_counter() - started:.1f}s)")
    return report


def fit_final(cfg: PipelineConfig, table: PairedTable) -> ScoreCalibrationModel:
    """The exported model: every source of the table, fitted on all rows."""
    return build_model(cfg, table.source_names).fit(table.sources, table.target, groups=table.group_codes())


def write_plots(table: PairedTable, report: EvaluationReport, model: ScoreCalibrationModel, out_dir: Path) -> list[Path]:
    from pipeline.plots import plot_calibration, plot_rank_agreement

    final = report.exported
    x = model.fused(table.sources)
    grid = np.linspace(x.min(), x.max(), 400)
    curve = model.calibrator_.predict(grid)
    label = final.sources[0] if len(final.sources) == 1 else "fused(" + "+".join(final.sources) + ")"
    sim = " (SIMULATED)" if table.meta.get("simulated") else ""
    paths = [
        plot_calibration(x, table.target, grid, curve, x_label=f"local score: {label}", y_label=f"reference: {table.target_name}",
                         title=f"{final.name}{sim}", path=out_dir / "calibration.png"),
    ]
    per_query = {r.name: r.per_query.rank["spearman"] for r in report.results if r.kind == "raw" or r is final}
    paths.append(plot_rank_agreement(per_query, title=f"per-query rank agreement{sim}", path=out_dir / "rank_agreement.png"))
    return paths


@user_errors(EvaluationError)
def run(cfg: PipelineConfig) -> int:
    table = load_table(cfg)
    print(describe_table(table))
    run_evaluation(cfg, table)
    return 0
