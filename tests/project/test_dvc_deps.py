"""DVC deps that cannot go stale: every `pipeline` module a DVC stage's command imports lies under
one of that stage's deps in dvc.yaml, and every `pipeline/` dep is something the stage imports
(listing all of pipeline/ for every stage would re-run everything on any change).

What a stage imports is measured, not declared: the session's throwaway repository
(tests/project/conftest.py) runs `dvc repro` with tests/support/import_trace/ on PYTHONPATH, so
every `python -m pipeline <stage>` lists the modules it had loaded when it exited, the lazy ones
included."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.dvc import REPO


def module_file(name: str, root: Path = REPO) -> str:
    """``pipeline.fit.run`` -> ``pipeline/fit/run.py``; a package -> its ``__init__.py``."""
    path = name.replace(".", "/")
    return f"{path}/__init__.py" if (root / path).is_dir() else f"{path}.py"


def covered(file: str, deps: list[str]) -> bool:
    return any(file == dep or file.startswith(dep.rstrip("/") + "/") for dep in deps)


def uncovered(imported: set[str], deps: list[str]) -> list[str]:
    """The imported modules' files that no dep covers: edits to them would not re-run the stage."""
    return sorted(f for f in map(module_file, imported) if not covered(f, deps))


def unused(imported: set[str], deps: list[str]) -> list[str]:
    """The ``pipeline/`` deps that hold no module the stage imported: edits to them re-run it for nothing."""
    files = [module_file(m) for m in imported]
    return [dep for dep in deps if dep.startswith("pipeline/") and not any(covered(f, [dep]) for f in files)]


def stages() -> dict[str, tuple[str, list[str]]]:
    """DVC stage -> (the `python -m pipeline` stage its cmd runs, its code deps)."""
    spec = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    out = {}
    for name, stage in spec.items():
        words = stage["cmd"].split()
        assert words[:3] == ["python", "-m", "pipeline"], f"{name}: {stage['cmd']}"
        out[name] = (words[3], [d for d in stage.get("deps", []) if isinstance(d, str) and d.startswith("pipeline")])
    return out


@pytest.mark.integration
@pytest.mark.parametrize("dvc_stage", sorted(stages()))
def test_every_module_a_stage_imports_is_among_its_deps(repo, dvc_stage):
    cli_stage, deps = stages()[dvc_stage]
    imported = repo.first_imports[cli_stage]
    assert {"pipeline.__main__", "pipeline.stages"} <= imported  # the trace saw the stage run
    missing = uncovered(imported, deps)
    assert not missing, f"dvc.yaml: stage {dvc_stage} imports {missing} but lists no dep that covers them"
    extra = unused(imported, deps)
    assert not extra, f"dvc.yaml: stage {dvc_stage} lists {extra}, which it never imports"


def test_a_dep_left_out_or_one_never_imported_is_named():
    """The two checks on a planted case: fit's deps without pipeline/calibration, and with
    pipeline/serve added."""
    imported = {
        "pipeline",
        "pipeline.__main__",
        "pipeline.calibration",
        "pipeline.calibration.fusion",
        "pipeline.calibration.pairwise",
        "pipeline.fit.run",
    }
    deps = ["pipeline/__init__.py", "pipeline/__main__.py", "pipeline/fit", "pipeline/serve"]
    assert uncovered(imported, deps) == [
        "pipeline/calibration/__init__.py",
        "pipeline/calibration/fusion.py",
        "pipeline/calibration/pairwise.py",
    ]
    assert unused(imported, deps) == ["pipeline/serve"]
    assert uncovered(imported, deps + ["pipeline/calibration"]) == []
