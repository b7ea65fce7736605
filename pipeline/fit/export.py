"""The artifact of a fit: its destination checked before any work, its manifest, and the write.

The manifest records where the scores came from (table sidecar metadata written by collect,
else the ``models.*`` config), the preprocessing, the data hash and counts, the held-out metrics
(from this run's evaluation, or from ``metrics.json`` when it was produced from the same data and
settings), library versions and the sha256 of each file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.calibration.fusion import ScoreCalibrationModel
from pipeline.config.fit import FitSettings, artifact_name, report_dir
from pipeline.core.console import wrapped
from pipeline.data.table import PairedTable
from pipeline.fit.artifacts import library_versions, write_artifact
from pipeline.fit.evaluation import describe_model, settings_hash
from pipeline.fit.outputs import METRICS_FILE
from pipeline.runtime.loader import ArtifactError, check_name

_SOURCE_KEYS = (
    "kind",
    "model",
    "revision",
    "fingerprint",
    "fingerprint_hash",
    "score_type",
    "template",
    "instruction",
    "dialect",
    "endpoint",
    "strip_texts",
    "strip_prompt",
    "aligned_by",
)


def _identity(meta: dict[str, Any], column: str, model: str | None, revision: str | None) -> dict[str, Any]:
    """What produced one column: the collect sidecar if present, else the configured ids."""
    entry = (meta.get("sources") or {}).get(column) or {}
    out: dict[str, Any] = {"column": column}
    out.update({k: entry[k] for k in _SOURCE_KEYS if k in entry})
    out.setdefault("model", model)
    out.setdefault("revision", revision)
    if meta.get("simulated"):
        out["simulated"] = True
    return out


def build_manifest(
    cfg: FitSettings, table: PairedTable, model: ScoreCalibrationModel, metrics: dict[str, Any] | None
) -> dict[str, Any]:
    meta = table.meta
    m = cfg.models
    sources = [
        _identity(meta, col, m.source_model if i == 0 else None, m.source_revision if i == 0 else None)
        for i, col in enumerate(table.source_names)
    ]
    preprocessing = meta.get("preprocessing")
    if preprocessing is None:
        from pipeline.runtime.text import describe

        preprocessing = describe(cfg.text)
    return {
        "sources": sources,
        "target": _identity(meta, table.target_name, m.target_model, m.target_revision),
        "preprocessing": preprocessing,
        "calibrator": describe_model(model),
        "data": {
            "path": str(table.path),
            "sha256": table.sha256,
            "rows": table.n_rows,
            "queries": table.n_queries,
            "queries_single_document": table.small_queries(),
            "simulated": bool(meta.get("simulated", False)),
        },
        "metrics": metrics,
        "thresholds": transferred_thresholds(cfg, table, model),
        "libraries": library_versions(),
        "settings": {
            "calibrator": cfg.calibrator.family.value,
            "fusion": cfg.fusion.method.value,
            "seed": cfg.seed,
            "settings_sha256": settings_hash(cfg),
        },
    }


def transferred_thresholds(cfg: FitSettings, table: PairedTable, model: ScoreCalibrationModel) -> dict[str, Any]:
    """For each threshold ``t`` on the reference scale, the raw-score cut that best reproduces the
    reference's keep/drop decision, fitted on every row (``load_calibrator(...).threshold(t)``).
    ``raw`` is null with ``keeps`` "all" or "none" when no cut does better than keeping
    everything or nothing."""
    from pipeline.calibration.decisions import transfer_thresholds
    from pipeline.fit.evaluation import thresholds

    levels = thresholds(cfg, table)
    cuts = []
    for t, cut in zip(levels, transfer_thresholds(model.fused(table.sources), table.target, levels)):
        entry: dict[str, Any] = {"reference": float(t), "raw": float(cut) if np.isfinite(cut) else None}
        if not np.isfinite(cut):
            entry["keeps"] = "all" if cut < 0 else "none"
        cuts.append(entry)
    applies_to = (
        f"the raw score of '{table.source_names[0]}'"
        if model.fusion_ is None
        else "the fused score before calibration (calibrator.json's fusion step)"
    )
    return {"applies_to": applies_to, "cuts": cuts}


def intervals_table(table: PairedTable, model: ScoreCalibrationModel, held_out: np.ndarray) -> dict[str, Any]:
    """Per-score intervals from the exported configuration's out-of-fold predictions
    (:mod:`pipeline.calibration.conformal`), clipped to the calibrator's output range."""
    from pipeline.calibration.conformal import fit_intervals

    spec = model.calibrator_.to_spec()
    lo, hi = spec.get("y_range") or (float(table.target.min()), float(table.target.max()))
    return fit_intervals(held_out, table.target, y_range=(lo, hi))


