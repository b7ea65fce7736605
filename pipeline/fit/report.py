"""Readable end-of-run summary that fits a 100-column terminal.

Two blocks with one row per configuration: the headline figures (score correlation, rank
similarity, MAE), then the other rank figures and ``combined``. Each cell is the held-out value
and its bootstrap interval. Short footnotes define what a reader cannot guess: held-out how,
what ``combined`` is, why calibration can lower top-k overlap (ties), and why the per-fold family
can differ from the exported one.
"""

from __future__ import annotations

import math

from pipeline.core.console import wrap_lines
from pipeline.fit.evaluation import EvaluationReport

HEADLINE = (("pearson", "score corr"), ("spearman", "rank sim"), ("mae", "MAE"))
DETAIL = (("kendall", "kendall tau-b"), ("topk", "top-k overlap"), ("ndcg", "ndcg@k"), ("combined", "combined"))


def _num(v: float) -> str:
    """3 decimals; the leading zero dropped inside intervals so a cell stays 17 characters."""
    return f"{v:.3f}"


def _short(v: float) -> str:
    text = f"{v:.3f}"
    if text in ("1.000", "-1.000"):  # a perfect bound: keeps a cell within the 100-column budget
        return text[:-4]
    return text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text


def _cell(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return _num(value)
    return f"{_num(value)} [{_short(low)},{_short(high)}]"


def _block(report: EvaluationReport, columns, top_k: int) -> list[str]:
    header = ["configuration"] + [
        title.replace("top-k", f"top-{top_k}").replace("@k", f"@{top_k}") for _, title in columns
    ]
    rows = [header] + [
        [r.name] + [_cell(r.metrics[k].value, r.metrics[k].low, r.metrics[k].high) for k, _ in columns]
        for r in report.results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return [line(rows[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in rows[1:]]


def footnotes(report: EvaluationReport) -> list[str]:
    ev = report.settings
    conf = int(round(ev["confidence"] * 100))
    notes = [
        f"held-out: {report.n_splits}-fold GroupKFold by query, {report.n_rows} pairs, {report.n_queries} queries; "
        f"[{conf}% bootstrap interval over queries, {ev['n_bootstrap']} resamples]. raw: the score as it is.",
        "combined = (score corr + rank sim) / 2 of the same row, the seed report's consistency figure.",
        "A monotone calibrator cannot reorder the documents of a query: rank figures move only by fusion.",
    ]
    if report.decisions:
        notes.append(
            f"t: keep/drop decisions {{'{report.exported.name}' >= t}} vs {{reference >= t}}, held out; same kept set: share "
            "of queries keeping exactly the reference's documents; raw cut: the raw score that best reproduces "
            "the reference's decision (manifest.json, load_calibrator(...).threshold(t)), raw acc.: its held-out accuracy."
        )
    raw = {r.sources[0]: r for r in report.results if r.kind == "raw"}
    for r in report.results:
        base = raw.get(r.sources[0]) if r.kind == "calibrated" else None
        if base is not None and r.metrics["topk"].value < base.metrics["topk"].value - 1e-12:
            notes.append(
                f"'{r.name}' has lower top-{ev['top_k']} overlap than raw: its calibrator maps nearby scores "
                "to one value (isotonic steps), and tied documents leave the top-k in table order."
            )
    notes += _fusion_notes(report)
    for r in report.results:
        folds = r.details.get("folds")
        if not folds:
            continue
        families = sorted({f["family"] for f in folds})
        text = f"'{r.name}': family per fold {', '.join(families)}"
        weights = [f["weights"] for f in folds if "weights" in f]
        if weights:
            mean_w = {k: sum(w[k] for w in weights) / len(weights) for k in weights[0]}
            text += "; mean fusion weights " + ", ".join(f"{k}={v:.2f}" for k, v in mean_w.items())
        if ev["calibrator"] == "auto" and len(families) > 1:
            text += " (auto picks per fold by held-out error; the export refits the choice on all rows)"
        notes.append(text)
    return notes


def _signed(value: float, low: float, high: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    value, low, high = (0.0 if abs(v) < 0.0005 else v for v in (value, low, high))  # no "-.000"
    text = f"{value:+.3f}"
    return text if not (math.isfinite(low) and math.isfinite(high)) else f"{text} [{_short(low)},{_short(high)}]"


def _fusion_notes(report: EvaluationReport) -> list[str]:
    """The exported fusion: how it was fitted, its weights with intervals, what each source adds."""
    f = report.fusion
    if f is None:
        return []
    conf = int(round(report.settings["confidence"] * 100))
    objective = f.objective
    if f.objective_scores:
        objective += (
            " (auto; held-out combined "
            + ", ".join(f"{k} {v:.3f}" for k, v in f.objective_scores.items())
            + "; a tie goes to rank)"
        )
    weights = ", ".join(f"{k} {_cell(v.value, v.low, v.high)}" for k, v in f.weights.items())
    resampled = report.settings.get("fusion_n_bootstrap", 0)
    maps = "source maps held fixed" if report.settings.get("fusion_bootstrap_maps") == "fixed" else "maps refitted"
    interval = f" [{conf}% over {resampled} query resamples, {maps}]" if resampled else ""
    adds = "; ".join(
        f"{k} {_signed(c['spearman'].value, c['spearman'].low, c['spearman'].high)} / "
        f"{_signed(c['combined'].value, c['combined'].low, c['combined'].high)}"
        for k, c in f.contributions.items()
    )
    return [
        f"exported fusion: {f.scale} scale, objective {objective}; weights {weights}{interval}.",
        f"drop-one: the fused row minus the same fused model refitted without the source, held out, rank sim / "
        f"combined: {adds}. An interval covering 0: the source adds nothing measurable.",
    ]


def _decisions_block(report: EvaluationReport) -> list[str]:
    """Keep/drop agreement per threshold: the exported configuration, then the raw score cut at
    the transferred threshold (its accuracy next to the cut)."""
    if not report.decisions:
        return []

    def cell(m: dict) -> str:
        return _cell(*(float("nan") if m[k] is None else m[k] for k in ("value", "ci_low", "ci_high")))

    header = ["t", "accuracy", "precision", "recall", "same kept set", "raw cut", "raw acc."]
    rows = [header]
    for d in report.decisions:
        cal, raw = d["calibrated"], d["raw_at_transferred"]
        cut = d["transferred_threshold"]
        rows.append(
            [f"{d['threshold']:g}"]
            + [cell(cal[k]) for k in ("accuracy", "precision", "recall", "identical")]
            + [
                "none" if cut is None else f"{cut:.4g}",
                "n/a" if raw["accuracy"]["value"] is None else f"{raw['accuracy']['value']:.3f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()  # noqa: E731
    return [line(rows[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in rows[1:]] + [""]


def format_report(report: EvaluationReport) -> str:
    top_k = report.settings["top_k"]
    out = _block(report, HEADLINE, top_k) + [""] + _block(report, DETAIL, top_k) + [""]
    out += _decisions_block(report)
    for note in footnotes(report):
        out += wrap_lines(note)
    return "\n".join(out)
