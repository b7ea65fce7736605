"""The two plots ``fit`` writes: local vs reference with the fitted curve, and per-query rank
agreement (raw vs exported configuration). Written atomically; matplotlib's Agg backend only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.files import atomic_output_path, commit_output


def _save(fig, path: Path) -> Path:
    tmp, final = atomic_output_path(path)
    try:
        fig.savefig(tmp, dpi=110, format="png", bbox_inches="tight")
        return commit_output(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def plot_calibration(x: np.ndarray, y: np.ndarray, curve_x: np.ndarray, curve_y: np.ndarray, *, x_label: str, y_label: str, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(x, y, s=8, alpha=0.45, label="pairs", color="tab:blue", edgecolors="none")
    ax.plot(curve_x, curve_y, color="tab:red", lw=2, label="fitted calibrator")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_rank_agreement(per_query: dict[str, np.ndarray], *, title: str, path: Path) -> Path:
    """Histogram of per-query Spearman for each configuration given (NaNs skipped)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(-1, 1, 21)
    for name, values in per_query.items():
        v = values[np.isfinite(values)]
        ax.hist(v, bins=bins, alpha=0.5, label=f"{name} (mean {v.mean():.3f}, {v.size} queries)" if v.size else name)
    ax.set_xlabel("per-query Spearman vs reference")
    ax.set_ylabel("queries")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)
