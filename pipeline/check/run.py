"""``python -m pipeline check``: is the deployment still what its calibrator was fitted for?

Run it from cron or CI next to a deployed calibrator. It

1. loads the exported artifact (``check.artifact``, default ``artifacts/calibrators/<name>``)
   and its manifest;
2. builds today's local scorer(s) for the artifact's source columns and today's API source, and
   compares their fingerprints (model, resolved revision, dtype, template, instruction,
   preprocessing, ...) with the manifest's;
3. scores a deterministic sample of ``check.queries`` query groups of ``collect.dataset`` with
   the local model(s) and the API, **bypassing the score cache** (a throwaway cache), so it sees
   what the API answers today;
4. applies the calibrator and measures agreement with the API (``check.metrics``, with bootstrap
   intervals), against the held-out figures and intervals the artifact was exported with, and
   reports keep/drop decision agreement at the artifact's thresholds (calibrated, and the raw
   score at the transferred threshold) next to the fit's (``decisions`` in check.json).

Exit status: 0 in agreement; 1 drift (a changed fingerprint, or a metric below the manifest's
interval by more than ``check.tolerance``); 2 error (the artifact, a model or the API could not
be used). One line says what changed; ``reports/<name>/check.json`` holds the details.
"""

from __future__ import annotations

import io
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.check import CheckSettings
from pipeline.config.fit import artifact_name, report_dir
from pipeline.core.errors import EXIT_OK, EXIT_VERDICT, PipelineError
from pipeline.core.files import atomic_write_json, utc_now

EXIT_DRIFT = EXIT_VERDICT
#: fingerprint entries that say nothing about the scores themselves
_IGNORED = {"scorer_version", "api_source_version"}


class CheckError(PipelineError, RuntimeError):
    """The check could not run (exit 2)."""


def run_check(cfg: CheckSettings) -> int:
    """0 in agreement, 1 drift. A check that cannot run raises (exit 2) and writes no report: a
    check.json always describes a check that happened."""
    try:
        report = check(cfg)
    except OSError as exc:  # a file the check reads (dataset, cache) cannot be opened
        raise CheckError(str(exc)) from None
    path = _report_path(cfg)
    atomic_write_json(path, report)
    print(f"check: {report['summary']}")
    print(f"wrote {path}", file=sys.stderr)
    return int(report["exit_code"])


def _report_path(cfg: CheckSettings) -> Path:
    """``report.dir``/check.json; by default next to the artifact's other reports."""
    if cfg.check.artifact and not cfg.report.dir:
        return Path("reports") / Path(cfg.check.artifact).name / "check.json"
    return Path(report_dir(cfg)) / "check.json"


def check(cfg: CheckSettings) -> dict[str, Any]:
    from pipeline.collect import api_source_fingerprint, build_local_scorer, local_configs
    from pipeline.runtime.loader import load_calibrator
    from pipeline.runtime.text import describe

    directory = Path(cfg.check.artifact or Path(cfg.export.root) / artifact_name(cfg))
    cal = load_calibrator(directory)
    manifest = cal.manifest
    columns = [s["column"] for s in manifest.get("sources") or []]
    target = manifest.get("target") or {}
    configured = local_configs(cfg)
    unknown = [c for c in columns if c not in configured]
    if unknown:
        raise CheckError(
            f"{directory} uses source column(s) {unknown}; configure them (local, or "
            f"+local@collect.extra_local.<column>=<entry>); configured: {sorted(configured)}"
        )
    if target.get("column") != cfg.collect.reference_col:
        raise CheckError(
            f"{directory}'s reference column is {target.get('column')!r}, collect.reference_col is "
            f"{cfg.collect.reference_col!r}"
        )

    changes: list[str] = []
    fingerprints: dict[str, Any] = {}
    scorers = {}
    try:
        for column, source in zip(columns, manifest["sources"]):
            scorer = scorers[column] = build_local_scorer(configured[column], cfg)
            fingerprints[column] = _compare(column, source, scorer.fingerprint(), changes)
        fingerprints[target["column"]] = _compare(target["column"], target, api_source_fingerprint(cfg), changes)
        preprocessing = describe(cfg.text)
        if manifest.get("preprocessing") not in (None, preprocessing):
            changes.append(f"preprocessing {_diff(manifest['preprocessing'], preprocessing)}")
        agreement = _score_sample(cfg, cal, columns, scorers)
    finally:
        for scorer in scorers.values():
            scorer.close()
    metrics = _compare_agreement(cfg, manifest, agreement, changes)
    drift = bool(changes)
    n = agreement["queries"]
    if drift:
        summary = "DRIFT: " + "; ".join(changes)
    else:
        shown = ", ".join(
            f"{m} {v['sample']['value']:.3f} (fitted {v['fitted']['value']:.3f})" for m, v in metrics.items()
        )
        summary = f"OK: fingerprints unchanged; {shown} on {n} queries"
    return {
        "status": "drift" if drift else "ok",
        "exit_code": EXIT_DRIFT if drift else EXIT_OK,
        "summary": summary,
        "changes": changes,
        "artifact": str(directory),
        "fingerprints": fingerprints,
        "agreement": metrics,
        "decisions": agreement["decisions"],
        "sample": {"dataset": cfg.collect.dataset, "queries": n, "pairs": agreement["pairs"], "seed": cfg.seed},
        "tolerance": cfg.check.tolerance,
        "checked": utc_now(),
    }


