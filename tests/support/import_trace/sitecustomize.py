"""Loaded by every Python started with this directory on PYTHONPATH (tests/support/dvc.py sets it
for the DVC repository the repository-level tests build): a `python -m pipeline <stage>` process
writes the pipeline modules it imported to $PIPELINE_IMPORT_TRACE/<stage>.txt when it exits. Other
processes (dvc itself, git hooks) write nothing."""

import atexit
import os
import sys


def _write_trace() -> None:
    out = os.environ.get("PIPELINE_IMPORT_TRACE")
    if not out or len(sys.argv) < 2 or not sys.argv[0].endswith(os.path.join("pipeline", "__main__.py")):
        return
    # `python -m pipeline` runs pipeline/__main__.py as the module __main__
    names = sorted(
        {m for m in list(sys.modules) if m == "pipeline" or m.startswith("pipeline.")} | {"pipeline.__main__"}
    )
    with open(os.path.join(out, f"{sys.argv[1]}.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(names) + "\n")


atexit.register(_write_trace)