def held_out_summary(report_json: dict[str, Any]) -> dict[str, Any]:
    """The manifest's metrics block: the exported configuration and its raw baseline(s)."""
    configs = report_json["configurations"]
    exported = report_json["exported"]
    keep = {name: c["metrics"] for name, c in configs.items() if c["kind"] == "raw" or name == exported}
    return {
        "held_out": True,
        "exported": exported,
        "configurations": keep,
        "n_splits": report_json["n_splits"],
        "confidence": report_json["settings"]["confidence"],
        "top_k": report_json["settings"]["top_k"],
        "warnings": report_json["warnings"],
        "decisions": report_json.get("decisions", []),
    }


def matching_metrics(cfg: FitSettings, table: PairedTable) -> dict[str, Any] | None:
    path = Path(report_dir(cfg)) / METRICS_FILE
    if not path.is_file():
        return None
    report_json = json.loads(path.read_text(encoding="utf-8"))
    if report_json.get("data", {}).get("sha256") != table.sha256 or report_json.get("settings", {}).get(
        "settings_sha256"
    ) != settings_hash(cfg):
        return None
    return held_out_summary(report_json)


def check_destination(cfg: FitSettings, table: PairedTable) -> str | None:
    """Before any work: the artifact name is valid, and an existing artifact of that name is only
    replaced when it was fitted on the same table (or ``export.replace=true``). Returns a line
    saying what will be replaced, or None for a new artifact."""
    name = artifact_name(cfg)
    check_name(name)
    final = Path(cfg.export.root) / name
    if not final.exists():
        return None
    try:
        old = json.loads((final / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        old = {}
    old_data = (old.get("data") or {}).get("path")
    same_table = old_data is not None and Path(old_data).resolve() == Path(table.path).resolve()
    if not same_table and not cfg.export.replace:
        raise ArtifactError(
            f"{final} holds a calibrator fitted on {old_data or 'an unknown table'}, not on {table.path}; "
            f"choose another name (export.name=...) or replace it on purpose (export.replace=true)"
        )
    exported = ((old.get("metrics") or {}).get("exported")) or "?"
    return (
        f"replacing {final} (fitted on {old_data or '?'}, sha256 {str((old.get('data') or {}).get('sha256'))[:12]}, "
        f"exported '{exported}')"
    )


def run_export(
    cfg: FitSettings,
    table: PairedTable,
    model: ScoreCalibrationModel,
    metrics: dict[str, Any] | None,
    replacing: str | None,
    intervals: dict[str, Any] | None = None,
) -> Path:
    """Write the artifact; ``replacing`` is what :func:`check_destination` said before the work;
    ``intervals`` the per-score intervals table (:func:`intervals_table`), when the run evaluated."""
    manifest = build_manifest(cfg, table, model, metrics)
    path = write_artifact(
        cfg.export.root, artifact_name(cfg), model, manifest, write_joblib=cfg.export.joblib, intervals=intervals
    )
    if replacing:
        print(wrapped(replacing))
    info = manifest["calibrator"]
    weights = (
        (", fusion weights " + ", ".join(f"{k}={v:.2f}" for k, v in info["weights"].items()))
        if "weights" in info
        else ""
    )
    print(
        wrapped(
            f"artifact: {path} (family {info['family']}{weights}); "
            f"load with pipeline.inference.load_calibrator({str(path)!r})"
        )
    )
    return path
