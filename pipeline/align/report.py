"""What ``align`` writes and prints: every candidate with its figures, the winner as a ready
``local`` config, and a picture; in the project's 100-column style."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipeline.align.search import Measured, plain


def label(settings: dict[str, Any], start: dict[str, Any]) -> str:
    """The candidate as its differences from the starting config ("as configured" when none)."""
    parts = []
    for key, value in settings.items():
        if plain(value) == plain(start.get(key)):
            continue
        value = plain(value)
        if key == "instruction":
            text = "model default" if value is None else repr(value if len(value) <= 18 else value[:16] + "..")
            parts.append(f"instr={text}")
        elif key == "strip_texts":
            parts.append("strip" if value else "no strip")
        elif key == "text":
            parts.append(f"text.{value}")
        elif key == "strip_prompt":
            parts.append("strip prompt" if value else "keep prompt ws")
        elif key == "max_chunks_per_doc":
            parts.append("no chunks" if value is None else f"chunks<={value}")
        else:
            parts.append(str(value) if key in ("template", "dtype") else f"{key}={value}")
    return ", ".join(parts) or "as configured"


def _interval(m) -> str:
    if m is None or not math.isfinite(m.value):
        return "n/a"
    if math.isfinite(m.low) and math.isfinite(m.high):
        return f"{m.value:.3f} [{m.low:.3f},{m.high:.3f}]"
    return f"{m.value:.3f}"


#: candidates the terminal table shows (the best first; every one is in candidates.csv)
TABLE_ROWS = 12


def table(results: list[Measured], start: dict[str, Any], limit: int = TABLE_ROWS) -> list[str]:
    rows = [["candidate (changes to the local config)", "rank sim", "mono r", "MAE", "max |d|"]]
    for m in sorted(results, key=Measured.rank_key)[:limit]:
        name = label(m.settings, start)
        if not m.ok:
            rows.append([name, f"failed: {m.error}"[:50], "", "", ""])
            continue
        rows.append([name, _interval(m.spearman), f"{m.pearson_monotone:.4f}", f"{m.mae:.2e}", f"{m.max_delta:.2e}"])
    widths = [min(max(len(r[i]) for r in rows), 46 if i == 0 else 50) for i in range(len(rows[0]))]
    cut = lambda c, w: c if len(c) <= w else c[: w - 2] + ".."  # noqa: E731
    line = lambda r: "  ".join(cut(c, widths[i]).ljust(widths[i]) for i, c in enumerate(r)).rstrip()  # noqa: E731
    return [line(rows[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in rows[1:]]


def candidates_csv(results: list[Measured], start: dict[str, Any], path: Path) -> Path:
    import csv

    keys = list(start)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "rank",
                "candidate",
                *keys,
                "spearman",
                "spearman_low",
                "spearman_high",
                "kendall",
                "pearson_monotone",
                "mae",
                "max_abs_delta",
                "error",
            ]
        )
        for i, m in enumerate(sorted(results, key=Measured.rank_key), 1):
            settings = [plain(m.settings.get(k)) for k in keys]
            if not m.ok:
                writer.writerow([i, label(m.settings, start), *settings, "", "", "", "", "", "", "", m.error])
                continue
            writer.writerow(
                [
                    i,
                    label(m.settings, start),
                    *settings,
                    m.spearman.value,
                    m.spearman.low,
                    m.spearman.high,
                    m.kendall.value,
                    m.pearson_monotone,
                    m.mae,
                    m.max_delta,
                    "",
                ]
            )
    return path


def plot(results: list[Measured], start: dict[str, Any], path: Path, title: str, limit: int = 15) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [m for m in sorted(results, key=Measured.rank_key) if m.ok]
    shown = ok[:limit][::-1]
    if len(ok) > limit:
        title += f" (best {limit} of {len(ok)}; all in candidates.csv)"
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(shown) + 1.6))
    for i, m in enumerate(shown):
        low, high = m.spearman.low, m.spearman.high
        if math.isfinite(low) and math.isfinite(high):
            ax.plot([low, high], [i, i], color="0.6", lw=3)
        ax.plot([m.spearman.value], [i], "o", color="C3" if m is shown[-1] else "C0")
    ax.set_yticks(range(len(shown)), [label(m.settings, start)[:60] for m in shown], fontsize=8)
    ax.set_xlabel("per-query Spearman with the API (search sample)\nbars: bootstrap interval over queries")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def local_yaml(lcfg: Any, report_path: str, text_switch: str | None = None) -> str:
    """The winner as a ``conf/local/`` group file (every field, so it stands on its own)."""
    from dataclasses import asdict

    from omegaconf import OmegaConf

    values = {k: plain(v) for k, v in asdict(lcfg).items()}
    values["aligned_by"] = report_path
    needs = (
        f"# It also needs text.{text_switch}=true, a global setting (both sides are sent the preprocessed text).\n"
        if text_switch
        else ""
    )
    return (
        "# @package local\n# Written by `python -m pipeline align`: the local configuration that reproduced the API best;\n"
        f"# see {report_path}. Use as local=<this file's name>, or as collect.extra_local.<column>.\n"
        + needs
        + OmegaConf.to_yaml(OmegaConf.create(values))
    )
