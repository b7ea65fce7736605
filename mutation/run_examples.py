"""Apply each planted bug of mutation/examples.py to a copy of the working tree and run the test
files that must catch it: ``python mutation/run_examples.py [name ...]``. Prints one line per
example (KILLED / SURVIVED, seconds, the first failing test) and exits 1 when any survived.

The copy holds the tracked and not-ignored files of this working tree (so uncommitted work is
included) and the patch is applied there with ``git apply``; the working tree is never touched.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mutation.examples import EXAMPLES  # noqa: E402
from mutation.workspace import working_tree_copy  # noqa: E402


class PatchDoesNotApply(Exception):
    pass


class TestsDidNotRun(Exception):
    pass


def run_example(name: str, tests: list[str]) -> tuple[bool, float, str]:
    """(killed, seconds, first failing test or '')."""
    with tempfile.TemporaryDirectory(prefix=f"mutate-{name[:20]}-") as tmp:
        root = Path(tmp)
        working_tree_copy(root)
        patch = REPO / "mutation" / "patches" / f"{name}.patch"
        applied = subprocess.run(["git", "apply", str(patch)], cwd=root, capture_output=True, text=True)
        if applied.returncode != 0:  # the code it plants into moved: the patch must be remade there
            raise PatchDoesNotApply(
                f"{patch.relative_to(REPO)} no longer applies ({applied.stderr.strip()}); "
                "plant the same bug where that code lives now and save the new diff"
            )
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        probe = subprocess.run(
            [sys.executable, "-c", "import pipeline; print(pipeline.__file__)"],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert probe.startswith(str(root)), f"the copy does not import its own pipeline package: {probe}"
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly", "-p", "no:cacheprovider", *tests],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.monotonic() - started
        failed = re.search(r"^FAILED (\S+)", proc.stdout, re.M)
        if proc.returncode == 0:
            return False, seconds, ""
        if proc.returncode == 1 and failed:  # a test failed: the bug is caught
            return True, seconds, failed.group(1)
        # anything else (tests not collected, an import error, no pytest) caught nothing
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        raise TestsDidNotRun(
            f"{name}: the tests did not run (pytest exit {proc.returncode}): {' | '.join(tail)} "
            f"-- is this the project's virtual environment? (.venv/bin/python)"
        )


def main(argv: list[str]) -> int:
    names = argv or list(EXAMPLES)
    unknown = [n for n in names if n not in EXAMPLES]
    if unknown:
        print(f"unknown example(s) {unknown}; known: {', '.join(EXAMPLES)}", file=sys.stderr)
        return 2
    survived = 0
    for name in names:
        try:
            killed, seconds, test = run_example(name, EXAMPLES[name])
        except (PatchDoesNotApply, TestsDidNotRun) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        survived += not killed
        print(
            f"{'KILLED  ' if killed else 'SURVIVED'} {name} ({seconds:.0f}s){' by ' + test if test else ''}", flush=True
        )
    print(f"{len(names) - survived} of {len(names)} planted bugs caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
