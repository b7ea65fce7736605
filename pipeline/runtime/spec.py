"""Pickle-free calibrator spec: a JSON-able dict and the numpy code that evaluates it.

This is the single implementation of *applying* a calibrator. The scikit-learn estimators in
:mod:`pipeline.calibration.calibrators` delegate ``predict`` to it and the inference module loads it from
``calibrator.json``, so the joblib path and the JSON path cannot drift apart. It imports numpy
only: production code loads it without scikit-learn, torch or transformers.

Spec layout (``format`` = ``score-calibrator/v1``)::

    {"format": "score-calibrator/v1",
     "sources": ["local"],                      # input column order for (n, k) calls
     "fusion": null
        | {"kind": "nonneg_linear", "mean": [...], "scale": [...], "weights": [...]}
            # fused = sum_j weights_j * (x_j - mean_j) / scale_j
        | {"kind": "mapped_linear", "maps": [<map>, ...], "mean", "scale", "weights"}
            # the same sum over m_j(x_j), each source first mapped onto its fusion scale:
            #   {"map": "identity"} | {"map": "logit", "eps": e}
            #   | {"map": "knots", "x": [...], "y": [...]}  (strictly increasing, constant beyond)
     "calibrator": <one of>
        {"family": "identity"}
        {"family": "poly", "x_range": [lo, hi], "y_range": [lo, hi], "coef": [c0, c1, ...]}
            # y = clip(sum_i c_i t^i, *y_range), t = (clip(x, *x_range) - lo) / (hi - lo)
        {"family": "isotonic", "x": [...], "y": [...], "y_range": [lo, hi]}
            # y = clip(interp(x, x_knots, y_knots), *y_range); constant beyond the end knots
        {"family": "sigmoid", "input": "logit" | "identity", "eps": e, "a": a, "b": b,
         "y_range": [lo, hi]}
            # z = logit(clip(x, e, 1 - e)) or x;  y = lo + (hi - lo) * sigmoid(a z + b), a >= 0
    }
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from pipeline.core.errors import PipelineError

__all__ = [
    "FAMILIES",
    "FORMAT",
    "SpecError",
    "compile_calibrator",
    "compile_fusion",
    "compile_input_map",
    "compile_spec",
    "score_shape",
]

FORMAT = "score-calibrator/v1"
FAMILIES = ("identity", "poly", "isotonic", "sigmoid")


class SpecError(PipelineError, ValueError):
    """Refuse a calibrator spec that is malformed or would not be monotone non-decreasing.

    A ``ValueError`` too, so callers that only know numpy's errors still catch it.
    """


def _floats(value: Any, name: str, length: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"'{name}' must be numbers: {exc}") from None
    if arr.ndim != 1 or (length is not None and arr.shape[0] != length) or not np.all(np.isfinite(arr)):
        want = f"{length} finite numbers" if length is not None else "a list of finite numbers"
        raise SpecError(f"'{name}' must be {want}, got {value!r:.80}")
    return arr


def _number(value: Any, name: str) -> float:
    """One finite number (a slope, an intercept, an epsilon)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"'{name}' must be a finite number, got {value!r:.80}")
    return float(value)


def _range(value: Any, name: str) -> tuple[float, float]:
    lo, hi = _floats(value, name, 2)
    if lo > hi:
        raise SpecError(f"'{name}' must be [low, high] with low <= high, got {value!r}")
    return float(lo), float(hi)


def _clip_into(x: np.ndarray, lo: float, hi: float, out: np.ndarray | None = None) -> np.ndarray:
    """``np.clip`` as two ufunc calls: the same values, without ``np.clip``'s Python-level
    dispatch, which costs more than the arithmetic on a 100-score call."""
    out = np.maximum(x, lo, out=out)
    return np.minimum(out, hi, out=out)


