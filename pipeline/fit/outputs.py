"""What a fit writes into ``reports/<name>/`` (``report.dir``) besides the printed report:

* ``metrics.json``: the full held-out report (every configuration, metric and interval);
* ``summary.json``: a few headline figures per configuration, what ``dvc metrics show`` reads;
* ``calibration.csv`` (each pair's score, its reference and its calibrated value) and
  ``rank_agreement.csv`` (per-query Spearman, raw vs exported): plot data ``dvc plots diff``
  compares between experiments;
* ``calibration.png`` (with the per-score interval band), ``rank_agreement.png`` and
  ``decisions.png`` (keep/drop agreement against the threshold), the same as pictures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.calibration.fusion import ScoreCalibrationModel
from pipeline.core.files import atomic_write_json
from pipeline.data.table import PairedTable, write_table
from pipeline.fit.evaluation import EvaluationReport, describe_model
from pipeline.fit.plots import plot_calibration, plot_decisions, plot_rank_agreement

METRICS_FILE = "metrics.json"
SUMMARY_FILE = "summary.json"
#: the figures summary.json keeps per configuration
HEADLINE = ("pearson", "spearman", "ndcg", "mae")


def summary(report: EvaluationReport) -> dict:
    """Headline figures per configuration (keys without spaces, for ``dvc metrics show``)."""
    out = {}
    for res in report.results:
        key = res.name.replace(" ", "_").replace("+", "_")
        out[key] = {
            m: (None if not np.isfinite(res.metrics[m].value) else round(float(res.metrics[m].value), 4))
            for m in HEADLINE
        }
    return out


def shown_rows(x: np.ndarray, max_points: int) -> np.ndarray:
    """Rows to plot, in score order: every row, or ``max_points`` of them evenly spaced in score
    order (first and last included), so the curve's whole range stays visible."""
    order = np.argsort(x, kind="stable")
    if order.size <= max_points:
        return order
    return order[np.unique(np.linspace(0, order.size - 1, max_points).round().astype(np.intp))]


def write_plot_data(
    table: PairedTable, report: EvaluationReport, model: ScoreCalibrationModel, out_dir: Path, max_points: int
) -> list[Path]:
    """The plots' data as CSV (``dvc plots``): the exported model's curve over every pair (at most
    ``max_points``, :func:`shown_rows`), and per-query Spearman of every raw configuration and of
    the exported one."""
    x = model.fused(table.sources)
    order = shown_rows(x, max_points)
    calibration = {
        "query_id": table.query_ids[order],
        "doc_id": table.doc_ids[order],
        "score": x[order],
        "reference": table.target[order],
        "calibrated": model.calibrator_.predict(x[order]),
    }
    final = report.exported
    query_ids = _query_order(table, report.rows)
    per_query = {"query_id": query_ids}
    for res in report.results:
        if res.kind == "raw" or res is final:
            per_query[res.name.replace(" ", "_").replace("+", "_")] = res.per_query.rank["spearman"]
    return [
        write_table(out_dir / "calibration.csv", calibration),
        write_table(out_dir / "rank_agreement.csv", per_query),
    ]


def _query_order(table: PairedTable, rows: np.ndarray | None = None) -> np.ndarray:
    """Query ids in the order of the per-query statistics: by group code (first appearance),
    of the evaluated ``rows`` (a budgeted table's uniform part) when given."""
    codes = table.group_codes()
    ids = table.query_ids
    if rows is not None:
        codes, ids = codes[rows], ids[rows]
    _, first = np.unique(codes, return_index=True)
    return ids[first]


def write_pictures(
    table: PairedTable,
    report: EvaluationReport,
    model: ScoreCalibrationModel,
    out_dir: Path,
    max_points: int,
    intervals: dict[str, Any] | None = None,
) -> list[Path]:
    final = report.exported
    x = model.fused(table.sources)
    shown = shown_rows(x, max_points)
    grid = np.linspace(x.min(), x.max(), 400)
    curve = model.calibrator_.predict(grid)
    band = None
    if intervals is not None:
        from pipeline.runtime.intervals import compile_intervals

        band = (*compile_intervals(intervals)(curve, 0.9), 0.9)
    info = describe_model(model)
    family = info["family"] + (
        f", degree {model.calibrator_.get_params().get('degree')}" if info["family"] == "poly" else ""
    )
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
        plot_calibration(
            x[shown],
            table.target[shown],
            grid,
            curve,
            x_label=x_label,
            y_label=f"reference score ({named(table.target_name)})",
            title=f"{final.name}: {family}{sim}",
            path=out_dir / "calibration.png",
            identity=len(final.sources) == 1,
            band=band,
        ),
    ]
    per_query = {r.name: r.per_query.rank["spearman"] for r in report.results if r.kind == "raw" or r is final}
    paths.append(
        plot_rank_agreement(
            per_query, title=f"per-query rank agreement with the reference{sim}", path=out_dir / "rank_agreement.png"
        )
    )
    if report.decisions:
        paths.append(
            plot_decisions(
                report.decisions, title=f"keep/drop decisions of '{final.name}'{sim}", path=out_dir / "decisions.png"
            )
        )
    return paths


def write_report_files(
    out_dir: Path,
    report: EvaluationReport,
    report_json: dict[str, Any],
    table: PairedTable,
    model: ScoreCalibrationModel,
    *,
    pictures: bool,
    max_points: int = 20_000,
    intervals: dict[str, Any] | None = None,
) -> list[str]:
    """Write every file above; returns what was written (metrics.json by path, the rest by name)."""
    atomic_write_json(out_dir / METRICS_FILE, report_json)
    atomic_write_json(out_dir / SUMMARY_FILE, summary(report))
    written = [str(out_dir / METRICS_FILE), SUMMARY_FILE]
    written += [p.name for p in write_plot_data(table, report, model, out_dir, max_points)]
    if pictures:
        written += [p.name for p in write_pictures(table, report, model, out_dir, max_points, intervals)]
    return written
