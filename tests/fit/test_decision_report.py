"""`fit` reports keep/drop agreement at thresholds and records transferred thresholds that
`load_calibrator(...).threshold(t)` returns; artifacts without them say to re-fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.__main__ import main
from pipeline.calibration.decisions import transfer_threshold
from pipeline.calibration.synthetic import latent_sample
from pipeline.data.table import read_table, write_table
from pipeline.inference import load_calibrator
from pipeline.runtime.loader import CalibratorLoadError

LEGACY = Path(__file__).resolve().parents[1] / "support" / "legacy_artifacts"


def _table(tmp_path, sources=1):
    s = latent_sample(("probability", "cosine"), (0.4, 0.7), n_queries=90, docs=(2, 12), seed=11)
    columns = {"query_id": s.groups.astype(str), "doc_id": np.arange(s.target.size).astype(str), "reference": s.target}
    columns.update({name: s.sources[:, j] for j, name in enumerate(["a", "b"][:sources])})
    return write_table(tmp_path / "t.csv", columns), s


@pytest.mark.parametrize("sources", [1, 2])
def test_fit_reports_decisions_and_the_artifact_returns_the_transferred_thresholds(tmp_path, capsys, sources):
    path, _ = _table(tmp_path, sources)
    args = [f"data.path={path}", f"data.sources=[{','.join(['a', 'b'][:sources])}]", "evaluate.n_bootstrap=100"]
    args += ["fusion.n_bootstrap=20", "evaluate.thresholds=[0.2,0.5]", f"report.dir={tmp_path / 'r'}"]
    assert main(["fit", *args, f"export.root={tmp_path / 'a'}", "export.name=x"]) == 0
    out = capsys.readouterr().out
    assert "same kept set" in out and "raw cut" in out and "decisions.png" in out
    assert (tmp_path / "r" / "decisions.png").stat().st_size > 1000
    decisions = json.loads((tmp_path / "r" / "metrics.json").read_text())["decisions"]
    assert [d["threshold"] for d in decisions] == [0.2, 0.5]
    for d in decisions:
        for m in d["calibrated"].values():
            assert m["value"] is None or m["ci_low"] <= m["value"] <= m["ci_high"]
        assert 0.5 < d["raw_at_transferred"]["accuracy"]["value"] <= 1.0  # held out, a real cut
    cal = load_calibrator(tmp_path / "a" / "x", allow_mismatch=True)
    for d in decisions:
        assert cal.threshold(d["threshold"]) == pytest.approx(d["transferred_threshold"])
    if sources == 1:  # the cut is on the raw score itself, fitted on every row
        table = read_table(path, target="reference", sources=["a"])
        assert cal.threshold(0.5) == transfer_threshold(table.sources[:, 0], table.target, 0.5)
        assert cal.manifest["thresholds"]["applies_to"] == "the raw score of 'a'"
    else:
        assert "fused score" in cal.manifest["thresholds"]["applies_to"]
    assert cal.manifest["metrics"]["decisions"] == decisions
    with pytest.raises(
        CalibratorLoadError, match=r"no transferred threshold for t=0.3; this artifact has: 0.2, 0.5; re-fit"
    ):
        cal.threshold(0.3)


def test_an_artifact_from_before_thresholds_says_to_refit():
    cal = load_calibrator(LEGACY / "single", allow_mismatch=True)
    with pytest.raises(CalibratorLoadError, match=r"none \(fitted before thresholds were recorded\); re-fit with"):
        cal.threshold(0.5)


def test_no_thresholds_means_no_decision_block(tmp_path, capsys):
    path, _ = _table(tmp_path)
    args = [f"data.path={path}", "data.sources=[a]", "evaluate.n_bootstrap=50", "evaluate.thresholds=[]"]
    assert main(["fit", *args, f"report.dir={tmp_path / 'r'}", f"export.root={tmp_path / 'a'}", "export.name=x"]) == 0
    assert "same kept set" not in capsys.readouterr().out
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["decisions"] == []