def compile_calibrator(spec: Mapping[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Validate one calibrator spec and return a fast ``f(x: float64[n]) -> float64[n]``.

    Validation happens once, here, so the returned function does arithmetic only: it runs on
    every request of a serving process. A spec that would not be monotone (a negative sigmoid
    slope, decreasing knots) is refused, so a hand-edited file cannot reorder documents.

    Parameters
    ----------
    spec : Mapping
        The ``calibrator`` entry (module docstring), e.g. ``{"family": "identity"}``.

    Returns
    -------
    callable
        Maps a float64 array of shape (n,) to calibrated scores of shape (n,).

    Raises
    ------
    SpecError
        For an unknown family, missing or non-finite numbers, an inverted range, or a spec that
        would not be monotone non-decreasing.

    Examples
    --------
    >>> import numpy as np
    >>> f = compile_calibrator({"family": "poly", "x_range": [0, 1], "y_range": [0, 1], "coef": [0, 1]})
    >>> f(np.array([-1.0, 0.25, 2.0]))
    array([0.  , 0.25, 1.  ])
    """
    if not isinstance(spec, Mapping):
        raise SpecError(f"'calibrator' must be a JSON object, got {spec!r:.80}")
    family = spec.get("family")
    if family == "identity":
        return lambda x: x.copy()
    if family == "poly":
        x_lo, x_hi = _range(spec.get("x_range"), "x_range")
        y_lo, y_hi = _range(spec.get("y_range"), "y_range")
        coef = _floats(spec.get("coef"), "coef")
        if coef.shape[0] == 0:
            raise SpecError("'coef' must not be empty")
        width = x_hi - x_lo
        # divide (as the fit does) rather than multiply by 1/width: for a subnormal width 1/width
        # overflows to inf and 0 * inf is NaN, while (x - x_lo) / width stays within [0, 1]
        scale = width if width > 0 else 1.0
        rev = coef[::-1].tolist()
        if len(rev) == 1 or width <= 0:  # t is 0 everywhere: the constant term
            constant = min(max(rev[-1], y_lo), y_hi)
            return lambda x: np.full(x.shape, constant)

        def poly(x: np.ndarray) -> np.ndarray:
            t = _clip_into(x, x_lo, x_hi)  # clip first: (x - lo) / width could overflow
            t -= x_lo
            t /= scale
            acc = t * rev[0]
            for c in rev[1:-1]:  # Horner, in place
                acc += c
                acc *= t
            acc += rev[-1]
            return _clip_into(acc, y_lo, y_hi, out=acc)

        return poly
    if family == "isotonic":
        xs = _floats(spec.get("x"), "x")
        ys = _floats(spec.get("y"), "y", xs.shape[0])
        y_lo, y_hi = _range(spec.get("y_range"), "y_range")
        if xs.shape[0] == 0:
            raise SpecError("isotonic spec needs at least one knot")
        if np.any(np.diff(xs) < 0) or np.any(np.diff(ys) < 0):
            raise SpecError("isotonic knots must be non-decreasing in x and in y")
        return lambda x: _clip_into(np.interp(x, xs, ys), y_lo, y_hi)
    if family == "sigmoid":
        a, b = _number(spec.get("a"), "a"), _number(spec.get("b"), "b")
        y_lo, y_hi = _range(spec.get("y_range"), "y_range")
        if a < 0:
            raise SpecError(f"sigmoid slope 'a' must be >= 0 (monotone), got {a}")
        mode = spec.get("input")
        if mode not in ("logit", "identity"):
            raise SpecError(f"sigmoid 'input' must be 'logit' or 'identity', got {mode!r}")
        to_logit = _clipped_logit(spec) if mode == "logit" else None
        # lo + (hi - lo) * sigmoid(a z + b) == mid + half * tanh((a z + b) / 2): no overflow for
        # any z, no branches, five in-place ufunc calls (the fit's predict uses the same form)
        half_a, half_b, half, mid = 0.5 * a, 0.5 * b, 0.5 * (y_hi - y_lo), 0.5 * (y_lo + y_hi)

        def sigmoid(x: np.ndarray) -> np.ndarray:
            z = to_logit(x) if to_logit is not None else x
            t = np.multiply(z, half_a)
            t += half_b
            np.tanh(t, out=t)
            t *= half
            t += mid
            return t

        return sigmoid
    raise SpecError(f"unknown calibrator family {family!r}; known: {', '.join(FAMILIES)}")


def _clipped_logit(spec: Mapping[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """``logit(clip(x, eps, 1 - eps))`` with the spec's ``eps``."""
    eps = _number(spec.get("eps"), "eps")
    if not 0 < eps < 0.5:
        raise SpecError(f"'eps' must be in (0, 0.5), got {eps}")

    def to_logit(x: np.ndarray) -> np.ndarray:
        p = _clip_into(x, eps, 1.0 - eps)
        q = np.subtract(1.0, p)
        np.divide(p, q, out=p)
        return np.log(p, out=p)

    return to_logit


def compile_input_map(spec: Mapping[str, Any]) -> Callable[[np.ndarray], np.ndarray]:
    """Validate one source's map onto its fusion scale (``mapped_linear`` fusion) and compile it.

    Parameters
    ----------
    spec : Mapping
        ``{"map": "identity"}``, ``{"map": "logit", "eps": e}`` or
        ``{"map": "knots", "x": [...], "y": [...]}``.

    Returns
    -------
    callable
        Maps a float64 array of shape (n,) onto the fusion scale, monotone increasing.

    Raises
    ------
    SpecError
        For an unknown map, ``eps`` outside (0, 0.5), or knots that are empty, of unequal
        length, not strictly increasing in x or decreasing in y.
    """
    kind = spec.get("map") if isinstance(spec, Mapping) else None
    if kind == "identity":
        return lambda x: x
    if kind == "logit":
        return _clipped_logit(spec)
    if kind == "knots":
        xs, ys = _floats(spec.get("x"), "map.x"), _floats(spec.get("y"), "map.y")
        if xs.size == 0 or xs.size != ys.size:
            raise SpecError("map knots need the same non-zero number of x and y values")
        if np.any(np.diff(xs) <= 0) or np.any(np.diff(ys) < 0):
            raise SpecError("map knots must be strictly increasing in x and non-decreasing in y")
        return lambda x: np.interp(x, xs, ys)
    raise SpecError(f"unknown source map {kind!r}; known: identity, logit, knots")


def compile_fusion(spec: Mapping[str, Any] | None, n_sources: int) -> Callable[[np.ndarray], np.ndarray] | None:
    """Validate a fusion spec and compile it into one dot product (plus the source maps).

    The standardisation is folded into the weights at compile time, so a call costs one pass
    over the sources.

    Parameters
    ----------
    spec : Mapping or None
        The ``fusion`` entry; ``None`` means a single source passes through.
    n_sources : int
        Number of input columns the spec must describe.

    Returns
    -------
    callable or None
        Maps a float64 array of shape (n, n_sources) to the fused score of shape (n,); ``None``
        for ``spec=None``.

    Raises
    ------
    SpecError
        When ``spec`` is None for several sources, the kind is unknown, a list has the wrong
        length, a scale is not positive or a weight is negative.
    """
    if spec is None:
        if n_sources != 1:
            raise SpecError(f"{n_sources} sources need a fusion spec")
        return None
    kind = spec.get("kind")
    if kind not in ("nonneg_linear", "mapped_linear"):
        raise SpecError(f"unknown fusion kind {kind!r}; known: nonneg_linear, mapped_linear")
    maps = None
    if kind == "mapped_linear":
        raw_maps = spec.get("maps")
        if not isinstance(raw_maps, list) or len(raw_maps) != n_sources:
            raise SpecError(f"'fusion.maps' must list {n_sources} source maps")
        maps = [compile_input_map(m) for m in raw_maps]
    mean = _floats(spec.get("mean"), "fusion.mean", n_sources)
    scale = _floats(spec.get("scale"), "fusion.scale", n_sources)
    weights = _floats(spec.get("weights"), "fusion.weights", n_sources)
    if np.any(scale <= 0):
        raise SpecError("fusion.scale must be positive")
    if np.any(weights < 0):
        raise SpecError("fusion.weights must be non-negative")
    coef = weights / scale  # fold the standardisation into one dot product
    offset = float(np.dot(weights, mean / scale))
    if maps is None:
        return lambda X: X @ coef - offset
    terms = [(j, float(coef[j]), m) for j, m in enumerate(maps)]

    def mapped(X: np.ndarray) -> np.ndarray:
        out = np.full(X.shape[0], -offset)
        for j, c, m in terms:  # one pass per source, no (n, k) temporary
            out += c * m(X[:, j])
        return out

    return mapped


def compile_spec(spec: Mapping[str, Any]) -> tuple[Callable[[np.ndarray], np.ndarray], list[str]]:
    """Validate a whole spec (the content of ``calibrator.json``) and compile it.

    Parameters
    ----------
    spec : Mapping
        ``{"format", "sources", "fusion", "calibrator"}`` (module docstring).

    Returns
    -------
    apply : callable
        Takes (n,) scores for one source or an (n, k) array for k fused sources; returns (n,)
        calibrated scores.
    sources : list of str
        The input column order.

    Raises
    ------
    SpecError
        For another format version, missing source names, or an invalid fusion or calibrator.
    """
    if not isinstance(spec, Mapping):
        raise SpecError("calibrator spec must be a JSON object")
    if spec.get("format") != FORMAT:
        raise SpecError(f"unsupported spec format {spec.get('format')!r}; this code reads {FORMAT}")
    sources = spec.get("sources")
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise SpecError("'sources' must be a non-empty list of column names")
    calibrate = compile_calibrator(spec.get("calibrator") or {})
    fuse = compile_fusion(spec.get("fusion"), len(sources))

    def apply(scores: Any) -> np.ndarray:
        arr = score_shape(np.asarray(scores, dtype=np.float64), list(sources))
        return calibrate(arr) if fuse is None else calibrate(fuse(arr))

    return apply, list(sources)


def score_shape(arr: np.ndarray, sources: list[str]) -> np.ndarray:
    """Check and reshape scores to what the calibrator takes.

    Shared by the JSON and the joblib backends, so a wrong shape is refused in the same words
    whichever file was loaded.

    Parameters
    ----------
    arr : ndarray
        The caller's scores as float64.
    sources : list of str
        The artifact's input columns.

    Returns
    -------
    ndarray
        Shape (n,) for one source ((n, 1) is accepted and flattened), (n, k) for k fused
        sources.

    Raises
    ------
    ValueError
        For any other shape.
    """
    k = len(sources)
    if k == 1:
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(f"expected a 1-D array of scores, got shape {arr.shape}")
        return arr
    if arr.ndim != 2 or arr.shape[1] != k:
        raise ValueError(f"expected an (n, {k}) array with columns {sources}, got shape {arr.shape}")
    return arr
