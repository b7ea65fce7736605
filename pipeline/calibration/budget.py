"""Which query groups to buy API scores for, and when the calibration has enough of them.

Local scores cost nothing and are known for the whole dataset before a single pair is paid for;
API scores are bought in rounds of whole query groups (per-query rank metrics need whole groups).
This module is the decision side, pure numpy + the project's calibrators, so the collect stage,
``python -m pipeline plan`` and the benchmark all run the same rule:

* :func:`curve_band` -- the bootstrap band (over whole queries, as everywhere else in the report)
  of the fitted calibration curve, the fit +- z standard deviations, on a grid of local-score
  quantiles: how well the bought pairs pin the map down where it matters. A grid point outside the bought pairs' local-score range
  has an unbounded band: a monotone calibrator extrapolates flat, and a flat guess is not
  knowledge.
* :func:`stratified_order` -- the first round: query groups spread over strata of their
  local-score profile (their best document's local score; and a ``meta`` category when given),
  an equal share from each, so every region of the score range is covered. Reranker scores are
  skewed (most documents of a query score near 0): a uniform sample spends most of the budget
  where the curve is already known and leaves the top of the range, the one that decides the
  top results, thin.
* :func:`band_priority` -- later rounds: the groups whose documents fall where the band is
  widest, per pair they cost.
* a uniform part: a share of every round drawn uniformly at random, on which held-out agreement
  is measured, so the reported figures describe the dataset, not the oversampled top.

:class:`BudgetRun` runs the rounds: it says which queries to buy next, takes the API scores
back, and measures the band and the agreement after each round.

Everything is deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from pipeline.calibration.groups import query_codes


@dataclass(frozen=True)
class Band:
    """A bootstrap band of the fitted curve on ``grid``: ``lower``/``upper`` per grid point."""

    grid: np.ndarray
    lower: np.ndarray
    upper: np.ndarray

    @property
    def widths(self) -> np.ndarray:
        return self.upper - self.lower

    @property
    def width(self) -> float:
        """The widest point of the band (``inf`` where the bought pairs do not reach)."""
        return float(np.max(self.widths)) if self.grid.size else float("inf")

    def width_at(self, scores: np.ndarray) -> np.ndarray:
        """The band's width at each local score, for ranking purchases: interpolated inside the
        grid; an unbounded point counts as four times the widest bounded one (plus 1), so pairs
        that would bound it come first; beyond the grid's ends, the end's width if it is
        unbounded (a pair out there is what bounds it), else 0 (the region does not need it)."""
        scores = np.asarray(scores, dtype=np.float64)
        widths = self.widths
        if not self.grid.size:
            return np.zeros(scores.shape)
        bounded = widths[np.isfinite(widths)]
        unbounded = (4.0 * float(bounded.max()) if bounded.size else 0.0) + 1.0
        finite = np.where(np.isfinite(widths), widths, unbounded)
        inside = np.interp(scores, self.grid, finite)
        below = finite[0] if not np.isfinite(widths[0]) else 0.0
        above = finite[-1] if not np.isfinite(widths[-1]) else 0.0
        return np.where(scores < self.grid[0], below, np.where(scores > self.grid[-1], above, inside))


def band_grid(local: np.ndarray, region: tuple[float, float], points: int = 21) -> np.ndarray:
    """``points`` local-score quantiles evenly spaced over ``region`` (quantile levels, e.g.
    (0.9, 0.99) for the top decile but its last percent), from the whole dataset's local scores."""
    lo, hi = region
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"region must be quantile levels 0 <= lo < hi <= 1, got {region}")
    return np.unique(np.quantile(np.asarray(local, dtype=np.float64), np.linspace(lo, hi, points)))


