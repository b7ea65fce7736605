"""Known monotone non-linear distortion + noise: held-out Pearson of the fitted calibrator reaches
at least 97% of what the true map achieves on the same held-out rows."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from pipeline.calibration.calibrators import grouped_splits, make_calibrator
from pipeline.calibration.fusion import ScoreCalibrationModel
from pipeline.calibration.metrics import pearson
from pipeline.fit.evaluation import out_of_fold

DISTORTIONS = {
    # local score -> reference, all strictly increasing on the local range
    "logistic": lambda x: 1 / (1 + np.exp(-8 * (x - 0.6))),
    "power": lambda x: x**3,
    "log": lambda x: np.log1p(20 * x) / np.log(21),
}


# a two-parameter sigmoid is only expected to recover the logistic shape; auto covers the rest
CASES = [(f, d) for f in ("poly", "isotonic", "auto") for d in DISTORTIONS] + [("sigmoid", "logistic")]


@pytest.mark.parametrize("family, distortion", CASES)
def test_calibrator_recovers_known_distortion(family, distortion):
    truth = DISTORTIONS[distortion]
    rng = np.random.default_rng(zlib.crc32(f"{family}/{distortion}".encode()))
    n_queries, docs = 150, 8
    groups = np.repeat(np.arange(n_queries), docs)
    x = rng.uniform(0.02, 0.98, groups.size)
    y = truth(x) + rng.normal(0, 0.05, x.size)
    model = ScoreCalibrationModel(make_calibrator(family), sources=["local"])
    pred, _ = out_of_fold(model, x[:, None], y, groups, grouped_splits(x.size, groups, 5, seed=0))
    achieved, ceiling = pearson(pred, y), pearson(truth(x), y)
    assert achieved >= 0.97 * ceiling, (achieved, ceiling)
    assert pearson(x, y) < ceiling  # the distortion is real: raw scores fall short of the true map
