"""A parameter's allowed range is declared once (pipeline.calibration.ranges) and read by both the
config field and the estimator's ``fit``: the config refuses a value exactly when the estimator
does. The values tried come from the config's declared range, so a range changed in one place
and not the other fails here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.calibration.calibrators import (
    AutoCalibrator,
    IdentityCalibrator,
    PolynomialCalibrator,
    SigmoidCalibrator,
    grouped_splits,
)
from pipeline.calibration.fusion import NonNegativeFusion, ScoreCalibrationModel
from pipeline.calibration.ranges import CV_FOLDS, DEGREE, SIGMOID_C, ParamRange
from pipeline.config.fit import CalibratorConfig, EvaluateConfig, FusionConfig
from pipeline.config.settings import RANGE, Range

RNG = np.random.default_rng(0)
X = np.sort(RNG.uniform(0.02, 0.98, 60))
Y = np.clip(X**2 + RNG.normal(0, 0.05, 60), 0, 1)
GROUPS = np.repeat(np.arange(12), 5)


def _fit_fusion(auto_splits):
    fusion = NonNegativeFusion(objective="auto", scale="raw", auto_splits=auto_splits)
    ScoreCalibrationModel(IdentityCalibrator(), fusion).fit(np.column_stack([X, X**0.5]), Y, groups=GROUPS)


#: (config section, field, the table entry, estimator parameter name, fit the estimator with a value)
PAIRS = [
    (CalibratorConfig, "degree", DEGREE, "degree", lambda v: PolynomialCalibrator(degree=v).fit(X, Y)),
    (CalibratorConfig, "sigmoid_C", SIGMOID_C, "C", lambda v: SigmoidCalibrator(C=v).fit(X, Y)),
    (
        CalibratorConfig,
        "auto_splits",
        CV_FOLDS,
        "n_splits",
        lambda v: AutoCalibrator(n_splits=v).fit(X, Y, groups=GROUPS),
    ),
    (FusionConfig, "auto_splits", CV_FOLDS, "auto_splits", _fit_fusion),
    (EvaluateConfig, "n_splits", CV_FOLDS, "n_splits", lambda v: grouped_splits(X.size, GROUPS, v, seed=0)),
]
IDS = [f"{section.__name__}.{field}" for section, field, *_ in PAIRS]


def _config_range(section, name) -> Range:
    return next(f.metadata[RANGE] for f in dataclasses.fields(section) if f.name == name)


@pytest.mark.parametrize("section, field, entry, param, fit", PAIRS, ids=IDS)
def test_the_config_field_declares_the_estimators_range(section, field, entry, param, fit):
    assert _config_range(section, field) == Range(**entry.bounds())


@pytest.mark.parametrize("section, field, entry, param, fit", PAIRS, ids=IDS)
def test_the_estimator_refuses_what_the_config_refuses_and_fits_the_bounds(section, field, entry, param, fit):
    rng = _config_range(section, field)
    integer = entry.integer
    step = 1 if integer else 0.5
    outside = (
        ([rng.ge - step] if rng.ge is not None else [])
        + ([rng.gt] if rng.gt is not None else [])
        + ([rng.le + step] if rng.le is not None else [])
        + ([rng.lt] if rng.lt is not None else [])
    )
    inside = (
        ([rng.ge] if rng.ge is not None else [])
        + ([rng.gt + 1e-3] if rng.gt is not None else [])
        + ([rng.le] if rng.le is not None else [])
        + ([rng.lt - 1e-3] if rng.lt is not None else [])
    )
    assert outside and inside
    for value in outside:
        value = int(value) if integer else float(value)
        assert not rng.allows(value)
        with pytest.raises(ValueError, match=rf"^{param} must be (an integer )?{entry.describe()}, got {value!r}$"):
            fit(value)
    for value in inside:
        assert rng.allows(value)
        fit(int(value) if integer else value)  # no error


@pytest.mark.parametrize("value", [2.0, "2", None, float("nan"), True, np.int64(3)])
def test_an_integer_range_refuses_floats_strings_none_nan_and_bools(value):
    assert CV_FOLDS.allows(value) is isinstance(value, np.integer)


def test_a_real_range_refuses_nan_and_non_numbers_without_a_type_error():
    assert SIGMOID_C.allows(np.float32(0.5)) and SIGMOID_C.allows(3)
    assert not any(SIGMOID_C.allows(v) for v in (float("nan"), "1", None, False))
    assert ParamRange().describe() == "any value" and ParamRange().allows(-1e300)


def test_the_config_and_the_estimator_word_a_range_alike():
    assert Range(**DEGREE.bounds()).describe() == DEGREE.describe() == ">= 1 and <= 10"
    assert Range(**SIGMOID_C.bounds()).describe() == SIGMOID_C.describe() == "> 0"
