"""Paired scores with a known latent structure: where the best possible fusion is known.

Every document of every query has a latent relevance ``r`` (a query offset plus a document
term). Each local source sees ``r`` plus its own independent Gaussian noise, through a monotone
shape of its own (a reranker probability, a saturated probability, a cosine-like squash, an
exponential, a cubic); the reference is a third shape of ``r`` itself. With noise variances
``s_j^2`` the best estimate of ``r`` from the sources is the inverse-variance weighted mean of
the sources' ``r + noise_j`` -- the *known optimal fusion* -- so a fitted fusion can be scored by
the share of the optimum's rank gain over the best single source that it reaches.

Used by ``bench/bench_fusion.py`` and, smaller, by the fusion tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


#: source shapes: latent-plus-noise -> score (all strictly increasing)
SHAPES = {
    "probability": lambda a: _sigmoid(1.5 * a - 0.5),
    "saturated": lambda a: _sigmoid(3.0 * a + 2.0),
    "cosine": lambda a: 0.3 + 0.15 * np.tanh(0.6 * a),
    "exponential": lambda a: np.exp(0.8 * a),
    "cubic": lambda a: 0.5 + 0.05 * a + 0.02 * a**3,
}


@dataclass
class LatentSample:
    sources: np.ndarray  # (n, k) observed scores
    target: np.ndarray  # (n,) reference scores, a probability
    groups: np.ndarray  # (n,) query ids
    optimal: np.ndarray  # (n,) the known optimal fusion (inverse-variance mean of r + noise_j)


def latent_sample(
    shapes: tuple[str, ...],
    noise: tuple[float, ...],
    *,
    n_queries: int,
    docs: int | tuple[int, int] = 10,
    seed: int = 0,
) -> LatentSample:
    """``n_queries`` queries of ``docs`` documents each (or, for ``docs=(lo, hi)``, a number
    drawn uniformly from lo..hi per query, as real candidate lists vary); source j =
    ``SHAPES[shapes[j]](r + N(0, noise[j]))``."""
    if len(shapes) != len(noise):
        raise ValueError("one noise level per shape")
    rng = np.random.default_rng(seed)
    sizes = rng.integers(docs[0], docs[1] + 1, n_queries) if isinstance(docs, tuple) else docs
    groups = np.repeat(np.arange(n_queries), sizes)
    r = rng.normal(0.0, 0.8, n_queries)[groups] + rng.normal(size=groups.size)
    seen = np.column_stack([r + rng.normal(0.0, s, r.size) for s in noise])
    sources = np.column_stack([SHAPES[name](seen[:, j]) for j, name in enumerate(shapes)])
    precision = 1.0 / np.asarray(noise, dtype=np.float64) ** 2
    return LatentSample(sources, _sigmoid(2.0 * r - 0.3), groups, seen @ (precision / precision.sum()))


def skewed_map(x: np.ndarray) -> np.ndarray:
    """The known monotone map of :func:`skewed_sample`: a cubic, increasing on [0, 1], from 0.02
    to 0.92 (so a third-order calibrator can be exactly right and its band can cover it)."""
    x = np.asarray(x, dtype=np.float64)
    return 0.02 + 0.3 * x + 1.1 * x**2 - 0.5 * x**3


@dataclass
class SkewedSample:
    local: np.ndarray  # (n,) local scores in (0, 1), most near 0
    reference: np.ndarray  # (n,) skewed_map(local) + query effect + noise
    groups: np.ndarray  # (n,) query codes 0..n_queries-1


def skewed_sample(
    n_queries: int, *, docs: tuple[int, int] = (5, 40), noise: float = 0.05, query_noise: float = 0.02, seed: int = 0
) -> SkewedSample:
    """Paired scores shaped like a reranker's: each query has a relevance offset, its documents a
    latent relevance around it, and the local score is a steep sigmoid of that, so most pairs
    score near 0 (median ~0.03) and the top decile starts near 0.3; queries differ in how many
    high-scoring documents they hold. The reference is :func:`skewed_map` of the local score
    plus a per-query shift (``query_noise``) and pair noise (``noise``): the map the calibration
    should find is known exactly."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(docs[0], docs[1] + 1, n_queries)
    groups = np.repeat(np.arange(n_queries), sizes)
    offset = rng.normal(0.0, 1.2, n_queries)
    latent = offset[groups] - 2.5 + rng.normal(size=groups.size)
    local = _sigmoid(1.7 * latent)
    reference = skewed_map(local) + rng.normal(0.0, query_noise, n_queries)[groups] + rng.normal(0.0, noise, local.size)
    return SkewedSample(local, reference, groups)
