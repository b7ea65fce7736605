"""Per-score intervals: held-out coverage and width, binned conformal vs one global interval.

On generated pairs (``pipeline/testing/intervals_data.py``: a monotone map plus noise, a shared
offset per query; constant noise, and noise growing with the score), several seeds: fit the
calibrator and its out-of-fold residuals on one sample, apply the intervals to a fresh sample of
the same size, and report the empirical coverage at 0.8 / 0.9 / 0.95 and the mean width in the
low- and high-noise halves. Baseline in the same run: split-conformal with one bin (the same
residuals, one global interval width), what an artifact without bins would give.

Targets (issue #26): coverage within 2 points of nominal (mean over seeds); heteroscedastic
data: low-noise half's mean width <= 0.6x the high-noise half's, coverage within 3 points in each.

    python bench/bench_intervals.py [--queries 2000] [--seeds 5]
"""

from __future__ import annotations

import argparse

import numpy as np

from pipeline.calibration import conformal
from pipeline.calibration.calibrators import grouped_splits, make_calibrator
from pipeline.calibration.conformal import fit_intervals
from pipeline.calibration.fusion import ScoreCalibrationModel
from pipeline.fit.evaluation import out_of_fold
from pipeline.runtime.intervals import compile_intervals
from pipeline.testing.intervals_data import interval_sample

LEVELS = (0.8, 0.9, 0.95)


def run(queries: int, seed: int, heteroscedastic: bool, one_bin: bool) -> dict:
    x, y, g, _ = interval_sample(queries, seed=seed, heteroscedastic=heteroscedastic)
    model = ScoreCalibrationModel(make_calibrator("auto"), sources=["x"])
    held_out, _ = out_of_fold(model, x[:, None], y, g, grouped_splits(x.size, g, 5, seed))
    saved = conformal.MAX_BINS
    conformal.MAX_BINS = 1 if one_bin else saved
    try:
        apply = compile_intervals(fit_intervals(held_out, y, y_range=(0.0, 1.0)))
    finally:
        conformal.MAX_BINS = saved
    model.fit(x[:, None], y, groups=g)
    xt, yt, _, sd = interval_sample(queries, seed=10_000 + seed, heteroscedastic=heteroscedastic)
    pred = model.predict(xt[:, None])
    out = {}
    # the halves: by noise level where it varies, else by score (lower vs upper half)
    quiet = sd < np.median(sd) if heteroscedastic else xt < np.median(xt)
    for level in LEVELS:
        low, high = apply(pred, level)
        inside = (low <= yt) & (yt <= high)
        out[level] = {
            "coverage": inside.mean(),
            "low_half": (inside[quiet].mean(), np.mean((high - low)[quiet])),
            "high_half": (inside[~quiet].mean(), np.mean((high - low)[~quiet])),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    ok = True
    for heteroscedastic in (False, True):
        label = "noise growing with the score" if heteroscedastic else "constant noise"
        print(f"\n== {label}: {args.queries} queries x 10 pairs, {args.seeds} seeds ==")
        halves = ("low-noise half", "high-noise half") if heteroscedastic else ("lower scores", "upper scores")
        print(f"{'':<24}{'coverage':>10}{halves[0]:>28}{halves[1]:>28}{'width ratio':>13}")
        for one_bin in (True, False):
            runs = [run(args.queries, seed, heteroscedastic, one_bin) for seed in range(args.seeds)]
            name = "one bin (baseline)" if one_bin else "binned (artifact)"
            for level in LEVELS:
                cov = np.mean([r[level]["coverage"] for r in runs])
                lo_c, lo_w = (np.mean([r[level]["low_half"][i] for r in runs]) for i in (0, 1))
                hi_c, hi_w = (np.mean([r[level]["high_half"][i] for r in runs]) for i in (0, 1))
                ratio = lo_w / hi_w
                print(
                    f"{name + f' @{level:g}':<24}{cov:>10.3f}{f'{lo_c:.3f} cov, {lo_w:.3f} wide':>28}"
                    f"{f'{hi_c:.3f} cov, {hi_w:.3f} wide':>28}{ratio:>13.2f}"
                )
                if not one_bin:
                    ok &= abs(cov - level) <= 0.02
                    if heteroscedastic:
                        ok &= ratio <= 0.6 and abs(lo_c - level) <= 0.03 and abs(hi_c - level) <= 0.03
    print(f"\ntargets {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
