"""Artifacts another user can read, `load_calibrator`'s input policy, and the docs snippet
(docs/inference-and-artifacts.md) as pasted (#12 items 4 and 6)."""

from __future__ import annotations

import os
import re
import stat

import numpy as np
import pytest

from pipeline.__main__ import main
from pipeline.calibration.calibrators import make_calibrator
from pipeline.calibration.fusion import NonNegativeFusion, ScoreCalibrationModel
from pipeline.fit.artifacts import write_artifact
from pipeline.inference import load_calibrator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _model(k: int = 1):
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(20), 5)
    x = rng.uniform(size=(100, k))
    y = np.clip(x.mean(axis=1) + rng.normal(0, 0.05, 100), 0, 1)
    fusion = NonNegativeFusion() if k > 1 else None
    return ScoreCalibrationModel(make_calibrator("poly"), fusion, [f"s{i}" for i in range(k)]).fit(x, y, groups=groups)


@pytest.mark.parametrize("mask, dir_mode, file_mode", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_an_artifact_is_as_readable_as_the_umask_allows(tmp_path, mask, dir_mode, file_mode):
    old = os.umask(mask)
    try:
        path = write_artifact(tmp_path, "cal", _model(), {"sources": [{"column": "s0"}]})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == dir_mode
    for name in ("calibrator.json", "calibrator.joblib", "manifest.json"):
        assert stat.S_IMODE((path / name).stat().st_mode) == file_mode, name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_load_calibrator_takes_scalars_lists_and_float32_and_refuses_nan(tmp_path):
    cal = load_calibrator(write_artifact(tmp_path, "cal", _model(), {"sources": [{"column": "s0"}]}))
    want = cal(np.array([0.2, 0.7]))
    np.testing.assert_allclose(cal([0.2, 0.7]), want)
    np.testing.assert_allclose(cal(np.array([0.2, 0.7], dtype=np.float32)), want, atol=1e-7)
    single = cal(0.7)
    assert isinstance(single, float) and single == pytest.approx(want[1], abs=1e-7)
    with pytest.raises(ValueError, match=r"scores must be finite: 1 NaN/inf value\(s\), the first at index 1"):
        cal([0.2, float("nan"), 0.3])
    with pytest.raises(ValueError, match="scores must be finite: 2 NaN/inf"):
        cal([np.inf, -np.inf])
    with pytest.raises(ValueError, match="scores must be numbers"):
        cal(["a", "b"])
    fused = load_calibrator(write_artifact(tmp_path, "fused", _model(2), {"sources": [{"column": "s0"}]}))
    with pytest.raises(ValueError, match=r"a single score is ambiguous for 2 sources"):
        fused(0.5)
    with pytest.raises(ValueError, match=r"the first at index \(0, 1\)"):
        fused([[0.2, np.nan]])


def test_the_docs_snippet_runs_as_pasted(tmp_path, monkeypatch, capsys):
    page = open(os.path.join(REPO, "docs", "inference-and-artifacts.md"), encoding="utf-8").read()
    snippet = re.search(r"```python\n(# after `make demo`.*?)```", page, re.S).group(1)
    table = os.path.join(REPO, "data", "demo", "paired_scores.csv")
    monkeypatch.chdir(tmp_path)
    common = [f"data.path={table}", "report.dir=reports/x", "evaluate.n_bootstrap=50", "fusion.n_bootstrap=0"]
    assert main(["fit", *common]) == 0
    assert main(["fit", "data=demo-fusion", "export.name=demo-fusion", *common]) == 0
    capsys.readouterr()
    exec(compile(snippet, "docs/inference-and-artifacts.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert (
        len(out) == 5
        and out[0].startswith("[")
        and float(out[1]) > 0
        and out[3].startswith("calibrated local {'ci_high': ")
    )
