"""Held-out evaluation: out-of-fold predictions by query group, metrics per configuration.

Every calibrated figure is computed on predictions for queries the model did not see while
fitting (GroupKFold by query_id), with bootstrap intervals over queries. Raw figures need no
fitting and are computed on the same rows, so raw and calibrated rows of the report compare like
with like. Each row of the report is one configuration; figures are never mixed across rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.calibration.calibrators import AutoCalibrator, grouped_splits, make_calibrator
from pipeline.calibration.decisions import as_dict as decisions_dict
from pipeline.calibration.decisions import (
    decision_agreements,
    decision_counts,
    default_thresholds,
    held_out_cuts,
)
from pipeline.calibration.fusion import NonNegativeFusion, ScoreCalibrationModel
from pipeline.calibration.fusion_scale import resolve_score_types
from pipeline.calibration.metrics import MetricValue, PerQuery, agreement
from pipeline.config.fit import FitSettings, FusionMethod
from pipeline.core.errors import PipelineError
from pipeline.data.table import PairedTable
from pipeline.fit.fusion_summary import FusionSummary, contributions, weight_intervals


class EvaluationError(PipelineError, ValueError):
    """The table and configuration cannot be evaluated (e.g. fewer than 2 queries)."""


@contextlib.contextmanager
def collected_warnings(into: list[str]) -> Iterator[None]:
    """Warnings raised while fitting (scikit-learn's, the calibrators') become report lines,
    each once, instead of Python's ``file:line: UserWarning`` text printed per fold."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        text = str(w.message).strip()
        if text not in into:
            into.append(text)


def preflight(cfg: FitSettings, table: PairedTable) -> list[str]:
    """What the table and the settings cannot do together, found before any fitting: an error
    (:class:`EvaluationError`, one line naming the setting) or notes for the report."""
    notes: list[str] = []
    if table.n_queries < 2:
        raise EvaluationError(
            f"{table.path}: {table.n_queries} query; held-out evaluation needs at least 2 (GroupKFold by query)"
        )
    if table.n_rows < 4:
        raise EvaluationError(
            f"{table.path}: {table.n_rows} pairs; fitting and evaluating a calibrator needs at least 4"
        )
    cal = cfg.calibrator
    lo = cal.y_min if cal.y_min is not None else float(table.target.min())
    hi = cal.y_max if cal.y_max is not None else float(table.target.max())
    if lo > hi:
        which = "calibrator.y_min" if cal.y_min is not None else "calibrator.y_max"
        raise EvaluationError(
            f"{which}: the output range [{lo:g}, {hi:g}] is empty for {table.path}, whose reference "
            f"scores span [{table.target.min():g}, {table.target.max():g}]; set both bounds or neither"
        )
    if cfg.evaluate.n_splits > table.n_queries:
        notes.append(
            f"evaluate.n_splits={cfg.evaluate.n_splits} but the table has {table.n_queries} queries: "
            f"{table.n_queries} folds used"
        )
    for j, name in enumerate(table.source_names):
        if np.ptp(table.sources[:, j]) == 0:
            notes.append(
                f"source '{name}' is constant ({table.sources[0, j]:g}) over the whole table: it carries no "
                "information, and its calibrated score is constant too"
            )
    if np.ptp(table.target) == 0:
        notes.append(f"the reference '{table.target_name}' is constant over the whole table: nothing to calibrate to")
    type_notes = score_types(cfg, table)[1]  # validates data.score_types against the table
    if len(table.source_names) > 1 and cfg.fusion.scale.value != "raw":
        notes += type_notes
    if len(table.source_names) > 1 and cfg.fusion.center.value == "query" and cfg.fusion.objective.value == "rank":
        notes.append(
            "fusion.center=query has no effect with fusion.objective=rank: pairs are formed within a query, "
            "so query offsets cancel by construction"
        )
    return notes


def score_types(cfg: FitSettings, table: PairedTable) -> tuple[dict[str, str], list[str]]:
    """Score type of every source and of the reference (sidecar, else ``data.score_types``, else
    inferred), and a note naming the inferred ones."""
    values = {name: table.sources[:, j] for j, name in enumerate(table.source_names)}
    values[table.target_name] = table.target
    configured = {col: getattr(t, "value", t) for col, t in cfg.data.score_types.items()}
    unknown = sorted(set(configured) - set(values))
    if unknown:
        raise EvaluationError(
            f"data.score_types names {unknown}, which are not among the table's columns {list(values)}"
        )
    try:
        return resolve_score_types(list(values), values, table.meta, configured)
    except ValueError as exc:
        raise EvaluationError(f"{table.path}: {exc}") from None


