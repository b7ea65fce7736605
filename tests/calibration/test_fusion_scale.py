"""Per-source fusion scales (pipeline/calibration/fusion_scale.py), pinned against closed forms and small
hand-computed examples: the logit and its clipping, score-type inference and resolution, the
knots of the calibrated-scale curve (blocks, linear extension, resampling) and each scale's map."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pipeline.calibration.fusion_scale import (
    MAX_KNOTS,
    SourceScale,
    infer_score_type,
    logit,
    midpoint_knots,
    resolve_score_types,
    target_scale,
)

L = math.log((1 - 1e-6) / 1e-6)  # |logit| at the clip, 13.8155...


@pytest.mark.parametrize(
    "p, want",
    [
        (0.5, 0.0),
        (0.8, math.log(4.0)),
        (0.1, -math.log(9.0)),
        (0.0, -L),
        (1.0, L),  # clipped to [eps, 1 - eps], never infinite
        (-3.0, -L),
        (7.0, L),
    ],
)
def test_logit_is_log_odds_clipped_at_eps(p, want):
    assert logit(np.array([p]))[0] == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_logit_of_integer_probabilities_and_a_custom_eps():
    np.testing.assert_allclose(logit([0, 1]), [-L, L], rtol=1e-9)
    np.testing.assert_allclose(logit(np.array([0.0, 1.0]), eps=0.1), [-math.log(9.0), math.log(9.0)], rtol=1e-12)


@pytest.mark.parametrize(
    "values, want",
    [
        ([0.0, 1.0], "probability"),  # the bounds are included
        ([0.2, 0.7], "probability"),
        ([-0.5, 0.5], "unbounded"),  # below 0
        ([0.5, 1.5], "unbounded"),  # above 1
        ([-1e-12, 0.5], "unbounded"),
        ([0.5, 1 + 1e-12], "unbounded"),
        ([], "unbounded"),  # nothing to infer from
        ([0, 1, 1], "probability"),  # integer 0/1 labels
    ],
)
def test_probability_is_inferred_only_when_every_value_lies_in_0_1(values, want):
    assert infer_score_type(np.array(values)) == want


def test_inferred_and_invalid_score_types_are_reported():
    values = {"p": np.array([0.1, 0.9]), "u": np.array([-2.0, 3.0]), "cos": np.array([-0.5, 0.5])}
    types, notes = resolve_score_types(["p", "u", "cos"], values, None, {"cos": "cosine"})  # no sidecar
    assert types == {"p": "probability", "u": "unbounded", "cos": "cosine"}
    assert notes == [
        (
            "score types inferred from the values (all in [0, 1] = probability): p=probability, u=unbounded; "
            "set data.score_types.<column> to override"
        )
    ]
    # a sidecar without a "sources" entry, or without this column, defers to the settings
    assert resolve_score_types(["u"], values, {"sources": None}, {"u": "logit"}) == ({"u": "logit"}, [])
    assert resolve_score_types(["u"], values, {"sources": {"u": None}}, {"u": "logit"}) == ({"u": "logit"}, [])
    assert resolve_score_types(["p"], values, {}, {}) == (
        {"p": "probability"},
        [
            (
                "score types inferred from the values (all in [0, 1] = probability): p=probability; "
                "set data.score_types.<column> to override"
            )
        ],
    )
    with pytest.raises(
        ValueError, match=r"^score type of 'u' is 'logits'; known: probability, logit, cosine, unbounded$"
    ):
        resolve_score_types(["u"], values, {}, {"u": "logits"})
    with pytest.raises(
        ValueError,
        match=r"^'u' is declared a probability but has values outside \[0, 1\] \(\[-2, 3\]\); "
        r"fix data.score_types.u$",
    ):
        resolve_score_types(["u"], values, {}, {"u": "probability"})


@pytest.mark.parametrize("target_type", ["unbounded", "logit", "cosine"])
def test_target_scale_keeps_non_probability_references_as_floats(target_type):
    y = np.array([-3, 0, 2, 5])  # integer grades
    out = target_scale(y, target_type)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [-3.0, 0.0, 2.0, 5.0])


def test_target_scale_of_a_probability_reference_is_its_logit():
    np.testing.assert_allclose(
        target_scale(np.array([0.5, 0.8, 1.0]), "probability"), [0.0, math.log(4.0), L], rtol=1e-9
    )


# x = 0..8 (given shuffled), t pooled by isotonic regression to [0, 0, 1, 3, 3, 3, 4, 6, 6]:
# blocks {0,1} {2} {3,4,5} {6} {7,8}, knots at the block means (0.5, 2, 4, 6, 7.5) with the block
# values, then the first and last segments extended to x = 0 (slope 2/3) and x = 8 (slope 4/3).
_X = np.arange(9.0)
_T = np.array([0, 0, 1, 4, 2, 3, 4, 7, 5.0])
_KX = [0.0, 0.5, 2.0, 4.0, 6.0, 7.5, 8.0]
_KY = [-1 / 3, 0.0, 1.0, 3.0, 4.0, 6.0, 6 + 2 / 3]


def test_knots_are_block_midpoints_extended_linearly_to_the_data_range():
    perm = np.random.default_rng(0).permutation(9)
    for max_knots in (MAX_KNOTS, 7):  # at the limit: kept as they are
        kx, ky = midpoint_knots(_X[perm], _T[perm], max_knots)
        np.testing.assert_allclose(kx, _KX, rtol=1e-12)
        np.testing.assert_allclose(ky, _KY, rtol=1e-12, atol=1e-12)


def test_two_blocks_are_extended_and_a_single_point_end_block_is_not():
    kx, ky = midpoint_knots(np.array([3.0, 0.0, 2.0, 1.0]), np.array([1.0, 0.0, 1.0, 0.0]))
    np.testing.assert_allclose(kx, [0.0, 0.5, 2.5, 3.0])
    np.testing.assert_allclose(ky, [-0.25, 0.0, 1.0, 1.25])
    kx, ky = midpoint_knots(np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.0, 2.0, 2.0, 5.0]))  # end blocks of one point
    np.testing.assert_allclose(kx, [0.0, 1.5, 4.0])
    np.testing.assert_allclose(ky, [0.0, 2.0, 5.0])


def test_above_max_knots_the_curve_is_resampled_at_quantiles_of_x():
    kx, ky = midpoint_knots(_X, _T, max_knots=4)
    np.testing.assert_allclose(kx, [0.0, 8 / 3, 16 / 3, 8.0], rtol=1e-12)
    np.testing.assert_allclose(ky, np.interp(kx, _KX, _KY), rtol=1e-12)  # on the full curve
    np.testing.assert_allclose(ky, [-1 / 3, 5 / 3, 11 / 3, 20 / 3], rtol=1e-12)
    x = np.linspace(-2.0, 3.0, 1000)  # 1000 blocks (t increasing): MAX_KNOTS = 128 knots by default
    kx, ky = midpoint_knots(x, x**3)
    assert MAX_KNOTS == 128 and kx.size == 128 and kx[0] == -2.0 and kx[-1] == 3.0
    np.testing.assert_allclose(kx, np.quantile(x, np.linspace(0, 1, 128)))
    np.testing.assert_allclose(ky, np.interp(kx, x, x**3), rtol=1e-12)  # each point its own block


def test_source_scale_defaults_and_validation():
    assert SourceScale().get_params() == {"scale": "calibrated", "score_type": "unbounded"}
    assert SourceScale().fit(_X, _T).to_spec() == {"map": "knots", "x": _KX, "y": pytest.approx(_KY)}
    with pytest.raises(ValueError, match=r"^scale must be one of calibrated, type, raw, got 'log'$"):
        SourceScale("log").fit(_X, _T)
    with pytest.raises(ValueError, match=r"^scale='calibrated' needs the reference to fit each source's curve$"):
        SourceScale().fit(_X)


@pytest.mark.parametrize(
    "scale, score_type, spec, x, want",
    [
        ("type", "probability", {"map": "logit", "eps": 1e-6}, [0, 1], [-L, L]),
        ("type", "logit", {"map": "identity"}, [0, 1], [0.0, 1.0]),
        ("type", "unbounded", {"map": "identity"}, [-3, 5], [-3.0, 5.0]),
        ("raw", "probability", {"map": "identity"}, [0, 1], [0.0, 1.0]),
        (
            "calibrated",
            "probability",
            {"map": "knots", "x": _KX, "y": _KY},
            [-5, 1, 8, 20],
            [-1 / 3, 1 / 3, 6 + 2 / 3, 6 + 2 / 3],
        ),
    ],
)
def test_each_scale_maps_integer_scores_to_floats(scale, score_type, spec, x, want):
    """Integer scores (grades, flags) come out as float64 on every scale: constant beyond the
    training range for the calibrated curve, clipped for the logit."""
    fitted = SourceScale(scale, score_type).fit(_X, _T)
    got = fitted.to_spec()
    assert got.keys() == spec.keys() and all(got[k] == pytest.approx(v) for k, v in spec.items())
    out = fitted.transform(np.array(x))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, want, rtol=1e-9, atol=1e-12)
