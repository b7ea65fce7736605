"""Fit time on 100k pairs x 3 sources (target: <= 10 s on 2 cores).

Baseline measured in the same run: the seed report's method, ``np.polyfit`` of a cubic on one
source (no monotonicity, no CV). Printed: seconds per step and the ratio to that baseline.

    python bench/bench_fit.py [--pairs 100000] [--docs 10]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pipeline.calibration.calibrators import make_calibrator
from pipeline.calibration.fusion import NonNegativeFusion, ScoreCalibrationModel


def simulate(n_pairs: int, docs: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    groups = np.arange(n_pairs) // docs
    r = rng.normal(size=n_pairs)
    X = np.column_stack(
        [
            1 / (1 + np.exp(-(1.3 * (r + rng.normal(0, 0.4, n_pairs)) + 0.8))),
            0.35 + 0.12 * np.tanh(0.8 * (r + rng.normal(0, 0.6, n_pairs))),
            r + rng.normal(0, 1.0, n_pairs),
        ]
    )
    y = 1 / (1 + np.exp(-(2.2 * r - 1.0)))
    return X, y, groups


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=100_000)
    parser.add_argument("--docs", type=int, default=10)
    args = parser.parse_args()
    X, y, groups = simulate(args.pairs, args.docs)
    baseline = timed(lambda: np.polyfit(X[:, 0], y, 3))
    rows = [("np.polyfit cubic, 1 source (baseline)", baseline)]
    for family in ("poly", "isotonic", "sigmoid", "auto"):
        model = ScoreCalibrationModel(make_calibrator(family), NonNegativeFusion(objective="auto"), ["a", "b", "c"])
        rows.append(
            (
                f"fusion(3) + {family}",
                timed(lambda m=model: m.fit(X, y, groups=groups), repeat=1 if family == "auto" else 3),
            )
        )
    print(f"fit on {args.pairs} pairs x 3 sources ({args.pairs // args.docs} queries)")
    print(f"{'step':<42} {'seconds':>9} {'x baseline':>11}")
    for name, sec in rows:
        print(f"{name:<42} {sec:>9.3f} {sec / baseline:>11.1f}")
    auto_sec = rows[-1][1]
    print(f"target fit(auto, 100k x 3) <= 10 s: {'met' if auto_sec <= 10 else 'MISSED'} ({auto_sec:.2f} s)")


if __name__ == "__main__":
    main()