def build_model(
    cfg: FitSettings, table: PairedTable, sources: list[str] | None = None, *, fusion_step: bool = False
) -> ScoreCalibrationModel:
    """The unfitted model a configuration describes for ``sources`` (default: all of the table's)
    -- the same factory for CV folds and export. ``fusion_step`` keeps the fusion step (scale
    map, weight 1) for a single source, so a drop-one comparison changes nothing but the source."""
    sources = list(table.source_names) if sources is None else sources
    cal = cfg.calibrator
    calibrator = make_calibrator(
        cal.family.value,
        degree=cal.degree,
        C=cal.sigmoid_C,
        y_min=cal.y_min,
        y_max=cal.y_max,
        candidates=tuple(c.value for c in cal.candidates),
        n_splits=cal.auto_splits,
        max_rows=cal.auto_max_rows,
        random_state=cfg.seed,
    )
    fusion = None
    if len(sources) > 1 or fusion_step:
        if cfg.fusion.method is FusionMethod.none:
            raise EvaluationError(f"{len(sources)} sources {sources} need fusion.method=nonneg_linear (got none)")
        f = cfg.fusion
        types = score_types(cfg, table)[0] if f.scale.value != "raw" else {}
        fusion = NonNegativeFusion(
            objective=f.objective.value,
            scale=f.scale.value,
            center=f.center.value,
            source_types=[types[s] for s in sources] if types else None,
            target_type=types.get(table.target_name),
            auto_splits=f.auto_splits,
            auto_max_rows=f.auto_max_rows,
            random_state=cfg.seed,
        )
    return ScoreCalibrationModel(calibrator=calibrator, fusion=fusion, sources=list(sources))


@dataclass
class ConfigurationResult:
    """Held-out agreement of one configuration (one row of the report)."""

    name: str
    kind: str  # "raw" | "calibrated" | "fused"
    sources: list[str]
    metrics: dict[str, MetricValue]
    per_query: PerQuery
    predictions: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "sources": self.sources,
            "metrics": {name: m.as_dict() for name, m in self.metrics.items()},
            "details": self.details,
        }


@dataclass
class EvaluationReport:
    results: list[ConfigurationResult]
    n_rows: int
    n_queries: int
    n_queries_small: int
    n_splits: int
    warnings: list[str]
    settings: dict[str, Any]
    fusion: FusionSummary | None = None
    #: keep/drop agreement at thresholds (:mod:`pipeline.calibration.decisions`), as metrics.json holds it
    decisions: list[dict[str, Any]] = field(default_factory=list)
    #: the rows the figures are computed on (a budgeted table's uniform part); None: every row
    rows: np.ndarray | None = None

    @property
    def exported(self) -> ConfigurationResult:
        """The configuration that ``fit`` exports: the last (fused, else calibrated) row."""
        return self.results[-1]

    def result(self, name: str) -> ConfigurationResult:
        return next(r for r in self.results if r.name == name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "n_queries": self.n_queries,
            "n_queries_single_document": self.n_queries_small,
            "n_splits": self.n_splits,
            "exported": self.exported.name,
            "configurations": {r.name: r.as_dict() for r in self.results},
            "warnings": self.warnings,
            "settings": self.settings,
            "fusion": None if self.fusion is None else self.fusion.as_dict(),
            "decisions": self.decisions,
        }


