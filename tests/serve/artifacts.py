"""An artifact for a scorer built in a test: a poly calibrator of a known linear map, and a
manifest whose source fingerprint is the scorer's own (what `serve` rebuilds and compares)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def artifact_for(scorer, target_model: str, root: Path, name: str, *, low: float, high: float) -> Path:
    """``y = 0.5 + 0.4 x`` fitted on scores drawn from ``[low, high]``, served as ``target_model``
    (the API model the calibration plays)."""
    from pipeline.calibration.calibrators import make_calibrator
    from pipeline.calibration.fusion import ScoreCalibrationModel
    from pipeline.fit.artifacts import write_artifact

    x = np.random.default_rng(0).uniform(low, high, size=300)
    model = ScoreCalibrationModel(make_calibrator("poly"), None, ["local"]).fit(x[:, None], 0.5 + 0.4 * x)
    fp = scorer.fingerprint()
    manifest = {
        "sources": [
            {"column": "local", "kind": "local", "model": fp["model"], "revision": fp["revision"], "fingerprint": fp}
        ],
        "target": {"column": "reference", "kind": "api", "model": target_model, "instruction": None},
    }
    return write_artifact(root, name, model, manifest)
