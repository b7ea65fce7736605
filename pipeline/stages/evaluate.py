"""``python -m pipeline evaluate``: held-out agreement of raw vs calibrated scores.

Writes into ``reports/<name>/`` (``report.dir``):

* ``metrics.json``: the full held-out report (every configuration, metric and interval);
* ``summary.json``: a few headline figures per configuration, what ``dvc metrics show`` reads;
* ``calibration.csv`` (each pair's score, its reference and its calibrated value) and
  ``rank_agreement.csv`` (per-query Spearman, raw vs exported): plot data ``dvc plots diff``
  compares between experiments;
* ``calibration.png`` and ``rank_agreement.png``, the same as pictures.

Prints the table.
"""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

import time
from pathlib import Path

import numpy as np

from pipeline.config import PipelineConfig, report_dir
from pipeline.data import PairedTable
from pipeline.evaluation import (
    EvaluationReport,
    build_model,
    collected_warnings,
    evaluate,
    preflight,
    report_dict,
)
from pipeline.files import atomic_write_json
from pipeline.fusion import ScoreCalibrationModel
from pipeline.console import print_warnings, wrapped
from pipeline.report import format_report
from pipeline.stages.common import describe_table, load_table

METRICS_FILE = "metrics.json"
SUMMARY_FILE = "summary.json"
#: the figures summary.json keeps per configuration
HEADLINE = ("pearson", "spearman", "ndcg", "mae")


def run_evaluation(cfg: PipelineConfig, table: PairedTable, model: ScoreCalibrationModel | None = None) -> EvaluationReport:
    """Evaluate, print, write metrics.json and plots; ``model`` is the one fitted on all rows
    (fitted here for the plot when not given)."""
    started = time.perf_counter()
    n_configs = 2 * len(table.source_names) + (len(table.source_names) > 1) + len(table.compare)
    print(f"evaluating {n_configs} configurations with {cfg.evaluate.n_splits}-fold GroupKFold by query ...", flush=True)
    if model is None:
        model = fit_final(cfg, table)
    report = evaluate(table, cfg, model)
    print(format_report(report))
    print_warnings(report.warnings + [w for w in model.fit_warnings_ if w not in report.warnings])
    out_dir = Path(report_dir(cfg))
    atomic_write_json(out_dir / METRICS_FILE, report_dict(report, table))
    atomic_write_json(out_dir / SUMMARY_FILE, summary(report))
    written = [str(out_dir / METRICS_FILE), SUMMARY_FILE]
    written += [p.name for p in write_plot_data(table, report, model, out_dir)]
    if cfg.report.plots:
        written += [p.name for p in write_plots(table, report, model, out_dir)]
    print(wrapped(f"wrote {', '.join(written)} ({time.perf_counter() - started:.1f}s)"))
    return report


def summary(report: EvaluationReport) -> dict:
    """Headline figures per configuration (keys without spaces, for ``dvc metrics show``)."""
    out = {}
    for res in report.results:
        key = res.name.replace(" ", "_").replace("+", "_")
        out[key] = {m: (None if not np.isfinite(res.metrics[m].value) else round(float(res.metrics[m].value), 4))
                    for m in HEADLINE}
    return out


def write_plot_data(table: PairedTable, report: EvaluationReport, model: ScoreCalibrationModel, out_dir: Path) -> list[Path]:
    """The plots' data as CSV (``dvc plots``): the exported model's curve over every pair, and
    per-query Spearman of every raw configuration and of the exported one."""
    from pipeline.data import write_table

    x = model.fused(table.sources)
    order = np.argsort(x, kind="stable")
    calibration = {"query_id": table.query_ids[order], "doc_id": table.doc_ids[order], "score": x[order],
                   "reference": table.target[order], "calibrated": model.calibrator_.predict(x[order])}
    final = report.exported
    query_ids = _query_order(table)
    per_query = {"query_id": query_ids}
    for res in report.results:
        if res.kind == "raw" or res is final:
            per_query[res.name.replace(" ", "_").replace("+", "_")] = res.per_query.rank["spearman"]
    return [write_table(out_dir / "calibration.csv", calibration), write_table(out_dir / "rank_agreement.csv", per_query)]


def _query_order(table: PairedTable) -> np.ndarray:
    """Query ids in the order of the per-query statistics: by group code (first appearance)."""
    codes = table.group_codes()
    _, first = np.unique(codes, return_index=True)
    return table.query_ids[first]


def fit_final(cfg: PipelineConfig, table: PairedTable) -> ScoreCalibrationModel:
    """The exported model: every source of the table, fitted on all rows (after the table and the
    settings passed :func:`preflight`). Warnings raised while fitting land in ``fit_warnings_``."""
    preflight(cfg, table)
    caught: list[str] = []
    with collected_warnings(caught):
        model = build_model(cfg, table).fit(table.sources, table.target, groups=table.group_codes())
    model.fit_warnings_ = caught
    return model


def write_plots(table: PairedTable, report: EvaluationReport, model: ScoreCalibrationModel, out_dir: Path) -> list[Path]:
    from pipeline.evaluation import describe_model
    from pipeline.plots import plot_calibration, plot_rank_agreement

    final = report.exported
    x = model.fused(table.sources)
    grid = np.linspace(x.min(), x.max(), 400)
    curve = model.calibrator_.predict(grid)
    info = describe_model(model)
    family = info["family"] + (f", degree {model.calibrator_.get_params().get('degree')}" if info["family"] == "poly" else "")
    if info.get("method") and info["family"] == "poly":
        family += f", {info['method']}"
    sim = " (SIMULATED)" if table.meta.get("simulated") else ""
    names = {col: (src or {}).get("model") for col, src in (table.meta.get("sources") or {}).items()}
    named = lambda col: f"{col}: {names[col]}" if names.get(col) else col  # noqa: E731
    if len(final.sources) == 1:
        x_label = f"local score ({named(final.sources[0])})"
    else:
        x_label = "fused score (standardised): " + " + ".join(f"{w:.2f} {c}" for c, w in info["weights"].items())
    paths = [
        plot_calibration(x, table.target, grid, curve, x_label=x_label, y_label=f"reference score ({named(table.target_name)})",
                         title=f"{final.name}: {family}{sim}", path=out_dir / "calibration.png",
                         identity=len(final.sources) == 1),
    ]
    per_query = {r.name: r.per_query.rank["spearman"] for r in report.results if r.kind == "raw" or r is final}
    paths.append(plot_rank_agreement(per_query, title=f"per-query rank agreement with the reference{sim}",
                                     path=out_dir / "rank_agreement.png"))
    return paths


def run(cfg: PipelineConfig) -> int:
    table = load_table(cfg)
    print(describe_table(table))
    run_evaluation(cfg, table)
    return 0
