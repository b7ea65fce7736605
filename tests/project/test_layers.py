"""The package's layers hold ([tool.importlinter] in pyproject.toml, checked by import-linter), and
each contract can fail: a copy of the package with one planted import breaks exactly the contract
that forbids it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))


def lint_imports(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy's `pipeline`, not the installed one
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", *args], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_package_keeps_every_layer_contract():
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


# (contract id, file of the copy, the import planted at its end, what the report names)
PLANTS = [
    (
        "layers",
        "pipeline/api/tokens.py",
        "import pipeline.scorers.base",
        "pipeline.api is not allowed to import pipeline.scorers",
    ),
    (
        "layers",
        "pipeline/fit/outputs.py",
        "import pipeline.collect.units",
        "pipeline.fit is not allowed to import pipeline.collect",
    ),
    (
        "wire-is-the-format-only",
        "pipeline/wire.py",
        "import pipeline.config.api",
        "pipeline.wire -> pipeline.config.api",
    ),
    ("runtime-numpy-only", "pipeline/runtime/spec.py", "import sklearn", "pipeline.runtime.spec -> sklearn"),
    (
        "calibration-sees-no-config",
        "pipeline/calibration/metrics.py",
        "import pipeline.config.fit",
        "pipeline.calibration.metrics -> pipeline.config.fit",
    ),
    (
        "demo-is-a-leaf",
        "pipeline/collect/seed.py",
        "import pipeline.demo.seeds",
        "pipeline.collect.seed -> pipeline.demo.seeds",
    ),
    (
        "testing-is-not-production",
        "pipeline/fit/run.py",
        "import pipeline.testing.model_card",
        "pipeline.fit.run -> pipeline.testing.model_card",
    ),
]


@pytest.mark.parametrize("contract, path, line, named", PLANTS, ids=[f"{p[0]}:{p[1]}" for p in PLANTS])
def test_a_planted_import_breaks_its_contract(tmp_path, contract, path, line, named):
    shutil.copytree(REPO / "pipeline", tmp_path / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    assert lint_imports(tmp_path, "--contract", contract).returncode == 0  # the copy is clean
    with open(tmp_path / path, "a", encoding="utf-8") as f:
        f.write(f"\n{line}\n")
    proc = lint_imports(tmp_path, "--contract", contract)
    assert proc.returncode == 1 and "1 broken" in proc.stdout, proc.stdout + proc.stderr
    assert named in proc.stdout