def _compare(column: str, recorded: dict[str, Any], fingerprint: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    from pipeline.scorers.base import fingerprint_hash

    now = fingerprint_hash(fingerprint)
    before = recorded.get("fingerprint_hash")
    out = {"fitted": before, "now": now, "changed": []}
    if before is None:
        out["note"] = "the artifact records no fingerprint for this column (table without a collect sidecar)"
        return out
    if before != now:
        old, new = _flat(recorded.get("fingerprint") or {}), _flat(fingerprint)
        keys = sorted(k for k in set(old) | set(new) if k.split(".")[0] not in _IGNORED and old.get(k) != new.get(k))
        out["changed"] = keys
        detail = ", ".join(f"{k} {_short(old.get(k))} -> {_short(new.get(k))}" for k in keys[:4]) or "fingerprint"
        changes.append(f"{column}: {detail}" + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else ""))
    return out


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k} {old.get(k)} -> {new.get(k)}" for k in keys)


def _score_sample(cfg: CheckSettings, cal, columns: list[str], scorers: dict) -> dict[str, Any]:
    """Collect the sample with a throwaway cache, apply the calibrator, measure agreement."""
    from pipeline.calibration.metrics import agreement
    from pipeline.collect import collect
    from pipeline.data.table import read_table

    with tempfile.TemporaryDirectory(prefix="check-") as tmp:
        extra = {c: cfg.collect.extra_local[c] for c in columns if c in cfg.collect.extra_local}
        c = replace(
            cfg.collect,
            cache=str(Path(tmp) / "cache.sqlite"),
            output=str(Path(tmp) / "sample.csv"),
            max_queries=cfg.check.queries,
            extra_local=extra,
            run_api=True,
            run_local=True,
            dry_run=False,
        )
        if cfg.collect.local_col not in columns:
            raise CheckError(f"the artifact does not use the '{cfg.collect.local_col}' column; check needs it")
        collect(replace(cfg, collect=c), scorers=scorers, out=io.StringIO())
        table = read_table(c.output, target=c.reference_col, sources=columns, query_col=c.query_col, doc_col=c.doc_col)
    local = table.sources[:, 0] if len(columns) == 1 else table.sources
    calibrated = cal(local)
    top_k = ((cal.manifest.get("metrics") or {}).get("top_k")) or cfg.evaluate.top_k
    metrics, _ = agreement(
        calibrated,
        table.target,
        table.group_codes(),
        k=int(top_k),
        n_bootstrap=cfg.check.n_bootstrap,
        confidence=cfg.evaluate.confidence,
        seed=cfg.seed,
    )
    decisions = _decisions(cfg, cal, local, calibrated, table)
    return {"metrics": metrics, "queries": table.n_queries, "pairs": table.n_rows, "decisions": decisions}


def _decisions(cfg: CheckSettings, cal, local: np.ndarray, calibrated: np.ndarray, table) -> list[dict[str, Any]]:
    """Keep/drop agreement on the fresh sample at the thresholds the artifact was fitted with:
    calibrated scores, and (one source) the raw score cut at the transferred threshold, next to
    the held-out figures of the fit. Reported, not a drift criterion."""
    from pipeline.calibration.decisions import decision_agreement, decision_counts

    cuts = (cal.manifest.get("thresholds") or {}).get("cuts") or []
    if not cuts:
        return []
    levels = [float(c["reference"]) for c in cuts]
    groups = table.group_codes()
    boot = {"n_bootstrap": cfg.check.n_bootstrap, "confidence": cfg.evaluate.confidence, "seed": cfg.seed}
    now = decision_agreement(decision_counts(calibrated, table.target, groups, levels), **boot)
    raw = None
    if np.ndim(local) == 1:
        raw_cuts = [cal.threshold(t) for t in levels]
        raw = decision_agreement(
            decision_counts(local, table.target, groups, levels, local_thresholds=raw_cuts), **boot
        )
    fitted = {d["threshold"]: d for d in (cal.manifest.get("metrics") or {}).get("decisions") or []}
    out = []
    for i, t in enumerate(levels):
        entry: dict[str, Any] = {"threshold": t, "sample": {k: v.as_dict() for k, v in now[i].items()}}
        if raw is not None:
            entry["raw_at_transferred"] = {k: v.as_dict() for k, v in raw[i].items()}
        if t in fitted:
            entry["fitted"] = fitted[t]["calibrated"]
        out.append(entry)
    return out


def _compare_agreement(
    cfg: CheckSettings, manifest: dict[str, Any], sample: dict[str, Any], changes: list[str]
) -> dict[str, Any]:
    held_out = manifest.get("metrics") or {}
    exported = (held_out.get("configurations") or {}).get(held_out.get("exported")) or {}
    out = {}
    for name in cfg.check.metrics:
        fitted = exported.get(name)
        now = sample["metrics"].get(name)
        if now is None:
            raise CheckError(f"check.metrics: unknown metric {name!r}")
        entry: dict[str, Any] = {"sample": now.as_dict(), "fitted": fitted}
        if fitted is None or fitted.get("ci_low") is None:
            entry["note"] = "the artifact records no held-out interval for this metric"
        elif not np.isfinite(now.value) or now.value < fitted["ci_low"] - cfg.check.tolerance:
            entry["drift"] = True
            changes.append(
                f"{name} {now.value:.3f} is below the fitted interval [{fitted['ci_low']:.3f}, "
                f"{fitted['ci_high']:.3f}] by more than {cfg.check.tolerance:g}"
            )
        out[name] = entry
    return out
