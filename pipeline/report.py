"""Readable end-of-run summary: one row per configuration, value and interval per metric."""

from __future__ import annotations

import math

from pipeline.evaluation import EvaluationReport

COLUMNS = (
    ("pearson", "score corr (pearson)"),
    ("spearman", "rank sim (spearman)"),
    ("kendall", "kendall tau-b"),
    ("topk", "top-k overlap"),
    ("ndcg", "ndcg@k"),
    ("mae", "MAE"),
    ("combined", "combined"),
)


def _cell(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"{value:.3f}"
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def format_report(report: EvaluationReport) -> str:
    ev = report.settings
    header = ["configuration"] + [title.replace("top-k", f"top-{ev['top_k']}").replace("@k", f"@{ev['top_k']}") for _, title in COLUMNS]
    rows = [header]
    for res in report.results:
        rows.append([res.name] + [_cell(res.metrics[k].value, res.metrics[k].low, res.metrics[k].high) for k, _ in COLUMNS])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(rows[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in rows[1:]]
    conf = int(round(ev["confidence"] * 100))
    out.append(
        f"held-out: GroupKFold by query ({report.n_splits} folds), {report.n_rows} pairs, {report.n_queries} queries; "
        f"[{conf}% bootstrap interval over queries, {ev['n_bootstrap']} resamples]. "
        "Raw rows use no fitting. A monotone calibrator leaves per-query rank metrics unchanged "
        "(up to ties it creates); only fusion can move them."
    )
    for res in report.results:
        folds = res.details.get("folds")
        if folds:
            families = sorted({f["family"] for f in folds})
            weights = [f["weights"] for f in folds if "weights" in f]
            extra = ""
            if weights:
                mean_w = {k: sum(w[k] for w in weights) / len(weights) for k in weights[0]}
                extra = "; mean fusion weights " + ", ".join(f"{k}={v:.2f}" for k, v in mean_w.items())
            out.append(f"  {res.name}: per-fold family {', '.join(families)}{extra}")
    return "\n".join(out)
