"""The embedding check's outputs: a console table, ``embed_check.json`` and ``embed_check.png``
(1 - cosine per category on a log axis; identical vectors give 0, drawn at the floor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.embed_check.texts import TextSet

#: where 1 - cosine == 0 (identical vectors) is drawn on the log axis
FLOOR = 1e-12


def clip_columns(text: str, columns: int) -> str:
    """``text`` on one line, cut to ``columns`` terminal columns (CJK characters take two)."""
    import unicodedata

    out, used = [], 0
    for ch in " ".join(text.split()):
        width = 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
        if used + width > columns:
            return "".join(out) + "…"
        out.append(ch)
        used += width
    return "".join(out)


def describe_side(side: dict[str, Any]) -> str:
    prompt = "no query prompt" if not side.get("query_prompt") else f"query prompt {side['query_prompt']!r}"
    dims = f"{side['dimensions']}-d" if side.get("dimensions") else "native size"
    where = side.get("base_url") or side.get("revision", "")
    return (
        f"{side['side']}: {side['model']} ({where}) dtype {side['dtype']}, pooling {side['pooling']}, {dims}, {prompt}"
    )


def format_report(report: dict[str, Any]) -> str:
    from pipeline.core.console import wrapped

    lines = [wrapped(describe_side(s)) for s in report["sides"].values()]
    lines.append(f"{report['texts']} texts ({report['queries']} queries) from {report['dataset']}")
    lines.append("")
    lines.append(f"{'category':<16} {'n':>5} {'mean cos':>10} {'std':>9} {'min':>10} {'p1':>10} {'max dist':>9}")

    def row(name: str, s: dict[str, Any]) -> str:
        return (
            f"{name:<16} {s['n']:>5} {s['mean']:>10.6f} {s['std']:>9.2e} {s['min']:>10.6f} {s['p1']:>10.6f} "
            f"{s['distance_max']:>9.2e}"
        )

    lines += [row(name, s) for name, s in report["categories"].items()]
    lines.append(row("all", report["overall"]))
    lines.append("")
    lines.append("worst texts:")
    for w in report["worst"]:
        head = f"  {w['cosine']:.6f}  {w['category']:<12} {w['key']}: "
        lines.append(head + clip_columns(w["text"], max(20, 99 - len(head))))
    r = report["retrieval"]
    if r.get("queries"):
        skipped = r.get("skipped_single_document", 0)
        note = f"; {skipped} with a single document have no ranking" if skipped else ""
        lines.append(
            wrapped(
                f"retrieval (top-{r['top_k']}, {r['queries']} queries{note}): top-k overlap mean "
                f"{r['topk_overlap_mean']:.3f} (min {r['topk_overlap_min']:.3f}), Spearman mean "
                f"{r['spearman_mean']:.4f} (min {r['spearman_min']:.4f}), same top-1 {r['same_top1']:.0%}"
            )
        )
        for q in r["changed"][:5]:
            lines.append(
                f"  {q['query']}: top-k overlap {q['topk_overlap']:.2f}, Spearman {q['spearman']:.3f}"
                + ("" if q["same_top1"] else ", top-1 differs")
            )
    diagnosis = report.get("diagnosis")
    if diagnosis:
        if diagnosis["cause"]:
            best = diagnosis["candidates"][0]
            lines.append(
                wrapped(
                    f"cause: {diagnosis['cause']} (with that change the local side reaches min cosine "
                    f"{best['min_cosine']:.6f}; as configured {diagnosis['configured_min_cosine']:.6f})"
                )
            )
        else:
            lines.append("cause: none of the tried changes (query instruction, pooling, dtype) explains the difference")
    return "\n".join(lines)


def verdict(report: dict[str, Any]) -> str:
    low = report["overall"]["min"]
    ok = report["passed"]
    return (
        f"embed-check: {'PASS' if ok else 'FAIL'}: min cosine {low:.8f} {'>=' if ok else '<'} threshold "
        f"{report['threshold']}"
    )


def plot(path: Path, texts: TextSet, cosines: np.ndarray, threshold: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = texts.categories
    gaps = np.maximum(1.0 - cosines, FLOOR)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(categories) + 2), 4.2))
    rng = np.random.default_rng(0)
    for x, category in enumerate(categories):
        values = gaps[[i for i, t in enumerate(texts.texts) if t.category == category]]
        ax.scatter(x + rng.uniform(-0.18, 0.18, values.size), values, s=10, alpha=0.6)
        ax.hlines(np.median(values), x - 0.3, x + 0.3, color="black", linewidth=1)
    ax.axhline(
        max(1.0 - threshold, FLOOR), color="red", linestyle="--", linewidth=1, label=f"threshold (cos {threshold})"
    )
    ax.set_yscale("log")
    # from a decade below the smallest gap (the floor when some vectors are identical) to a decade
    # above the larger of the worst gap and the threshold: the data fills the plot
    top = max(float(gaps.max()), 1.0 - threshold, FLOOR) * 10
    ax.set_ylim(max(FLOOR / 2, float(gaps.min()) / 10), min(2.0, top))
    ax.set_xticks(range(len(categories)), categories, rotation=30, ha="right")
    ax.set_ylabel(f"1 - cosine (floor {FLOOR:g} = identical)")
    ax.set_title("embedding agreement per category")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
