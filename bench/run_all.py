"""Run the quick benchmarks one after the other (`make bench`).

The 0.6B-shaped reranker benchmark takes several minutes on 2 cores and is not included:
run `python bench/bench_reranker.py --shape 0.6b --pairs 32` for it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [
    ["bench_fit.py", "--sizes", "100000"],
    ["bench_fusion.py"],
    ["bench_inference.py"],
    ["bench_reranker.py", "--shape", "tiny", "--pairs", "64"],
    ["bench_collect.py"],
]


def main() -> int:
    failed = []
    for args in RUNS:
        print(f"\n=== {' '.join(args)} ===", flush=True)
        if subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]]).returncode != 0:
            failed.append(args[0])
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
