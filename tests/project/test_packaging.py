"""The inference-only install: numpy is the only requirement outside extras, `pipeline.inference`
works where every heavy package fails to import, and a stage imported without its extra names
the extra. No registry is needed: the wheel is built without build isolation."""

from __future__ import annotations

import email
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.core.extras import EXTRA_MODULES, INCLUDES, modules_of

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "torch",
    "transformers",
    "tokenizers",
    "sklearn",
    "scipy",
    "hydra",
    "omegaconf",
    "pandas",
    "joblib",
    "matplotlib",
    "httpx",
    "fastapi",
    "uvicorn",
    "tqdm",
)
#: distribution name -> import name, where they differ
IMPORT_NAME = {"scikit-learn": "sklearn", "hydra-core": "hydra"}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the project's own files (no registry, no build isolation)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("pipeline", "conf"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "--quiet", "-w", str(out), str(src)], check=True, capture_output=True, text=True)  # fmt: skip
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def wheel_metadata(wheel) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(meta))


def test_the_wheel_carries_every_config_file(wheel):
    """A pip-installed CLI composes the same defaults and groups (`api=siliconflow`) as the repository."""
    with zipfile.ZipFile(wheel) as zf:
        shipped = {
            n.split("/share/score-calibration-pipeline/conf/", 1)[1]
            for n in zf.namelist()
            if "/share/score-calibration-pipeline/conf/" in n
        }
    expected = {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert shipped == expected


def test_the_wheel_requires_numpy_alone_outside_extras(wheel_metadata):
    requires = wheel_metadata.get_all("Requires-Dist") or []
    unconditional = [r for r in requires if "extra ==" not in r]
    assert [_requirement_name(r) for r in unconditional] == ["numpy"], unconditional
    extras = set(wheel_metadata.get_all("Provides-Extra") or [])
    assert {"fit", "local", "api", "serve", "dvc", "all"} <= extras
    # heavy packages are there, behind an extra
    behind_extras = {_requirement_name(r) for r in requires if "extra ==" in r}
    assert {"torch", "transformers", "scikit-learn", "hydra-core", "httpx", "fastapi"} <= behind_extras


def test_the_extras_table_matches_pyproject():
    """Every module pipeline/core/extras.py attributes to an extra is installed by that extra (its own
    list, or the extras it includes), so the error's pip command actually fixes the import."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def provided(extra: str) -> set[str]:
        names = set()
        for requirement in extras[extra]:
            name = _requirement_name(requirement)
            if name == "score-calibration-pipeline":
                included = re.search(r"\[(.*)\]", requirement).group(1).split(",")
                names |= set().union(*(provided(e.strip()) for e in included))
            else:
                names.add(IMPORT_NAME.get(name, name).replace("-", "_"))
        return names

    for extra in EXTRA_MODULES:
        assert set(modules_of(extra)) <= provided(extra), (extra, set(modules_of(extra)) - provided(extra))
        included = {
            e
            for r in extras[extra]
            if _requirement_name(r) == "score-calibration-pipeline"
            for e in re.search(r"\[(.*)\]", r).group(1).split(",")
        }
        assert included == set(INCLUDES.get(extra, ())), extra
    assert set().union(*EXTRA_MODULES.values()) <= provided("all")


def _run_blocked(code: str, blocked=HEAVY, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run ``code`` where importing any of ``blocked`` raises ModuleNotFoundError, as in an
    environment that never installed them (``find_spec`` says they are absent, too)."""
    prelude = f"import sys\nfor _m in {tuple(blocked)!r}:\n    sys.modules[_m] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=cwd,
                          timeout=120)  # fmt: skip