def curve_band(
    local: np.ndarray,
    reference: np.ndarray,
    groups: np.ndarray,
    grid: np.ndarray,
    make: Callable[[], object],
    *,
    n_bootstrap: int = 100,
    confidence: float = 0.95,
    seed: int = 0,
) -> Band:
    """Normal band of ``make().fit(local, reference)`` on ``grid``: the fit plus or minus the
    ``confidence`` quantile of the normal times the curve's standard deviation over query resamples.

    Parameters
    ----------
    local, reference : ndarray of shape (n_pairs,)
        The bought pairs' local and API scores.
    groups : ndarray of shape (n_pairs,)
        Their query ids: a resample draws whole queries with replacement.
    grid : ndarray
        Local scores to evaluate the curve at, increasing.
    make : callable
        Returns an unfitted calibrator (scikit-learn ``fit``/``predict``).
    n_bootstrap : int, default=100
        Resamples.
    confidence : float, default=0.95
        Coverage of the band at each grid point.
    seed : int, default=0
        Seed of the resamples.

    Returns
    -------
    Band
        Unbounded (``-inf``/``inf``) at grid points outside the bought local scores' range.
    """
    local = np.asarray(local, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    codes = query_codes(groups)
    n_q = int(codes.max()) + 1 if codes.size else 0
    if n_q < 2:
        return Band(grid, np.full(grid.size, -np.inf), np.full(grid.size, np.inf))
    rng = np.random.default_rng(seed)
    curves = np.empty((n_bootstrap, grid.size))
    for b in range(n_bootstrap):
        weight = np.bincount(rng.integers(0, n_q, n_q), minlength=n_q)[codes].astype(np.float64)
        rows = weight > 0
        curves[b] = make().fit(local[rows], reference[rows], sample_weight=weight[rows]).predict(grid)
    # a normal band around the fit, from the resamples' standard deviation: the 2.5%/97.5%
    # percentiles of 100 resamples rest on a handful of curves each, and a stopping rule that
    # stops on the first narrow band picks that noise (coverage of a known map where uniform
    # sampling stopped, 56 seeds: 0.88 with percentiles, 0.92 with this; bench/README.md)
    center = make().fit(local, reference).predict(grid)
    half = NormalDist().inv_cdf(0.5 + confidence / 2.0) * curves.std(axis=0, ddof=1)
    lower, upper = center - half, center + half
    outside = (grid < local.min()) | (grid > local.max())
    return Band(grid, np.where(outside, -np.inf, lower), np.where(outside, np.inf, upper))


def query_profiles(local: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(codes, best, sizes)``: each pair's query code, each query's best local score and size."""
    codes = query_codes(groups)
    n_q = int(codes.max()) + 1 if codes.size else 0
    best = np.full(n_q, -np.inf)
    np.maximum.at(best, codes, np.asarray(local, dtype=np.float64))
    return codes, best, np.bincount(codes, minlength=n_q)


def stratified_order(
    best: np.ndarray, *, strata: int = 5, categories: Sequence | None = None, seed: int = 0
) -> np.ndarray:
    """An order of the queries that takes them round-robin from strata of their best local score
    (quantile bins of the score, tied values kept together; crossed with ``categories`` when given), each stratum shuffled by ``seed``:
    any prefix covers every stratum about equally, whatever its share of the dataset.

    Parameters
    ----------
    best : ndarray of shape (n_queries,)
        Each query's best local score.
    strata : int, default=5
        Quantile bins of ``best``.
    categories : sequence, optional
        A category per query (the dataset's ``meta``), crossed with the bins.
    seed : int, default=0
        Seed of the shuffles.

    Returns
    -------
    ndarray of shape (n_queries,)
        Query indices.
    """
    best = np.asarray(best, dtype=np.float64)
    n_q = best.size
    rng = np.random.default_rng(seed)
    # bins of the score, not of the rank: when most queries' best score ties (near 0), the tie
    # is one stratum and the few queries above it still get their turn
    edges = np.unique(np.quantile(best, np.linspace(0, 1, strata + 1)[1:-1])) if n_q else np.empty(0)
    stratum = np.searchsorted(edges, best, side="left")
    if categories is not None:
        kinds = query_codes(np.asarray(categories))
        stratum = stratum * (int(kinds.max()) + 1) + kinds
    queues = [rng.permutation(np.flatnonzero(stratum == s)) for s in np.unique(stratum)]
    order = []
    for k in range(max((q.size for q in queues), default=0)):
        order.extend(int(q[k]) for q in queues if k < q.size)
    return np.asarray(order, dtype=np.intp)


def band_priority(band: Band, local: np.ndarray, codes: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Each query's value per pair it costs: the band's width at its documents' local scores,
    summed and divided by its size. Queries with no document in the band's region are worth 0."""
    n_q = sizes.size
    return np.bincount(codes, weights=band.width_at(local), minlength=n_q) / np.maximum(sizes, 1)


def take_within(order: np.ndarray, cost: np.ndarray, limit: float, skip: np.ndarray) -> list[int]:
    """Queries from ``order`` not in ``skip``, in order, while their summed ``cost`` stays within
    ``limit``: whole groups; one that would cross the limit is passed over (nothing is bought
    beyond it) and cheaper ones after it are still taken, until the limit is reached exactly."""
    out, total = [], 0.0
    for q in order:
        if skip[q] or total + cost[q] > limit:
            continue
        out.append(int(q))
        total += float(cost[q])
        if total >= limit:
            break
    return out