def out_of_fold(
    model: ScoreCalibrationModel, X: np.ndarray, y: np.ndarray, groups: np.ndarray, splits, progress=None
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Predictions for every row from a model fitted without that row's query.

    The folds are fitted on two threads: the heavy steps are numpy and scipy calls that release
    the GIL, so two cores share the work, and each fold's result depends on its rows and its
    seed only, never on which thread or in which order it ran.
    """
    from sklearn.base import clone

    def fit_fold(split):
        train, test = split
        fitted = clone(model).fit(X[train], y[train], groups=groups[train])
        if progress is not None:
            progress.update(1)
        return fitted.predict(X[test]), describe_model(fitted)

    pred = np.empty_like(y)
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1, len(splits))) as pool:
        fitted = list(pool.map(fit_fold, splits))
    for (_, test), (values, _) in zip(splits, fitted):
        pred[test] = values
    return pred, [info for _, info in fitted]


def describe_model(model: ScoreCalibrationModel) -> dict[str, Any]:
    """Human-readable summary of a fitted model: family chosen, fit method, fusion weights."""
    cal = model.calibrator_
    info: dict[str, Any] = {}
    if isinstance(cal, AutoCalibrator):
        info["family"] = cal.chosen_
        info["cv_mse"] = {k: round(v, 8) for k, v in cal.cv_mse_.items()}
        cal = cal.best_
    else:
        info["family"] = cal.to_spec()["family"]
    if hasattr(cal, "method_"):
        info["method"] = cal.method_
    if model.fusion_ is not None:
        info["weights"] = dict(zip(model.sources_, (round(float(w), 6) for w in model.fusion_.weights_)))
        info["objective"] = model.fusion_.objective
        info["scale"] = model.fusion_.scale
        if model.objective_scores_:
            info["objective_held_out_combined"] = {k: round(v, 6) for k, v in model.objective_scores_.items()}
        if model.fusion_.degenerate_:
            info["weights_note"] = "no source had a positive weight; equal weights used"
    return info


def settings_hash(cfg: FitSettings) -> str:
    """Hash of the settings that determine the evaluation (lets export reuse matching metrics)."""
    from omegaconf import OmegaConf

    parts = {
        name: OmegaConf.to_container(OmegaConf.structured(getattr(cfg, name)), enum_to_str=True)
        for name in ("data", "calibrator", "fusion", "evaluate")
    }
    parts["seed"] = cfg.seed
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def evaluate(table: PairedTable, cfg: FitSettings, model: ScoreCalibrationModel | None = None) -> EvaluationReport:
    """Raw vs held-out calibrated agreement for every source, plus the fused model if k > 1.

    ``model`` is the exported model (fitted on all rows); with several sources its fusion
    weights are reported with bootstrap intervals, next to each source's drop-one contribution.
    """
    ev = cfg.evaluate
    groups = table.group_codes()
    notes = preflight(cfg, table)
    splits = grouped_splits(table.n_rows, groups, ev.n_splits, cfg.seed)
    y = table.target
    scored = evaluation_rows(table)  # a budgeted collection's uniform part; None: every row

    def measure(pred: np.ndarray) -> tuple[dict[str, MetricValue], PerQuery]:
        if scored is not None:
            pred, target, codes = pred[scored], y[scored], groups[scored]
        else:
            target, codes = y, groups
        return agreement(
            pred, target, codes, k=ev.top_k, n_bootstrap=ev.n_bootstrap, confidence=ev.confidence, seed=cfg.seed
        )

    from tqdm import tqdm

    results: list[ConfigurationResult] = []
    fusion_summary = None
    for name, raw in table.compare.items():  # data.compare: reported raw, never fitted
        metrics, per_query = measure(raw)
        results.append(ConfigurationResult(f"raw {name}", "raw", [name], metrics, per_query, raw))
    for j, name in enumerate(table.source_names):
        raw = table.sources[:, j]
        metrics, per_query = measure(raw)
        results.append(ConfigurationResult(f"raw {name}", "raw", [name], metrics, per_query, raw))
    fused = len(table.source_names) > 1
    n_fits = len(splits) * (len(table.source_names) + fused)
    fit_notes: list[str] = []
    with (
        tqdm(total=n_fits, desc="held-out fits", unit="fit", disable=None, leave=False) as progress,
        collected_warnings(fit_notes),
    ):
        for j, name in enumerate(table.source_names):
            pred, folds = out_of_fold(
                build_model(cfg, table, [name]), table.sources[:, [j]], y, groups, splits, progress
            )
            metrics, per_query = measure(pred)
            results.append(
                ConfigurationResult(
                    f"calibrated {name}", "calibrated", [name], metrics, per_query, pred, {"folds": folds}
                )
            )
        if fused:
            pred, folds = out_of_fold(build_model(cfg, table), table.sources, y, groups, splits, progress)
            metrics, per_query = measure(pred)
            label = "fused " + "+".join(table.source_names)
            results.append(
                ConfigurationResult(
                    label, "fused", list(table.source_names), metrics, per_query, pred, {"folds": folds}
                )
            )
            if model is not None:
                fusion_summary = summarise_fusion(cfg, table, model, results, splits, measure)

    decisions = decision_report(cfg, table, model, results[-1].predictions, splits, scored)
    report_warnings = notes + [
        w for w in _trust_warnings(table, results[-1], cfg) + _alignment_warnings(table, results, cfg) if w not in notes
    ]
    report_warnings += [w for w in fit_notes if w not in report_warnings]
    settings = {
        "calibrator": cfg.calibrator.family.value,
        "fusion": cfg.fusion.method.value if len(table.source_names) > 1 else "none",
        "fusion_center": cfg.fusion.center.value,
        "n_bootstrap": ev.n_bootstrap,
        "confidence": ev.confidence,
        "top_k": ev.top_k,
        "seed": cfg.seed,
        "settings_sha256": settings_hash(cfg),
    }
    if len(table.source_names) > 1:
        settings.update(
            fusion_objective=cfg.fusion.objective.value,
            fusion_scale=cfg.fusion.scale.value,
            fusion_n_bootstrap=cfg.fusion.n_bootstrap,
            fusion_bootstrap_maps=cfg.fusion.bootstrap_maps.value,
        )
    if scored is not None:
        report_warnings.insert(
            0,
            f"budgeted collection: held-out figures on the {np.unique(table.query_ids[scored]).size} queries "
            f"drawn uniformly at random ({scored.size} of {table.n_rows} pairs); the others were chosen "
            "for their local scores and train the calibrator only",
        )
    return EvaluationReport(
        results,
        table.n_rows,
        table.n_queries,
        table.small_queries(),
        len(splits),
        report_warnings,
        settings,
        fusion_summary,
        decisions,
        scored,
    )


def evaluation_rows(table: PairedTable) -> np.ndarray | None:
    """The rows held-out figures are computed on: for a table bought by a budgeted collection
    (the sidecar's ``budget.uniform_queries``), the queries drawn uniformly at random, since the
    rest were chosen for their scores and would describe the oversampled top, not the dataset.
    Every row still trains every fold's calibrator. None: every row (an ordinary table)."""
    uniform = (table.meta.get("budget") or {}).get("uniform_queries")
    if not uniform:
        return None
    rows = np.isin(table.query_ids, np.asarray(uniform, dtype=object))
    if np.unique(table.query_ids[rows]).size < 2:
        return None  # too few to evaluate on: every row, with the warning the report adds
    return np.flatnonzero(rows)


def thresholds(cfg: FitSettings, table: PairedTable) -> list[float]:
    """``evaluate.thresholds``, else the defaults for the table's reference."""
    configured = cfg.evaluate.thresholds
    return list(configured) if configured is not None else default_thresholds(table.target)


def decision_report(
    cfg: FitSettings,
    table: PairedTable,
    model: ScoreCalibrationModel | None,
    predictions: np.ndarray,
    splits,
    scored: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Keep/drop agreement at each threshold: the exported configuration's held-out predictions
    against the reference, and the raw (pre-calibration) score cut at the threshold transferred
    from the training folds, applied to the held-out fold. ``scored``: the rows the figures are
    computed on (a budgeted collection's uniform part); the cuts learn from every row."""
    cuts = thresholds(cfg, table)
    if not cuts:
        return []
    ev = cfg.evaluate
    groups = table.group_codes()
    raw = model.fused(table.sources) if model is not None else table.sources[:, 0]
    held_out_cut, final_cuts = held_out_cuts(raw, table.target, cuts, splits)
    # a cut per row (its fold's): compare raw - cut >= 0 against the reference at t
    with np.errstate(invalid="ignore"):
        shifted = raw[:, None] - held_out_cut
    boot = {"n_bootstrap": ev.n_bootstrap, "confidence": ev.confidence, "seed": cfg.seed}
    target = table.target
    if scored is not None:
        predictions, shifted, target, groups = predictions[scored], shifted[scored], target[scored], groups[scored]
    calibrated, raw_figures = decision_agreements(
        [
            decision_counts(predictions, target, groups, cuts),
            decision_counts(shifted, target, groups, cuts, local_thresholds=np.zeros(len(cuts))),
        ],
        **boot,
    )
    return decisions_dict(cuts, calibrated, raw_figures, final_cuts)


def summarise_fusion(
    cfg: FitSettings,
    table: PairedTable,
    model: ScoreCalibrationModel,
    results: list[ConfigurationResult],
    splits,
    measure,
) -> FusionSummary:
    """Weights of the exported fusion with intervals, and each source's drop-one contribution
    (the fused row minus the held-out row of the same configuration without that source)."""
    ev = cfg.evaluate
    names = list(table.source_names)
    without: dict[str, PerQuery] = {}
    for name in names:  # the same fused pipeline (scales, objective, calibrator) minus one source
        rest = [n for n in names if n != name]
        cols = [names.index(n) for n in rest]
        pred, _ = out_of_fold(
            build_model(cfg, table, rest, fusion_step=True),
            table.sources[:, cols],
            table.target,
            table.group_codes(),
            splits,
        )
        without[name] = measure(pred)[1]
    fusion = model.fusion_
    return FusionSummary(
        objective=fusion.objective,
        objective_scores=dict(model.objective_scores_),
        scale=fusion.scale,
        score_types=dict(zip(names, fusion.source_types)) if fusion.source_types else {},
        weights=weight_intervals(
            model,
            table.sources,
            table.target,
            table.group_codes(),
            n_bootstrap=cfg.fusion.n_bootstrap,
            confidence=ev.confidence,
            seed=cfg.seed,
            maps=cfg.fusion.bootstrap_maps.value,
        ),
        contributions=contributions(
            results[-1].per_query, without, n_bootstrap=ev.n_bootstrap, confidence=ev.confidence, seed=cfg.seed
        ),
    )


def _alignment_warnings(table: PairedTable, results: list[ConfigurationResult], cfg: FitSettings) -> list[str]:
    """Low raw rank agreement is a prompt problem before it is a calibration problem: say so for
    every source whose configuration no ``align`` run chose (the sidecar records ``aligned_by``)."""
    floor = cfg.evaluate.min_rank_agreement
    sidecar = table.meta.get("sources") or {}
    out = []
    for r in results:
        rho = r.metrics["spearman"].value
        if (
            r.kind != "raw"
            or r.sources[0] not in table.source_names
            or not np.isfinite(rho)
            or rho >= floor
            or (sidecar.get(r.sources[0]) or {}).get("aligned_by")
        ):
            continue
        out.append(
            f"raw per-query rank agreement of '{r.sources[0]}' with the reference is {rho:.3f} (< "
            f"evaluate.min_rank_agreement={floor:g}) and no `align` run chose its configuration: a calibrator "
            "cannot reorder documents; `python -m pipeline align` looks for the prompt difference first"
        )
    return out


def _trust_warnings(table: PairedTable, final: ConfigurationResult, cfg: FitSettings) -> list[str]:
    ev = cfg.evaluate
    out = []
    widths = {name: final.metrics[name].width for name in ("pearson", "spearman", "combined")}
    wide = {k: w for k, w in widths.items() if np.isfinite(w) and w > ev.max_ci_width}
    if table.n_queries < ev.min_queries or wide:
        shown = ", ".join(
            f"{k} ±{w / 2:.3f} (width {w:.3f})" if np.isfinite(w) else f"{k} n/a" for k, w in widths.items()
        )
        out.append(
            f"small sample: {table.n_rows} pairs in {table.n_queries} queries; {int(ev.confidence * 100)}% "
            f"interval widths of '{final.name}': {shown}. Do not trust these figures for production "
            f"decisions (warning thresholds: < {ev.min_queries} queries or width > {ev.max_ci_width})."
        )
    if table.small_queries():
        out.append(
            f"{table.small_queries()} queries have a single document: they count for pearson/mae, not for rank metrics"
        )
    if final.per_query.n_constant:
        out.append(
            f"{final.per_query.n_constant} queries have constant scores in '{final.name}' or the reference: excluded from spearman/kendall"
        )
    return out


def report_dict(report: EvaluationReport, table: PairedTable) -> dict[str, Any]:
    """metrics.json content: held-out figures of every configuration, plus where they came from."""
    out = report.as_dict()
    out["data"] = {
        "path": str(table.path),
        "sha256": table.sha256,
        "target": table.target_name,
        "sources": table.source_names,
    }
    out["simulated"] = bool(table.meta.get("simulated", False))
    return out
