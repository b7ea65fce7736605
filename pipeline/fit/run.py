"""One fit: read the table, fit the exported model on all rows, evaluate on held-out queries,
write the report files and the artifact. ``fit``, ``evaluate`` and ``export`` are this one
function with parts switched off, so the table is read once, the destination is checked once
(before any work), and the report dict that ``metrics.json`` holds is the one the manifest's
metrics come from.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.calibration.fusion import ScoreCalibrationModel
from pipeline.config.fit import FitSettings, report_dir
from pipeline.core.console import print_warnings, wrapped
from pipeline.data.table import PairedTable, TableError, read_table
from pipeline.fit.evaluation import EvaluationReport, build_model, collected_warnings, evaluate, preflight, report_dict
from pipeline.fit.export import check_destination, held_out_summary, intervals_table, matching_metrics, run_export
from pipeline.fit.outputs import write_report_files
from pipeline.fit.report import format_report


@dataclass
class FitResult:
    """What one run produced (``None`` for a part that was switched off)."""

    table: PairedTable
    model: ScoreCalibrationModel
    report: EvaluationReport | None = None
    #: the report as ``metrics.json`` holds it
    report_json: dict[str, Any] | None = None
    artifact: Path | None = None
    written: list[str] = field(default_factory=list)
    #: the per-score intervals table (from the held-out predictions), when the run evaluated
    intervals: dict[str, Any] | None = None


def load_table(cfg: FitSettings) -> PairedTable:
    """The configured table, with ``data.compare`` columns attached for the report."""
    d = cfg.data
    if not Path(d.path).exists() and f"/{cfg.name}/" in f"/{d.path}":
        raise TableError(
            f"{d.path}: paired-score table not found (data.path; name={cfg.name} names the whole run, its table "
            f"included: to name only the artifact and its reports, use export.name=...)"
        )
    table = read_table(
        d.path, target=d.target, sources=list(d.sources), query_col=d.query_col, doc_col=d.doc_col, fmt=d.format.value
    )
    if d.compare:
        overlap = sorted(set(d.compare) & set(d.sources))
        if overlap:
            raise TableError(f"data.compare lists {overlap}, which data.sources fits already")
        other = read_table(
            d.path,
            target=d.target,
            sources=list(d.compare),
            query_col=d.query_col,
            doc_col=d.doc_col,
            fmt=d.format.value,
        )
        table.compare = {name: other.sources[:, j] for j, name in enumerate(other.source_names)}
    return table


def describe_table(table: PairedTable) -> str:
    simulated = " [SIMULATED demo data: not real API scores]" if table.meta.get("simulated") else ""
    return wrapped(
        f"table {table.path}: {table.n_rows} pairs, {table.n_queries} queries, "
        f"target '{table.target_name}', sources {table.source_names}{simulated}"
    )


def fit_final(cfg: FitSettings, table: PairedTable) -> ScoreCalibrationModel:
    """The exported model: every source of the table, fitted on all rows (after the table and the
    settings passed :func:`preflight`). Warnings raised while fitting land in ``fit_warnings_``."""
    preflight(cfg, table)
    caught: list[str] = []
    with collected_warnings(caught):
        model = build_model(cfg, table).fit(table.sources, table.target, groups=table.group_codes())
    model.fit_warnings_ = caught
    return model


def run_fit(cfg: FitSettings, *, evaluate_held_out: bool = True, export: bool = True) -> FitResult:
    """Fit, and evaluate (report files under ``report_dir``) and/or export (the artifact).

    Without the evaluation, the manifest takes its metrics from ``metrics.json`` when that was
    produced from the same data and settings, and records none otherwise (said on stderr).
    """
    table = load_table(cfg)
    print(describe_table(table))
    replacing = check_destination(cfg, table) if export else None  # before any work
    model = fit_final(cfg, table)
    result = FitResult(table, model)
    if evaluate_held_out:
        started = time.perf_counter()
        print(
            f"evaluating {_n_configurations(table)} configurations with {cfg.evaluate.n_splits}-fold GroupKFold "
            f"by query ...",
            flush=True,
        )
        result.report = report = evaluate(table, cfg, model)
        print(format_report(report))
        print_warnings(report.warnings + [w for w in model.fit_warnings_ if w not in report.warnings])
        result.report_json = report_dict(report, table)
        result.intervals = intervals_table(table, model, report.exported.predictions)
        result.written = write_report_files(
            Path(report_dir(cfg)),
            report,
            result.report_json,
            table,
            model,
            pictures=cfg.report.plots,
            max_points=cfg.report.max_points,
            intervals=result.intervals,
        )
        print(wrapped(f"wrote {', '.join(result.written)} ({time.perf_counter() - started:.1f}s)"))
    else:
        print_warnings(model.fit_warnings_)
    if export:
        if result.report_json is not None:
            metrics = held_out_summary(result.report_json)
        else:
            metrics = matching_metrics(cfg, table)
            if metrics is None:
                print(
                    "note: no metrics.json from the same data and settings; the manifest records no held-out metrics "
                    "(run `python -m pipeline fit` to evaluate and export together)",
                    file=sys.stderr,
                )
        if result.report is None:
            print(
                "note: no per-score intervals without the held-out evaluation (intervals.json comes from out-of-fold "
                "residuals); `python -m pipeline fit` writes them",
                file=sys.stderr,
            )
        result.artifact = run_export(cfg, table, model, metrics, replacing, result.intervals)
    return result


def _n_configurations(table: PairedTable) -> int:
    """Raw and calibrated per source, the fused one, and each ``data.compare`` column."""
    return 2 * len(table.source_names) + (len(table.source_names) > 1) + len(table.compare)
