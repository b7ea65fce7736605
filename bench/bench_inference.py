"""Inference module: apply throughput, per-call overhead for 100 scores, import time.

Baselines measured in the same run:
* throughput / per-call: a bare numpy cubic (``np.clip(np.polyval(c, x), 0, 1)``) on the same
  scores -- the least work any calibrator can do;
* import time: ``import numpy`` alone in a fresh interpreter (pipeline.inference needs numpy).
Targets: per-call overhead <= 20 us for 100 scores; import <= 100 ms.

    python bench/bench_inference.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

import numpy as np

from pipeline.artifacts import write_artifact
from pipeline.calibrators import make_calibrator
from pipeline.fusion import NonNegativeFusion, ScoreCalibrationModel
from pipeline.inference import load_calibrator


def per_call_us(fn, arg, number: int) -> float:
    runs = timeit.repeat(lambda: fn(arg), number=number, repeat=7)
    return min(runs) / number * 1e6


def import_ms(module: str, repeat: int = 15) -> float:
    code = f"import time; t=time.perf_counter(); import {module}; print((time.perf_counter()-t)*1e3)"
    samples = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) for _ in range(repeat)]
    return statistics.median(samples)


def main() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(2000), 10)
    r = rng.normal(size=groups.size)
    X = np.column_stack([1 / (1 + np.exp(-(r + rng.normal(0, 0.3, r.size)))) for _ in range(3)])
    y = 1 / (1 + np.exp(-2 * r))
    small, big = rng.uniform(size=100), rng.uniform(size=1_000_000)
    coef = np.polyfit(X[:, 0], y, 3)
    baseline = lambda s: np.clip(np.polyval(coef, s), 0, 1)  # noqa: E731
    rows = [("numpy cubic (baseline)", per_call_us(baseline, small, 20000), big.size / (per_call_us(baseline, big, 3) * 1e-6))]
    with tempfile.TemporaryDirectory() as tmp:
        for family in ("poly", "isotonic", "sigmoid"):
            model = ScoreCalibrationModel(make_calibrator(family), None, ["local"]).fit(X[:, :1], y)
            path = write_artifact(Path(tmp), family, model, {"sources": [{"column": "local"}]})
            for backend in ("json", "joblib"):
                cal = load_calibrator(path, use_joblib=backend == "joblib")
                number = 20000 if backend == "json" else 2000
                rows.append((f"{family} ({backend})", per_call_us(cal, small, number), big.size / (per_call_us(cal, big, 3) * 1e-6)))
        fused = ScoreCalibrationModel(make_calibrator("poly"), NonNegativeFusion(), ["a", "b", "c"]).fit(X, y)
        cal = load_calibrator(write_artifact(Path(tmp), "fused", fused, {"sources": [{"column": "a"}]}))
        big3 = rng.uniform(size=(1_000_000, 3))
        rows.append(("fusion(3, calibrated)+poly (json)", per_call_us(cal, rng.uniform(size=(100, 3)), 20000), big3.shape[0] / (per_call_us(cal, big3, 3) * 1e-6)))
    base_us = rows[0][1]
    print(f"{'calibrator (backend)':<34} {'us/call (100)':>14} {'x baseline':>11} {'scores/s (1M batch)':>20}")
    for name, us, rate in rows:
        print(f"{name:<34} {us:>14.2f} {us / base_us:>11.2f} {rate:>20,.0f}")
    json_worst = max(us for name, us, _ in rows if "(json)" in name and not name.startswith("fusion"))
    print(f"target per-call overhead <= 20 us (one calibrator, json path, 100 scores): "
          f"{'met' if json_worst <= 20 else 'MISSED'} (worst {json_worst:.2f} us); fusion adds one np.interp per source")
    numpy_ms = import_ms("numpy")
    inference_ms = import_ms("pipeline.inference")
    print(f"import numpy (baseline): {numpy_ms:.1f} ms; import pipeline.inference: {inference_ms:.1f} ms "
          f"(x{inference_ms / numpy_ms:.2f}); target <= 100 ms: {'met' if inference_ms <= 100 else 'MISSED'}")


if __name__ == "__main__":
    main()
