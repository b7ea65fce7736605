"""Inference module: apply throughput, per-call overhead for 100 scores, import time.

Baselines measured in the same run:
* throughput / per-call: a bare numpy cubic (``np.clip(np.polyval(c, x), 0, 1)``) on the same
  scores -- the least work any calibrator can do;
* import time: ``import numpy`` alone in a fresh interpreter (pipeline.inference needs numpy).
Targets (issue #12): every family's JSON path <= 1.5x the baseline for a 100-score call; import
<= 1.2x numpy's own import.

The machine is shared and noisy: candidates and the baseline are timed in interleaved rounds
(the best of each across rounds), and the two imports alternate, with bytecode compiled first
as an installed package has it.

    python bench/bench_inference.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np

from pipeline.calibration.calibrators import make_calibrator
from pipeline.calibration.fusion import NonNegativeFusion, ScoreCalibrationModel
from pipeline.fit.artifacts import write_artifact
from pipeline.inference import load_calibrator


def per_call_us(fn, arg, number: int) -> float:
    runs = timeit.repeat(lambda: fn(arg), number=number, repeat=3)
    return min(runs) / number * 1e6


def interleaved_us(candidates: dict[str, tuple], rounds: int = 5) -> dict[str, float]:
    """Best per-call time of each ``name -> (fn, arg, number)``, measured round-robin so that a
    noisy spell hits the baseline and the candidates alike."""
    best = {name: float("inf") for name in candidates}
    for _ in range(rounds):
        for name, (fn, arg, number) in candidates.items():
            best[name] = min(best[name], per_call_us(fn, arg, number))
    return best


def import_ms(modules: tuple[str, ...] = ("numpy", "pipeline.inference"), repeat: int = 15) -> dict[str, float]:
    """Best time of ``import <module>`` in a fresh interpreter, alternating the modules (the
    minimum: a shared machine only ever adds time to an import)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for module in modules:  # compile and cache bytecode first, as `pip install` does
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env)
    samples: dict[str, list[float]] = {m: [] for m in modules}
    for _ in range(repeat):
        for module in modules:
            code = f"import time; t=time.perf_counter(); import {module}; print((time.perf_counter()-t)*1e3)"
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
            samples[module].append(float(out.stdout))
    return {m: min(v) for m, v in samples.items()}


def main() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(2000), 10)
    r = rng.normal(size=groups.size)
    X = np.column_stack([1 / (1 + np.exp(-(r + rng.normal(0, 0.3, r.size)))) for _ in range(3)])
    y = 1 / (1 + np.exp(-2 * r))
    small, big = rng.uniform(size=100), rng.uniform(size=1_000_000)
    coef = np.polyfit(X[:, 0], y, 3)
    baseline = lambda s: np.clip(np.polyval(coef, s), 0, 1)  # noqa: E731
    small_calls = {"numpy cubic (baseline)": (baseline, small, 20000)}
    big_calls = {"numpy cubic (baseline)": (baseline, big, 3)}
    with tempfile.TemporaryDirectory() as tmp:
        for family in ("poly", "isotonic", "sigmoid"):
            model = ScoreCalibrationModel(make_calibrator(family), None, ["local"]).fit(X[:, :1], y)
            path = write_artifact(Path(tmp), family, model, {"sources": [{"column": "local"}]})
            for backend in ("json", "joblib"):
                cal = load_calibrator(path, use_joblib=backend == "joblib")
                small_calls[f"{family} ({backend})"] = (cal, small, 20000 if backend == "json" else 2000)
                big_calls[f"{family} ({backend})"] = (cal, big, 3)
        fused = ScoreCalibrationModel(make_calibrator("poly"), NonNegativeFusion(), ["a", "b", "c"]).fit(X, y)
        cal = load_calibrator(write_artifact(Path(tmp), "fused", fused, {"sources": [{"column": "a"}]}))
        name = "fusion(3, calibrated)+poly (json)"
        small_calls[name] = (cal, rng.uniform(size=(100, 3)), 20000)
        big_calls[name] = (cal, rng.uniform(size=(1_000_000, 3)), 3)
        per_call = interleaved_us(small_calls)
        per_big = interleaved_us(big_calls, rounds=2)
    base_us = per_call["numpy cubic (baseline)"]
    print(f"{'calibrator (backend)':<34} {'us/call (100)':>14} {'x baseline':>11} {'scores/s (1M batch)':>20}")
    for name, us in per_call.items():
        rate = big_calls[name][1].shape[0] / (per_big[name] * 1e-6)
        print(f"{name:<34} {us:>14.2f} {us / base_us:>11.2f} {rate:>20,.0f}")
    worst_name, worst = max(
        ((n, us) for n, us in per_call.items() if n.endswith("(json)") and not n.startswith("fusion")),
        key=lambda item: item[1],
    )
    print(
        f"target: every family's JSON path <= 1.5x the baseline at 100 scores: "
        f"{'met' if worst <= 1.5 * base_us else 'MISSED'} (worst: {worst_name}, x{worst / base_us:.2f}); "
        "fusion adds one np.interp per source"
    )
    imports = import_ms()
    ratio = imports["pipeline.inference"] / imports["numpy"]
    print(
        f"import numpy (baseline): {imports['numpy']:.1f} ms; import pipeline.inference: "
        f"{imports['pipeline.inference']:.1f} ms (x{ratio:.2f}); target <= 1.2x: {'met' if ratio <= 1.2 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
