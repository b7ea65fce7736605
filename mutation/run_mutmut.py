"""mutmut on the modules that decide correctness, one at a time, each against its own test files
(mutation/modules.py): ``python mutation/run_mutmut.py [module ...] [--minutes N]``.

Each module runs in a throwaway copy of the working tree whose ``[tool.mutmut]`` section (the
project's, pyproject.toml) is narrowed to that module and its tests, so one run never waits on
another module's suite. Prints per module: mutants, killed, survived, timeouts, tests missing, the score (killed
of all but "no tests"), the time; writes mutation/results/<module>.json with the survivors'
names, for ``mutmut show`` in that copy (kept with --keep). Equivalent mutants (no input tells
them apart) are listed, with the reason, in mutation/equivalent.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mutation.modules import MODULES  # noqa: E402
from mutation.workspace import working_tree_copy  # noqa: E402


def configure(root: Path, module: str, tests: list[str]) -> None:
    """The copy's ``[tool.mutmut]``: the project's (pyproject.toml), plus this module only and its
    tests."""
    import tomllib

    text = (root / "pyproject.toml").read_text(encoding="utf-8")
    base = tomllib.loads(text).get("tool", {}).get("mutmut", {})
    section = {**base, "only_mutate": [module], "pytest_add_cli_args_test_selection": tests}
    start = text.index("[tool.mutmut]")
    end = text.find("\n[", start + 1)
    rest = "" if end < 0 else text[end:]
    lines = ["[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in section.items()]
    (root / "pyproject.toml").write_text(text[:start] + "\n".join(lines) + "\n" + rest, encoding="utf-8")


def run_module(module: str, tests: list[str], minutes: float, keep: bool, max_children: int | None = None) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="mutmut-"))
    root = working_tree_copy(tmp)
    configure(root, module, tests)
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
        # one thread per forked mutant: an OpenMP/torch thread pool that exists before mutmut forks
        # deadlocks the child (embed-check's tests load a real model)
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PIPELINE_MUTATION_RUN": "1",
    }  # property tests draw fewer examples (tests/support/__init__.py)
    mutmut = [sys.executable, "-m", "mutmut"]
    started = time.monotonic()
    log_path = root / "mutmut-run.log"
    with open(log_path, "wb") as log_file:  # a file, not a pipe: mutmut's workers would hold a pipe open
        children = [] if max_children is None else ["--max-children", str(max_children)]
        proc = subprocess.Popen(
            [*mutmut, "run", *children],
            cwd=root,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            finished = proc.wait(timeout=minutes * 60) == 0
        except subprocess.TimeoutExpired:  # the limit: stop mutmut and its workers, keep what they judged
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            finished = False
    log = log_path.read_text(errors="replace")[-4000:]
    seconds = time.monotonic() - started
    results = subprocess.run(
        [*mutmut, "results", "--all", "true"], cwd=root, env=env, capture_output=True, text=True
    ).stdout
    status: dict[str, str] = {}
    for line in results.splitlines():
        match = re.match(r"\s*(\S+__mutmut_\d+): (.+)$", line)
        if match:
            status[match.group(1)] = match.group(2).strip()
    counts: dict[str, int] = {}
    for value in status.values():
        counts[value] = counts.get(value, 0) + 1
    killed = counts.get("killed", 0)
    judged = sum(n for s, n in counts.items() if s not in ("no tests", "not checked", "skipped"))
    report = {
        "module": module,
        "tests": tests,
        "mutants": len(status),
        "counts": counts,
        "finished": finished,
        "score": round(killed / judged, 4) if judged else None,
        "seconds": round(seconds),
        "survived": sorted(k for k, v in status.items() if v == "survived"),
        "no_tests": sorted(k for k, v in status.items() if v == "no tests"),
        "workspace": str(root) if keep else None,
    }
    if not finished:
        report["log"] = log
    out = REPO / "mutation" / "results" / (module.replace("/", "__") + ".json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if not keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="default: every module of mutation/modules.py")
    parser.add_argument("--minutes", type=float, default=15.0, help="limit per module (default 15)")
    parser.add_argument("--keep", action="store_true", help="keep each workspace (mutmut show / apply there)")
    parser.add_argument("--max-children", type=int, default=None, help="mutants tested at once (default: one per core)")
    args = parser.parse_args(argv)
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        print(f"unknown module(s) {unknown}; configured: {', '.join(MODULES)}", file=sys.stderr)
        return 2
    print(
        f"{'module':34} {'mutants':>7} {'killed':>6} {'survived':>8} {'timeout':>7} {'no tests':>8} "
        f"{'score':>6} {'time':>6}"
    )
    failed = 0
    for module in modules:
        r = run_module(module, MODULES[module], args.minutes, args.keep, args.max_children)
        if r["mutants"] == 0:  # mutmut did not run at all: say why instead of a row of zeros
            tail = " | ".join(line.strip() for line in r.get("log", "").strip().splitlines()[-3:])
            print(
                f"error: {module}: mutmut produced no mutants ({tail}) -- is this the project's virtual "
                f"environment? (.venv/bin/python)",
                file=sys.stderr,
            )
            failed += 1
            continue
        c = r["counts"]
        score = "-" if r["score"] is None else f"{100 * r['score']:.0f}%"
        print(
            f"{module:34} {r['mutants']:>7} {c.get('killed', 0):>6} {c.get('survived', 0):>8} {c.get('timeout', 0):>7} "
            f"{c.get('no tests', 0):>8} {score:>6} {r['seconds']:>5}s" + ("" if r["finished"] else "  (incomplete)"),
            flush=True,
        )
        if r["workspace"]:
            print(f"  kept: {r['workspace']} (cd there; python -m mutmut show <name from the results file>)")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
