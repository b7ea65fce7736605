"""A throwaway git + DVC repository holding this working tree, and reading what a `dvc repro`
in it did, for the repository-level tests (tests/project/)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

#: where each `python -m pipeline <stage>` run in a Repo lists the pipeline modules it imported
#: (tests/support/import_trace/sitecustomize.py; read by tests/project/test_dvc_deps.py)
IMPORT_TRACE = "PIPELINE_IMPORT_TRACE"
TRACER = Path(__file__).resolve().parent / "import_trace"


def ran(proc: subprocess.CompletedProcess) -> set[str]:
    """The stages a `dvc repro` run executed (DVC prints ``Running stage '<name>':``)."""
    return {line.split("'")[1] for line in proc.stdout.splitlines() if line.startswith("Running stage '")}


REPO = Path(__file__).resolve().parents[2]
#: the reference API key for the whole run (made here, so no file holds it unless something leaks it)
SENTINEL = "sk-sentinel-" + secrets.token_hex(12)
NAME = "demo"


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = dict(os.environ)
        self.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{self.env.get('PATH', '')}"
        self.env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            MPLBACKEND="Agg",
            TOKENIZERS_PARALLELISM="false",
            DEMO_REFERENCE_API_KEY=SENTINEL,
            DVC_NO_ANALYTICS="1",
            GIT_AUTHOR_NAME="t",
            GIT_AUTHOR_EMAIL="t@t",
            GIT_COMMITTER_NAME="t",
            GIT_COMMITTER_EMAIL="t@t",
        )
        self.env.pop("PYTHONPATH", None)
        # every stage DVC runs lists the pipeline modules it imported, in a folder beside the
        # repository (git status and DVC never see it)
        self.trace_dir = root.parent / f"{root.name}-import-trace"
        self.trace_dir.mkdir(exist_ok=True)
        self.env.update(PYTHONPATH=str(TRACER), **{IMPORT_TRACE: str(self.trace_dir)})
        self.logs: list[str] = []

    def run(self, *cmd: str, ok: bool = True) -> subprocess.CompletedProcess:
        if cmd[0] == "dvc":
            cmd = (sys.executable, "-m", "dvc", *cmd[1:])
        elif cmd[0] == "pipeline":
            cmd = (sys.executable, "-m", "pipeline", *cmd[1:])
        proc = subprocess.run(cmd, cwd=self.root, env=self.env, capture_output=True, text=True, timeout=900)
        self.logs += [proc.stdout, proc.stderr]
        if ok:
            assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        return proc

    def json(self, path: str) -> dict:
        return json.loads((self.root / path).read_text(encoding="utf-8"))

    def sidecar(self) -> dict:
        return self.json(f"data/{NAME}/paired_scores.csv.meta.json")

    def usage(self) -> dict:
        """The last collect run's account (``<table>.run.json``, untracked)."""
        return self.json(f"data/{NAME}/paired_scores.csv.run.json")["usage"]

    def status(self) -> str:
        """``git status --porcelain`` plus the diff: what a run changed in tracked files."""
        return self.run("git", "status", "--porcelain").stdout + self.run("git", "diff").stdout

    def restore(self) -> None:
        """Back to the committed state after the first repro: tracked files from git, DVC-cached
        outputs from the lock. Tests run in any order (pytest-randomly), and experiments change
        the workspace."""
        self.run("git", "checkout", "-q", "HEAD", "--", ".")
        self.run("dvc", "checkout", "-q")

    def imports(self) -> dict[str, set[str]]:
        """Stage name -> the ``pipeline`` modules its latest run imported."""
        return {p.stem: set(p.read_text(encoding="utf-8").split()) for p in self.trace_dir.glob("*.txt")}

    def commit(self, message: str) -> None:
        self.run("git", "add", "-A")
        self.run("git", "commit", "-q", "-m", message, ok=False)


def working_tree_files() -> list[str]:
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    return [f for f in listed if f and (REPO / f).is_file()]


def copy_working_tree(root: Path) -> Path:
    """This working tree as a new user's clone has it (tracked and not-ignored files) under ``root``."""
    for rel in working_tree_files():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, root / rel)
    return root