def test_inference_loads_and_applies_an_artifact_without_any_heavy_package(tmp_path):
    from pipeline.calibration.calibrators import make_calibrator
    from pipeline.calibration.fusion import ScoreCalibrationModel
    from pipeline.fit.artifacts import write_artifact
    from pipeline.inference import load_calibrator

    rng = np.random.default_rng(0)
    x = rng.uniform(size=400)
    y = 1 / (1 + np.exp(-4 * (x - 0.4)))
    model = ScoreCalibrationModel(make_calibrator("sigmoid"), None, ["local"]).fit(x[:, None], y)
    from pipeline.calibration.conformal import fit_intervals

    intervals = fit_intervals(model.predict(x[:, None]), y + rng.normal(0, 0.02, x.size), y_range=(0.0, 1.0))
    manifest = {
        "sources": [{"column": "local", "model": "m", "revision": "r"}],
        "thresholds": {"applies_to": "the raw score of 'local'", "cuts": [{"reference": 0.5, "raw": 0.41}]},
    }
    path = write_artifact(tmp_path, "core", model, manifest, intervals=intervals)
    probe = [0.0, 0.25, 0.5, 0.9]
    cal = load_calibrator(path)
    expected = [cal(probe).tolist(), [v.tolist() for v in cal.interval(probe, 0.9)], cal.threshold(0.5)]
    result = _run_blocked(
        "import json\n"
        "from pipeline.inference import load_calibrator\n"
        f"cal = load_calibrator({str(path)!r}, model='m', revision='r')\n"
        f"print(json.dumps(cal({probe!r}).tolist()))\n"
        f"print(json.dumps([v.tolist() for v in cal.interval({probe!r}, coverage=0.9)]))\n"
        "print(json.dumps(cal.threshold(0.5)))\n"
        f"loaded = sorted(m for m in {HEAVY!r} if sys.modules.get(m) is not None)\n"
        "print(json.dumps(loaded))\n"
    )
    assert result.returncode == 0, result.stderr
    values, bounds, cut, loaded = (json.loads(line) for line in result.stdout.splitlines())
    np.testing.assert_allclose(values, expected[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(bounds, expected[1], rtol=0, atol=1e-12)
    assert cut == expected[2] == 0.41 and bounds[0][2] < values[2] < bounds[1][2]
    assert loaded == []


def test_the_joblib_path_without_the_fit_extra_says_what_to_install(tmp_path):
    from pipeline.calibration.calibrators import make_calibrator
    from pipeline.calibration.fusion import ScoreCalibrationModel
    from pipeline.fit.artifacts import write_artifact

    x = np.linspace(0, 1, 50)
    model = ScoreCalibrationModel(make_calibrator("poly"), None, ["local"]).fit(x[:, None], x**2)
    path = write_artifact(tmp_path, "j", model, {"sources": [{"column": "local"}]})
    result = _run_blocked(
        f"from pipeline.inference import load_calibrator\nload_calibrator({str(path)!r}, use_joblib=True)"
    )
    assert "CalibratorLoadError: use_joblib=True needs joblib and scikit-learn: pip install" in result.stderr


def test_the_blocking_is_real():
    """The harness itself: a blocked package fails to import (else the test above proves nothing)."""
    result = _run_blocked("import sklearn")
    assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr


@pytest.mark.parametrize(("module", "blocked", "extra"), [
    ("pipeline.stages.fit", ("sklearn",), "[fit]"),
    ("pipeline.stages.collect", ("httpx",), "[api]"),
    ("pipeline.stages.collect", ("torch", "transformers"), "[local]"),
    ("pipeline.scorers.hf", ("torch",), "[local]"),
    ("pipeline.api.client", ("httpx",), "[api]"),
    ("pipeline.stages.serve", ("fastapi",), "[serve]"),
    ("pipeline.stages.serve", ("torch",), "[serve]"),
])  # fmt: skip
def test_importing_a_stage_without_its_extra_names_the_extra(module, blocked, extra):
    result = _run_blocked(f"import {module}", blocked=blocked)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pipeline.core.extras.MissingExtraError"), last
    assert extra in last and "pip install 'score-calibration-pipeline[" in last


def test_the_cli_names_the_extra_in_one_line():
    result = _run_blocked("from pipeline.__main__ import main\nsys.exit(main(['fit']))", blocked=("hydra",))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "the 'fit' stage needs the [fit] extra (missing: hydra)" in result.stderr
