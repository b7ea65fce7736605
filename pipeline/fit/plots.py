"""The two plots ``fit`` writes: local vs reference with the fitted curve (and the identity line:
what no calibration would give), and the distribution of per-query rank agreement as ECDF curves,
one per configuration, which stay readable where overlapping histograms turn brown. Written
atomically; matplotlib's Agg backend only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.files import atomic_output_path, commit_output


def _save(fig, path: Path) -> Path:
    tmp, final = atomic_output_path(path)
    try:
        # laid out once before saving: bbox_inches="tight" drew every figure twice (the first draw
        # only to measure it), the larger part of a plot's cost with 20,000 points
        fig.tight_layout()
        fig.savefig(tmp, dpi=110, format="png")
        return commit_output(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def plot_calibration(
    x: np.ndarray,
    y: np.ndarray,
    curve_x: np.ndarray,
    curve_y: np.ndarray,
    *,
    x_label: str,
    y_label: str,
    title: str,
    path: Path,
    identity: bool = True,
    band: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> Path:
    fig = calibration_figure(
        x, y, curve_x, curve_y, x_label=x_label, y_label=y_label, title=title, identity=identity, band=band
    )
    return _save_and_close(fig, path)


def _save_and_close(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def calibration_figure(
    x: np.ndarray,
    y: np.ndarray,
    curve_x: np.ndarray,
    curve_y: np.ndarray,
    *,
    x_label: str,
    y_label: str,
    title: str,
    identity: bool = True,
    band: tuple[np.ndarray, np.ndarray, float] | None = None,
):
    """Pairs, the fitted curve, the identity line and, with ``band`` = (lower, upper, coverage)
    over ``curve_x``, the per-score interval of the reference around the curve."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(x, y, s=8, alpha=0.45, label="pairs", color="tab:blue", edgecolors="none")
    ax.plot(curve_x, curve_y, color="tab:red", lw=2, label="fitted calibrator")
    if band is not None:
        low, high, coverage = band
        ax.fill_between(
            curve_x, low, high, color="tab:red", alpha=0.15, lw=0, label=f"{coverage:.0%} interval of the reference"
        )
    if identity:
        lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
        ax.plot([lo, hi], [lo, hi], color="0.4", lw=1, ls="--", label="identity (no calibration)")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(title)
    ax.legend(loc="upper left")  # where an increasing cloud leaves room; "best" searched 1M points
    ax.grid(alpha=0.3)
    return fig


def plot_rank_agreement(per_query: dict[str, np.ndarray], *, title: str, path: Path) -> Path:
    return _save_and_close(rank_agreement_figure(per_query, title=title), path)


def rank_agreement_figure(per_query: dict[str, np.ndarray], *, title: str):
    """ECDF of per-query Spearman for each configuration given (NaNs skipped): a curve further
    right means more queries in closer agreement; the axis spans only the observed values."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    finite = [v[np.isfinite(v)] for v in per_query.values()]
    observed = np.concatenate(finite) if any(v.size for v in finite) else np.array([0.0, 1.0])
    styles = ["-", "--", ":", "-."]
    for i, (name, values) in enumerate(per_query.items()):
        v = np.sort(values[np.isfinite(values)])
        if not v.size:
            continue
        ax.step(
            np.concatenate([[v[0]], v]),
            np.arange(v.size + 1) / v.size,
            where="post",
            lw=1.8,
            ls=styles[i % len(styles)],
            label=f"{name} (mean {v.mean():.3f}, {v.size} queries)",
        )
    ax.set_xlim(max(-1.0, float(observed.min()) - 0.02), 1.0)
    ax.set_ylim(0, 1)
    ax.set_xlabel("per-query Spearman with the reference")
    ax.set_ylabel("share of queries at or below")
    ax.set_title(title)
    if ax.get_lines():
        ax.legend(loc="upper left", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no query with a defined rank correlation", ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    return fig


def plot_decisions(decisions: list[dict], *, title: str, path: Path) -> Path:
    """Keep/drop agreement with the reference against the threshold: the calibrated score at
    ``t`` and the raw score at the transferred threshold (accuracy, with its interval for the
    calibrated one), and the share of queries whose kept set is the reference's."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    t = np.array([d["threshold"] for d in decisions])

    def series(kind: str, metric: str, part: str) -> np.ndarray:
        return np.array([np.nan if d[kind][metric][part] is None else d[kind][metric][part] for d in decisions])

    fig, ax = plt.subplots(figsize=(6, 4))
    value = series("calibrated", "accuracy", "value")
    errors = np.vstack(
        [value - series("calibrated", "accuracy", "ci_low"), series("calibrated", "accuracy", "ci_high") - value]
    )
    ax.errorbar(t, value, yerr=np.nan_to_num(errors), marker="o", capsize=3, label="calibrated >= t: accuracy")
    ax.plot(
        t,
        series("raw_at_transferred", "accuracy", "value"),
        marker="s",
        ls="--",
        label="raw >= transferred cut: accuracy",
    )
    ax.plot(
        t, series("calibrated", "identical", "value"), marker="^", ls=":", label="calibrated: same kept set (queries)"
    )
    ax.set_xlabel("threshold t on the reference scale")
    ax.set_ylabel("agreement with {reference >= t}")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    return _save_and_close(fig, path)
