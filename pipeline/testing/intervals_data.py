"""Generated pairs with a known noise level per score, for the interval coverage test and bench.

The local score ``x`` is uniform on [0, 1]; the reference is a monotone map of it plus noise of
standard deviation ``noise(x)``, clipped to [0, 1], with a shared offset per query (real API
scores of one query move together). ``heteroscedastic=True`` makes the noise grow with ``x``
(0.01 at 0 to 0.13 at 1), so a good interval is narrow for low scores and wide for high ones.
"""

from __future__ import annotations

import numpy as np


def interval_sample(n_queries: int, *, docs: int = 10, seed: int = 0, heteroscedastic: bool = False):
    """``(x, reference, groups, noise_sd)`` arrays of ``n_queries * docs`` pairs."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_queries), docs)
    x = rng.uniform(0.0, 1.0, groups.size)
    sd = 0.01 + 0.12 * x if heteroscedastic else np.full(x.size, 0.06)
    shared = rng.normal(0.0, 0.3, n_queries)[groups]  # a query's offset, in units of its noise
    noise = sd * (np.sqrt(1 - 0.3**2) * rng.normal(size=x.size) + shared)
    reference = np.clip(1 / (1 + np.exp(-6 * (x - 0.55))) + noise, 0.0, 1.0)
    return x, reference, groups, sd
