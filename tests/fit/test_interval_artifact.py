"""`fit` writes per-score intervals into the artifact (intervals.json, hash-checked), single
source and fused; artifacts without them load as before and say to re-fit when asked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.__main__ import main
from pipeline.calibration.synthetic import latent_sample
from pipeline.data.table import write_table
from pipeline.inference import load_calibrator
from pipeline.runtime.loader import ArtifactIntegrityError, CalibratorLoadError

LEGACY = Path(__file__).resolve().parents[1] / "support" / "legacy_artifacts"


@pytest.fixture(scope="module", params=[1, 2], ids=["single", "fused"])
def artifact(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("intervals")
    s = latent_sample(("probability", "cosine"), (0.4, 0.7), n_queries=150, docs=(4, 12), seed=5)
    names = ["a", "b"][: request.param]
    columns = {"query_id": s.groups.astype(str), "doc_id": np.arange(s.target.size).astype(str), "reference": s.target}
    columns.update({name: s.sources[:, j] for j, name in enumerate(names)})
    path = write_table(tmp / "t.csv", columns)
    args = [
        f"data.path={path}",
        f"data.sources=[{','.join(names)}]",
        "evaluate.n_bootstrap=50",
        "fusion.n_bootstrap=10",
    ]
    assert main(["fit", *args, f"report.dir={tmp / 'r'}", f"export.root={tmp / 'a'}", "export.name=x"]) == 0
    return tmp / "a" / "x", s.sources[:, : request.param]


def test_intervals_bracket_the_calibrated_score_and_widen_with_coverage(artifact):
    path, X = artifact
    cal = load_calibrator(path, allow_mismatch=True)
    scores = X[:200] if X.shape[1] > 1 else X[:200, 0]
    centre = cal(scores)
    low80, high80 = cal.interval(scores, coverage=0.8)
    low95, high95 = cal.interval(scores, coverage=0.95)
    assert low80.shape == high80.shape == centre.shape
    assert np.all(low95 <= low80) and np.all(low80 <= centre) and np.all(centre <= high80) and np.all(high80 <= high95)
    assert np.mean(high95 - low95) > np.mean(high80 - low80) > 0
    assert np.all((low95 >= 0) & (high95 <= 1))  # within the reference's range
    table = json.loads((path / "intervals.json").read_text())
    assert sum(table["counts"]) == X.shape[0]  # every held-out pair, once


def test_one_score_gives_two_floats_and_is_ambiguous_for_a_fused_artifact(artifact):
    path, X = artifact
    cal = load_calibrator(path, allow_mismatch=True)
    if X.shape[1] > 1:
        with pytest.raises(ValueError, match="a single score is ambiguous for 2 sources"):
            cal.interval(0.5)
        return
    low, high = cal.interval(0.5)
    assert isinstance(low, float) and low < high


def test_a_changed_intervals_file_fails_only_when_intervals_are_asked_for(artifact, tmp_path):
    path, X = artifact
    copy = tmp_path / "x"
    shutil.copytree(path, copy)
    (copy / "intervals.json").write_text("{}", encoding="utf-8")
    cal = load_calibrator(copy, allow_mismatch=True)  # what a reader that never asks does: unaffected
    scores = X[:5] if X.shape[1] > 1 else X[:5, 0]
    np.testing.assert_array_equal(cal(scores), load_calibrator(path, allow_mismatch=True)(scores))
    with pytest.raises(ArtifactIntegrityError, match="intervals.json: sha256"):
        cal.interval(scores)


@pytest.mark.parametrize("kind", ["single", "fused"])
def test_an_artifact_from_before_intervals_loads_and_says_to_refit(kind):
    cal = load_calibrator(LEGACY / kind, allow_mismatch=True)
    scores = np.array([[0.2, 0.3], [0.7, 0.5]]) if len(cal.sources) > 1 else np.array([0.2, 0.7])
    assert cal(scores).shape == (2,)
    with pytest.raises(
        CalibratorLoadError, match=r"no per-score intervals in this artifact .*; re-fit with `python -m pipeline fit`"
    ):
        cal.interval(scores)
