"""The pickle-free spec (pipeline/runtime/spec.py) refuses every malformed or non-monotone field with a
message that names it, and computes what its fields say at their edges. Written from what mutation
testing (make mutate) found unguarded."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from pipeline.runtime.spec import FORMAT, SpecError, compile_calibrator, compile_spec

POLY = {"family": "poly", "coef": [0.1, 0.5, 0.2], "x_range": [0.0, 1.0], "y_range": [0.0, 1.0]}
ISOTONIC = {"family": "isotonic", "x": [0.0, 0.5, 1.0], "y": [0.1, 0.4, 0.9], "y_range": [0.1, 0.9]}
SIGMOID = {"family": "sigmoid", "a": 2.0, "b": -1.0, "y_range": [0.0, 1.0], "input": "logit", "eps": 1e-6}
MAPPED = {
    "kind": "mapped_linear",
    "mean": [0.1, 0.2],
    "scale": [1.0, 2.0],
    "weights": [0.7, 0.3],
    "maps": [{"map": "logit", "eps": 1e-6}, {"map": "knots", "x": [0.0, 1.0], "y": [0.0, 2.0]}],
}


def spec(calibrator=POLY, fusion=None, sources=("local",)) -> dict:
    return {
        "format": FORMAT,
        "sources": list(sources),
        "calibrator": copy.deepcopy(calibrator),
        "fusion": copy.deepcopy(fusion),
    }


def with_field(base: dict, path: str, value) -> dict:
    out = copy.deepcopy(base)
    node = out
    *parents, last = path.split(".")
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is KeyError:
        del node[last]
    else:
        node[int(last) if isinstance(node, list) else last] = value
    return out


BAD = [
    ({"format": FORMAT}, "sources", None, "'sources' must be a non-empty list of column names"),
    (
        spec(),
        "format",
        "score-calibrator/v0",
        "unsupported spec format 'score-calibrator/v0'; this code reads score-calibrator/v1",
    ),
    (spec(), "sources", [], "'sources' must be a non-empty list of column names"),
    (spec(), "sources", "local", "'sources' must be a non-empty list of column names"),
    (spec(), "sources", ["local", 3], "'sources' must be a non-empty list of column names"),
    (spec(), "calibrator", "poly", "'calibrator' must be a JSON object, got 'poly'"),
    (
        spec(),
        "calibrator.family",
        "cubic",
        "unknown calibrator family 'cubic'; known: identity, poly, isotonic, sigmoid",
    ),
    (spec(), "calibrator.coef", [], "'coef' must not be empty"),
    (spec(), "calibrator.coef", [0.1, "x"], "'coef' must be numbers: "),
    (spec(), "calibrator.coef", [0.1, float("nan")], "'coef' must be a list of finite numbers, got [0.1, nan]"),
    (spec(), "calibrator.coef", [[0.1, 0.2]], "'coef' must be a list of finite numbers, got [[0.1, 0.2]]"),
    (spec(), "calibrator.x_range", [1.0, 0.0], "'x_range' must be [low, high] with low <= high, got [1.0, 0.0]"),
    (spec(), "calibrator.y_range", [0.0, 0.5, 1.0], "'y_range' must be 2 finite numbers, got [0.0, 0.5, 1.0]"),
    (spec(), "calibrator.y_range", KeyError, "'y_range' must be 2 finite numbers, got None"),
    (spec({**ISOTONIC, "y": []}), "calibrator.x", [], "isotonic spec needs at least one knot"),
    (spec(ISOTONIC), "calibrator.y", [0.1, 0.4], "'y' must be 3 finite numbers, got [0.1, 0.4]"),
    (spec(ISOTONIC), "calibrator.x", [0.0, 0.6, 0.5], "isotonic knots must be non-decreasing in x and in y"),
    (spec(ISOTONIC), "calibrator.y", [0.1, 0.9, 0.4], "isotonic knots must be non-decreasing in x and in y"),
    (spec(SIGMOID), "calibrator.a", -0.5, "sigmoid slope 'a' must be >= 0 (monotone), got -0.5"),
    (spec(SIGMOID), "calibrator.input", "probit", "sigmoid 'input' must be 'logit' or 'identity', got 'probit'"),
    (spec(SIGMOID), "calibrator.eps", 0.0, "'eps' must be in (0, 0.5), got 0.0"),
    (spec(SIGMOID), "calibrator.eps", 0.5, "'eps' must be in (0, 0.5), got 0.5"),
    (spec(SIGMOID), "calibrator.eps", "tiny", "'eps' must be a finite number, got 'tiny'"),
    (spec(sources=("a", "b")), "fusion", None, "2 sources need a fusion spec"),
    (
        spec(fusion=MAPPED, sources=("a", "b")),
        "fusion.kind",
        "weighted",
        "unknown fusion kind 'weighted'; known: nonneg_linear, mapped_linear",
    ),
    (
        spec(fusion=MAPPED, sources=("a", "b")),
        "fusion.maps",
        [{"map": "identity"}],
        "'fusion.maps' must list 2 source maps",
    ),
    (
        spec(fusion=MAPPED, sources=("a", "b")),
        "fusion.maps.1.map",
        "spline",
        "unknown source map 'spline'; known: identity, logit, knots",
    ),
    (
        spec(fusion=MAPPED, sources=("a", "b")),
        "fusion.maps.1.y",
        [0.0],
        "map knots need the same non-zero number of x and y values",
    ),
    (
        spec(fusion=MAPPED, sources=("a", "b")),
        "fusion.maps.1.x",
        [0.5, 0.5],
        "map knots must be strictly increasing in x and non-decreasing in y",
    ),
    (
        spec(fusion=MAPPED, sources=("a", "b")),
        "fusion.maps.1.y",
        [1.0, 0.5],
        "map knots must be strictly increasing in x and non-decreasing in y",
    ),
    (spec(fusion=MAPPED, sources=("a", "b")), "fusion.scale", [1.0, 0.0], "fusion.scale must be positive"),
    (spec(fusion=MAPPED, sources=("a", "b")), "fusion.weights", [0.5, -0.1], "fusion.weights must be non-negative"),
    (
        spec(fusion=MAPPED, sources=("a", "b")),
        "fusion.mean",
        [0.1],
        "'fusion.mean' must be 2 finite numbers, got [0.1]",
    ),
    (
        spec(fusion=MAPPED, sources=("a", "b")),
        "fusion.scale",
        [1.0],
        "'fusion.scale' must be 2 finite numbers, got [1.0]",
    ),
    (
        spec(fusion=MAPPED, sources=("a", "b")),
        "fusion.weights",
        [1.0, 2.0, 3.0],
        "'fusion.weights' must be 2 finite numbers",
    ),
    (
        spec(fusion=MAPPED, sources=("a", "b")),
        "fusion.maps.0",
        "identity",
        "unknown source map None; known: identity, logit, knots",
    ),
    (spec(fusion=MAPPED, sources=("a", "b")), "fusion.maps.1.x", ["a", "b"], "'map.x' must be numbers: "),
    (spec(fusion=MAPPED, sources=("a", "b")), "fusion.maps.1.y", ["a", "b"], "'map.y' must be numbers: "),
    (spec(ISOTONIC), "calibrator.x", [0.0, "x", 1.0], "'x' must be numbers: "),
    (spec(ISOTONIC), "calibrator.y_range", [0.9, 0.1], "'y_range' must be [low, high] with low <= high"),
    (spec(SIGMOID), "calibrator.a", "steep", "'a' must be a finite number, got 'steep'"),
    (spec(SIGMOID), "calibrator.a", float("inf"), "'a' must be a finite number, got inf"),
    (spec(SIGMOID), "calibrator.b", None, "'b' must be a finite number, got None"),
    (spec(SIGMOID), "calibrator.b", True, "'b' must be a finite number, got True"),
    (spec(SIGMOID), "calibrator.y_range", [1.0], "'y_range' must be 2 finite numbers, got [1.0]"),
]


@pytest.mark.parametrize("base, path, value, message", BAD, ids=[f"{p}={v!r}"[:60] for _, p, v, _ in BAD])
def test_a_malformed_field_is_refused_naming_it(base, path, value, message):
    with pytest.raises(SpecError) as info:
        compile_spec(with_field(base, path, value))
    assert str(info.value).startswith(message), str(info.value)


@pytest.mark.parametrize("calibrator", [POLY, ISOTONIC, SIGMOID, {"family": "identity"}])
def test_every_valid_family_compiles_and_leaves_its_input_alone(calibrator):
    apply, sources = compile_spec(spec(calibrator))
    x = np.array([-1.0, 0.0, 0.25, 0.5, 1.0, 2.0])
    before = x.copy()
    out = apply(x)
    out += 100.0  # the result is the caller's to change: never the input's memory
    np.testing.assert_array_equal(x, before)
    assert sources == ["local"]


@pytest.mark.parametrize(
    "edge",
    [
        {"x_range": [0.5, 0.5]},  # a zero-width training range: the constant term, clipped
        {"coef": [0.7]},  # a constant polynomial
    ],
)
def test_a_degenerate_polynomial_is_its_clipped_constant(edge):
    f = compile_calibrator({**POLY, "coef": [1.7, 0.5], "y_range": [0.0, 0.9], **edge})
    expected = min(max((edge.get("coef") or [1.7])[0], 0.0), 0.9)
    np.testing.assert_array_equal(f(np.array([-1.0, 0.5, 3.0])), [expected] * 3)


def test_range_bounds_may_coincide_and_eps_has_its_open_interval():
    compile_calibrator({**POLY, "y_range": [0.4, 0.4]})  # low == high is a range
    f = compile_calibrator({**SIGMOID, "eps": 0.49})
    low, high = f(np.array([0.0, 1.0]))  # inputs clipped into [eps, 1 - eps] before the logit
    z = np.log(0.49 / 0.51)
    assert low == pytest.approx(1 / (1 + np.exp(-(2.0 * z - 1.0))))
    assert high == pytest.approx(1 / (1 + np.exp(-(2.0 * -z - 1.0))))


def test_a_sigmoid_on_identity_input_and_a_single_knot_isotonic():
    f = compile_calibrator({**SIGMOID, "input": "identity"})
    assert f(np.array([0.5]))[0] == pytest.approx(1 / (1 + np.exp(-(2.0 * 0.5 - 1.0))))
    g = compile_calibrator({**ISOTONIC, "x": [0.3], "y": [0.6]})
    np.testing.assert_array_equal(g(np.array([-5.0, 0.3, 5.0])), [0.6, 0.6, 0.6])


@pytest.mark.parametrize(
    "scores, message",
    [
        (np.zeros((3, 2)), "expected a 1-D array of scores, got shape (3, 2)"),
        (np.zeros((2, 2, 1)), "expected a 1-D array of scores, got shape (2, 2, 1)"),
    ],
)
def test_one_source_takes_n_or_n_by_1(scores, message):
    apply, _ = compile_spec(spec())
    assert apply(np.zeros((3, 1))).shape == (3,)
    with pytest.raises(ValueError) as info:
        apply(scores)
    assert str(info.value) == message


def test_fused_sources_take_n_by_k_only():
    apply, sources = compile_spec(spec(fusion=MAPPED, sources=("a", "b")))
    assert sources == ["a", "b"] and apply(np.full((4, 2), 0.5)).shape == (4,)
    for bad in (np.zeros(4), np.zeros((4, 3)), np.zeros((4, 1))):
        with pytest.raises(ValueError, match=r"expected an \(n, 2\) array with columns \['a', 'b'\]"):
            apply(bad)


def test_a_spec_that_is_not_an_object_is_refused():
    with pytest.raises(SpecError, match="^calibrator spec must be a JSON object$"):
        compile_spec(["poly"])


def test_what_the_monotone_rules_still_allow():
    """Flat steps and ties are monotone non-decreasing: allowed. A slope of 0 is a constant."""
    compile_calibrator({**ISOTONIC, "x": [0.0, 0.5, 0.5, 1.0], "y": [0.1, 0.4, 0.4, 0.9]})  # tied x knots
    flat = compile_calibrator({**SIGMOID, "a": 0.0, "y_range": [0.2, 0.7]})
    np.testing.assert_allclose(flat(np.array([0.1, 0.9])), [0.2 + 0.5 / (1 + np.exp(1.0))] * 2)
    compile_calibrator({**SIGMOID, "a": 0.5})
    maps = [{"map": "knots", "x": [0.5], "y": [1.0]}, {"map": "knots", "x": [0.0, 1.0], "y": [0.3, 0.3]}]
    apply, _ = compile_spec(spec({"family": "identity"}, fusion={**MAPPED, "maps": maps}, sources=("a", "b")))
    np.testing.assert_allclose(
        apply(np.array([[0.1, 0.2], [0.9, 0.8]])), [0.7 * (1.0 - 0.1) + 0.3 * (0.3 - 0.2) / 2] * 2
    )


def test_a_sigmoid_spans_its_own_output_range():
    """y_range [0.2, 0.7]: (y_hi - y_lo) and (y_lo + y_hi) differ, so each enters the formula once."""
    f = compile_calibrator({**SIGMOID, "input": "identity", "y_range": [0.2, 0.7]})
    x = np.array([-3.0, 0.0, 0.5, 3.0])
    np.testing.assert_allclose(f(x), 0.2 + 0.5 / (1 + np.exp(-(2.0 * x - 1.0))), atol=1e-12)


def test_linear_fusion_without_maps_and_with_identity_maps():
    linear = {"kind": "nonneg_linear", "mean": [0.1, 0.2], "scale": [1.0, 2.0], "weights": [0.7, 0.3]}
    identity = {**linear, "kind": "mapped_linear", "maps": [{"map": "identity"}, {"map": "identity"}]}
    X = np.array([[0.5, 0.4], [0.9, 0.1]])
    expected = 0.7 * (X[:, 0] - 0.1) / 1.0 + 0.3 * (X[:, 1] - 0.2) / 2.0
    for fusion in (linear, identity):
        apply, _ = compile_spec(spec({"family": "identity"}, fusion=fusion, sources=("a", "b")))
        np.testing.assert_allclose(apply(X), expected, atol=1e-12)


def test_a_source_with_weight_zero_is_a_valid_fusion():
    """Non-negative weights: a source the fit found useless gets exactly 0 (the demo's MiniLM once did)."""
    apply, _ = compile_spec(spec({"family": "identity"}, fusion={**MAPPED, "weights": [1.0, 0.0]}, sources=("a", "b")))
    X = np.array([[0.2, 0.1], [0.2, 0.9]])
    assert apply(X)[0] == apply(X)[1]  # the second column changes nothing


def test_a_compiled_spec_computes_in_float64_whatever_the_input_dtype():
    """Integer, bool and float32 scores give the float64 result (mutation testing found the
    conversion unguarded: an identity spec returned int64, float32 was computed in float32)."""
    from pipeline.calibration.calibrators import make_calibrator
    from pipeline.calibration.fusion import ScoreCalibrationModel

    x = np.linspace(0.05, 0.95, 40)
    for family in ("identity", "poly"):
        model = ScoreCalibrationModel(make_calibrator(family), None, ["s"]).fit(x[:, None], np.clip(x**2, 0, 1))
        apply = compile_spec(model.to_spec())[0]
        assert apply(np.array([0, 1, 2])).dtype == np.float64
        x32 = x.astype(np.float32)
        np.testing.assert_array_equal(apply(x32), apply(x32.astype(np.float64)))
