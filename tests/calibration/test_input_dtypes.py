"""Every estimator and metric computes in float64 whatever the caller's dtype: int, bool, float32
and float16 scores give the float64 result, and the outputs are float64. Mutation testing showed no
test reached the ``dtype=np.float64`` conversions (mutation/equivalent.md, "not equivalent")."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration.calibrators import make_calibrator
from pipeline.calibration.fusion import NonNegativeFusion
from pipeline.calibration.fusion_scale import SourceScale, logit
from pipeline.calibration.metrics import agreement, pearson

RNG = np.random.default_rng(7)
X64 = RNG.uniform(0.05, 0.95, 120)
Y64 = np.clip(X64**2 + RNG.normal(0, 0.05, 120), 0, 1)
GROUPS = np.repeat(np.arange(24), 5)


@pytest.mark.parametrize("family", ["identity", "poly", "sigmoid"])
def test_a_calibrator_predicts_float64_from_float32_scores(family):
    cal = make_calibrator(family).fit(X64, Y64)
    x32 = X64.astype(np.float32)
    out = cal.predict(x32)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, cal.predict(x32.astype(np.float64)))


def test_identity_predicts_floats_from_integer_and_bool_scores():
    cal = make_calibrator("identity").fit(X64, Y64)
    for x in (np.array([0, 1, 2]), np.array([True, False])):
        assert cal.predict(x).dtype == np.float64


def test_fusion_on_the_type_scale_gives_the_float64_result_for_float32_sources():
    X = np.c_[X64, RNG.uniform(0.01, 0.99, 120)]
    fusion = NonNegativeFusion(scale="type", source_types=["probability", "probability"]).fit(X, Y64, groups=GROUPS)
    X32 = X.astype(np.float32)
    np.testing.assert_array_equal(fusion.transform(X32), fusion.transform(X32.astype(np.float64)))


def test_logit_is_float64_for_low_precision_probabilities():
    for dtype in (np.float32, np.float16):
        p = np.array([0.1, 0.5, 0.9], dtype=dtype)
        out = logit(p)
        assert out.dtype == np.float64
        np.testing.assert_array_equal(out, logit(p.astype(np.float64)))


def test_a_source_scale_fitted_on_float32_scores_is_the_float64_one():
    t = Y64 * 2 - 1
    a = SourceScale().fit(X64.astype(np.float32), t)
    b = SourceScale().fit(X64.astype(np.float32).astype(np.float64), t)
    np.testing.assert_array_equal(a.transform(X64), b.transform(X64))


def test_pearson_and_agreement_compute_in_float64():
    x32, y32 = X64.astype(np.float32), Y64.astype(np.float32)
    assert pearson(x32, y32) == pearson(x32.astype(np.float64), y32.astype(np.float64))
    assert pearson(X64, y32) == pearson(X64, y32.astype(np.float64))
    low, _ = agreement(x32, y32, GROUPS, k=3, n_bootstrap=0)
    high, _ = agreement(x32.astype(np.float64), y32.astype(np.float64), GROUPS, k=3, n_bootstrap=0)
    assert {m: v.value for m, v in low.items()} == {m: v.value for m, v in high.items()}
    labels = Y64 > 0.5  # bool reference scores (kept/dropped) are numbers too
    flags, _ = agreement(X64, labels, GROUPS, k=3, n_bootstrap=0)
    floats, _ = agreement(X64, labels.astype(np.float64), GROUPS, k=3, n_bootstrap=0)
    assert {m: v.value for m, v in flags.items()} == {m: v.value for m, v in floats.items()}
