"""The ``fit`` stage at scale: wall time, peak memory, phase shares and growth exponents.

Runs the real stage (``python -m pipeline fit``: read, exported fit, held-out evaluation with its
bootstrap intervals, weight intervals and drop-one contributions, report files, export) with the
default settings on generated tables of 100k, 300k and 1M pairs, one source and two fused. Each
run is its own process, so its peak memory (``ru_maxrss``) is its own, and its wall time is the
whole process's (interpreter start and imports included: the ``startup`` phase).

Tables come from :func:`pipeline.calibration.synthetic.latent_sample`: queries of 1 to 37
documents (19 on average, like the issue's 1,000,002 pairs over 54,000 queries), a reranker-like
probability source ``local`` and a cosine-like second source ``local_b``; written as CSV with a
sidecar, once, under ``--workdir`` (kept between runs).

Baseline in the same run: reading the largest table with pandas' C parser (``pd.read_csv``, no
validation), the floor under any fit of that file. Printed: seconds, ratio to that baseline, peak
memory, each phase's share, and the log-log slope of every phase between consecutive sizes.

    python bench/bench_fit.py                          # 100k, 300k, 1M; one and two sources
    python bench/bench_fit.py --sizes 100000 --sources 2
    python bench/bench_fit.py --repeat 2               # each figure the best of two runs
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TARGETS = {  # (pairs, sources) -> seconds, from the issue
    (1_000_000, 1): 20.0,
    (1_000_000, 2): 60.0,
    (100_000, 2): 8.0,
}
PEAK_TARGET_GB = 1.5
SLOPE_TARGET = 1.15
SLOPE_MIN_SECONDS = 1.0
DOCS_PER_QUERY = (1, 37)


def table_path(workdir: Path, pairs: int) -> Path:
    return workdir / f"pairs_{pairs}" / "paired_scores.csv"


def make_table(path: Path, pairs: int, seed: int = 0) -> None:
    """Generate (once) a table of about ``pairs`` rows with a sidecar."""
    from pipeline.calibration.synthetic import latent_sample
    from pipeline.data.table import write_table, write_table_meta

    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    n_queries = round(pairs / np.mean(DOCS_PER_QUERY))
    s = latent_sample(("probability", "cosine"), (0.5, 0.8), n_queries=n_queries, docs=DOCS_PER_QUERY, seed=seed)
    sizes = np.bincount(s.groups)
    position = np.arange(s.groups.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    write_table(
        path,
        {
            "query_id": np.char.add("q", s.groups.astype(str)),
            "doc_id": np.char.add("d", position.astype(str)),
            "reference": s.target,
            "local": s.sources[:, 0],
            "local_b": s.sources[:, 1],
        },
    )
    write_table_meta(path, {"simulated": True, "generator": "bench/bench_fit.py", "seed": seed})


# ---- the child: one stage run with phase timers -------------------------------------------

#: (module, function, phase): exclusive time of each call goes to its phase
PHASES = [
    ("pipeline.fit.run", "load_table", "read table"),
    ("pipeline.fit.run", "fit_final", "exported fit"),
    ("pipeline.fit.evaluation", "out_of_fold", "held-out fits"),
    ("pipeline.fit.evaluation", "summarise_fusion", "drop-one fits"),
    ("pipeline.fit.evaluation", "weight_intervals", "weight intervals"),
    ("pipeline.fit.evaluation", "agreement", "metric intervals"),
    ("pipeline.fit.evaluation", "contributions", "metric intervals"),
    ("pipeline.fit.evaluation", "decision_report", "decisions"),
    ("pipeline.fit.run", "intervals_table", "export"),
    ("pipeline.fit.run", "write_report_files", "report files"),
    ("pipeline.fit.run", "run_export", "export"),
]


def child(args: argparse.Namespace) -> None:
    import importlib

    spent: dict[str, float] = {}
    stack: list[list] = []  # [phase, started, nested seconds]

    def timed(fn, phase):
        def wrapper(*a, **k):
            name = phase
            if name == "held-out fits" and any(s[0] == "drop-one fits" for s in stack):
                name = "drop-one fits"
            stack.append([name, time.perf_counter(), 0.0])
            try:
                return fn(*a, **k)
            finally:
                name, started, nested = stack.pop()
                total = time.perf_counter() - started
                spent[name] = spent.get(name, 0.0) + total - nested
                if stack:
                    stack[-1][2] += total

        return wrapper

    for module, function, phase in PHASES:
        mod = importlib.import_module(module)
        setattr(mod, function, timed(getattr(mod, function), phase))
    from pipeline.__main__ import main

    sources = "[local]" if args.sources == 1 else "[local,local_b]"
    started = time.perf_counter()
    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            rc = main(
                [
                    "fit",
                    f"data.path={args.table}",
                    f"data.sources={sources}",
                    f"export.name=bench{args.sources}",
                    "export.replace=true",
                ]
            )
        finally:
            sys.stdout = stdout
    wall = time.perf_counter() - started
    spent["other"] = wall - sum(spent.values())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"rc": rc, "wall": wall, "peak": peak, "phases": spent}))


# ---- the parent --------------------------------------------------------------------------


def run_one(workdir: Path, pairs: int, sources: int) -> dict:
    cmd = [sys.executable, __file__, "--child", "--table", str(table_path(workdir, pairs)), "--sources", str(sources)]
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - started
    result = json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 else {"rc": done.returncode}
    if result["rc"] != 0:
        sys.exit(f"fit failed on {pairs} pairs, {sources} source(s):\n{done.stderr[-3000:]}")
    # the whole process, as `python -m pipeline fit` costs a user: interpreter and imports included
    result["phases"]["startup"] = wall - result["wall"]
    result["wall"] = wall
    return result


def baseline(path: Path) -> float:
    import pandas as pd

    started = time.perf_counter()
    pd.read_csv(path)
    return time.perf_counter() - started


def slope(a: float, b: float, na: int, nb: int) -> float:
    return math.log(b / a) / math.log(nb / na) if a > 0 and b > 0 else float("nan")


def report(results: dict, sizes: list[int], base: float) -> bool:
    ok = True
    for sources in sorted({s for _, s in results}):
        print(f"\n== {sources} source(s){' fused' if sources > 1 else ''} ==")
        print(f"{'pairs':>9} {'wall s':>8} {'x read':>7} {'peak GB':>8}  phase shares")
        for pairs in sizes:
            r = results.get((pairs, sources))
            if r is None:
                continue
            shares = ", ".join(
                f"{k} {v / r['wall']:.0%}" for k, v in sorted(r["phases"].items(), key=lambda kv: -kv[1])
            )
            print(f"{pairs:>9,} {r['wall']:>8.1f} {r['wall'] / base:>7.1f} {r['peak'] / 2**30:>8.2f}  {shares}")
            target = TARGETS.get((pairs, sources))
            if target is not None:
                met = r["wall"] <= target
                ok &= met
                print(f"{'':>9} target <= {target:.0f} s: {'met' if met else 'MISSED'}")
            if r["peak"] / 2**30 > PEAK_TARGET_GB:
                ok = False
                print(f"{'':>9} peak memory above {PEAK_TARGET_GB} GB: MISSED")
        for small, large in zip(sizes, sizes[1:]):
            a, b = results.get((small, sources)), results.get((large, sources))
            if a is None or b is None:
                continue
            parts = [("whole stage", a["wall"], b["wall"])]
            parts += [(k, a["phases"].get(k, 0.0), v) for k, v in b["phases"].items()]
            shown = []
            for name, ta, tb in parts:
                s = slope(ta, tb, small, large)
                flag = ""
                if tb > SLOPE_MIN_SECONDS and name != "whole stage" and small >= 300_000 and s > SLOPE_TARGET:
                    flag, ok = " (MISSED)", False
                shown.append(f"{name} {s:.2f}{flag}")
            print(f"slope {small:,} -> {large:,}: " + ", ".join(shown))
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--sources", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bench-fit"))
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; each figure is the best of them")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.sources = args.sources[0]
        return child(args)
    args.workdir.mkdir(parents=True, exist_ok=True)
    for pairs in args.sizes:
        make_table(table_path(args.workdir, pairs), pairs)
    base = baseline(table_path(args.workdir, max(args.sizes)))
    print(f"baseline: pd.read_csv of the {max(args.sizes):,}-pair table, {base:.2f} s")
    results = {}
    for sources in args.sources:
        for pairs in args.sizes:
            runs = [run_one(args.workdir, pairs, sources) for _ in range(args.repeat)]
            r = min(runs, key=lambda run: run["wall"])
            r["phases"] = {k: min(run["phases"].get(k, 0.0) for run in runs) for k in r["phases"]}
            r["peak"] = max(run["peak"] for run in runs)
            results[(pairs, sources)] = r
            print(f"  {pairs:,} pairs, {sources} source(s): {r['wall']:.1f} s", flush=True)
    ok = report(results, args.sizes, base)
    print(f"\nall targets {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
