"""How many pairs a budgeted calibration will need, estimated from a pilot round.

After the pilot, the rest of the collection is simulated: the remaining rounds run with the same
rule, choosing queries exactly as the real run would, but each "purchase" draws its API scores
from a model of the pilot: the calibrator fitted on the pilot pairs, plus a per-query shift and
pair noise whose sizes are estimated from the pilot's residuals (the pair noise in bins of the
local score, since a reranker's disagreement with the API is rarely even). The pairs each
simulation needed to meet the target give the estimate and its interval. Only the pilot is paid
for; its pairs are cached, so the real run starts with them for free.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from pipeline.calibration.budget_run import BudgetRun

#: quantile bins of the local score in which the pilot's pair noise is estimated
NOISE_BINS = 5


@dataclass(frozen=True)
class PairsEstimate:
    """Pairs (and cost, in the run's cost unit) the simulated runs needed, in all (pilot included)."""

    pairs: float
    low: float
    high: float
    cost: float
    cost_low: float
    cost_high: float
    simulations: int
    met: int  # simulations that met the target before running out of queries

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def residual_model(run: BudgetRun) -> tuple[np.ndarray, np.ndarray, float, object]:
    """``(bin_edges, pair_sd_per_bin, query_sd, calibrator)`` from the bought pairs."""
    from pipeline.calibration.calibrators import grouped_splits

    rows = np.flatnonzero(run.bought[run.codes])
    x, y, codes = run.local[rows], run.reference[rows], run.codes[rows]
    model = run.make().fit(x, y)
    # out-of-fold residuals (whole queries held out): in-sample, the curve bends towards the few
    # queries that hold most of a sparse region, hiding exactly the query-level spread that
    # decides how many more queries that region needs
    residual = np.empty(rows.size)
    for train, test in grouped_splits(rows.size, codes, run.rule.n_splits, run.seed):
        residual[test] = y[test] - run.make().fit(x[train], y[train]).predict(x[test])
    _, inverse, counts = np.unique(codes, return_inverse=True, return_counts=True)
    query_mean = np.bincount(inverse, weights=residual) / counts
    within = residual - query_mean[inverse]
    edges = np.unique(np.quantile(x, np.linspace(0, 1, NOISE_BINS + 1)[1:-1]))
    bins = np.searchsorted(edges, x, side="right")
    # within-query deviations underestimate the pair noise by the query mean's own share
    correction = np.sqrt(counts[inverse] / np.maximum(counts[inverse] - 1, 1))
    sd = np.array(
        [
            float(np.sqrt(np.mean((within[bins == b] * correction[bins == b]) ** 2))) if np.any(bins == b) else 0.0
            for b in range(edges.size + 1)
        ]
    )
    pair_var = float(np.mean((within * correction) ** 2))
    query_var = max(0.0, float(np.var(query_mean)) - float(np.mean(pair_var / counts)))
    return edges, sd, float(np.sqrt(query_var)), model


def estimate_pairs(run: BudgetRun, *, simulations: int = 5, seed: int = 0, max_rounds: int = 1000) -> PairsEstimate:
    """Simulate the rest of ``run`` (after its pilot round) ``simulations`` times.

    Parameters
    ----------
    run : BudgetRun
        A run whose pilot has been bought and measured; left unchanged.
    simulations : int, default=5
        Simulated continuations; the interval is their range.
    seed : int, default=0
        Seed of the simulated API scores.
    max_rounds : int, default=1000
        A guard; a run also stops when every query is bought.

    Returns
    -------
    PairsEstimate
        Median and range of the pairs (and cost) at which the target was met.
    """
    edges, sd, query_sd, model = residual_model(run)
    expected = np.asarray(model.predict(run.local), dtype=np.float64)
    pair_sd = sd[np.searchsorted(edges, run.local, side="right")]
    pairs, costs, met = [], [], 0
    for s in range(simulations):
        rng = np.random.default_rng([seed, s])
        shift = rng.normal(0.0, query_sd, run.sizes.size)
        simulated = expected + shift[run.codes] + rng.normal(size=run.local.size) * pair_sd
        sim = copy.deepcopy(run)
        sim.seed = run.seed + 1000 * (s + 1)  # other bootstrap draws than the real run's
        done = bool(sim.rounds and sim.rounds[-1].met)
        for _ in range(max_rounds):
            if done:
                break
            purchase = sim.next_round()
            if purchase.empty:
                break
            sim.add(purchase, [simulated[sim.rows_of(q)] for q in purchase.queries])
            done = sim.measure().met
        met += int(done)
        pairs.append(sim.pairs_bought)
        costs.append(sim.cost_bought)
    return PairsEstimate(
        pairs=float(np.median(pairs)),
        low=float(np.min(pairs)),
        high=float(np.max(pairs)),
        cost=float(np.median(costs)),
        cost_low=float(np.min(costs)),
        cost_high=float(np.max(costs)),
        simulations=simulations,
        met=met,
    )
