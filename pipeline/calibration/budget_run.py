"""Rounds of a budgeted collection: what to buy next, what was learnt, when to stop.

The driver (``collect`` against a real API, ``plan`` against a simulated one, the benchmark
against generated data) owns the money; this class owns the decisions, from the local scores of
the whole dataset (free) and the API scores bought so far::

    run = BudgetRun(local, groups, rule, cost=per_query_cost)
    while (purchase := run.next_round(remaining_budget)).queries:
        run.add(purchase, api_scores_of(purchase.queries))
        if run.measure().met:
            break

Rounds are deterministic for a seed: a resumed run that finds the bought pairs in the cache
makes the same choices again, for free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from pipeline.calibration.budget import (
    Band,
    band_grid,
    band_priority,
    curve_band,
    query_profiles,
    stratified_order,
    take_within,
)
from pipeline.calibration.metrics import METRICS, MetricValue, agreement

#: why a run stopped
STOP_TARGET, STOP_BUDGET, STOP_EXHAUSTED = "target met", "budget spent", "every query bought"


@dataclass(frozen=True)
class BudgetRule:
    """The targets and how rounds are cut (``collect.budget`` without the money)."""

    #: the calibration is enough when the band of the fitted curve is at most this wide ...
    band: float = 0.02
    #: ... over these quantile levels of the local scores (0.9, 0.99: the top decile but its last percent)
    region: tuple[float, float] = (0.9, 0.99)
    #: and the held-out agreement interval (of ``agreement_metric``) at most this wide; None: band only
    agreement: float | None = None
    agreement_metric: str = "mae"
    #: pairs bought per round (the last may be smaller: the budget's rest)
    round_pairs: int = 500
    #: share of every round drawn uniformly at random: where held-out agreement is measured
    uniform_share: float = 0.2
    #: quantile bins of the queries' best local score in the first round
    strata: int = 5
    n_bootstrap: int = 100
    confidence: float = 0.95
    grid_points: int = 21
    #: folds of the held-out agreement
    n_splits: int = 5
    #: rounds in a row that must meet the targets before the run stops
    confirm_rounds: int = 2

    def __post_init__(self) -> None:
        if not self.band > 0:
            raise ValueError(f"band must be > 0, got {self.band}")
        if self.agreement is not None and not self.agreement > 0:
            raise ValueError(f"agreement must be > 0 or None, got {self.agreement}")
        if self.agreement_metric not in METRICS:
            raise ValueError(f"agreement_metric must be one of {METRICS}, got {self.agreement_metric!r}")
        if not 0.0 <= self.uniform_share <= 1.0:
            raise ValueError(f"uniform_share must lie in [0, 1], got {self.uniform_share}")
        if self.round_pairs < 1 or self.strata < 1 or self.n_bootstrap < 2 or self.grid_points < 2:
            raise ValueError("round_pairs, strata >= 1; n_bootstrap, grid_points >= 2")
        if self.confirm_rounds < 1:
            raise ValueError(f"confirm_rounds must be >= 1, got {self.confirm_rounds}")


@dataclass
class Purchase:
    """One round's queries (indices into the run's queries) and which were drawn uniformly."""

    queries: list[int]
    uniform: list[bool]

    @property
    def empty(self) -> bool:
        return not self.queries


@dataclass
class Round:
    """What one round bought and what was measured after it."""

    index: int
    queries: int
    pairs: int
    cost: float
    pairs_total: int
    cost_total: float
    band: float
    agreement: dict[str, float] | None = None
    met: bool = False

    def as_dict(self) -> dict:
        """JSON-ready: an unbounded band (the bought pairs do not reach the region yet) is null."""
        out = asdict(self)
        out["band"] = self.band if np.isfinite(self.band) else None
        return out


@dataclass
class BudgetRun:
    """The state of a budgeted collection over ``n_queries`` query groups.

    Parameters
    ----------
    local : ndarray of shape (n_pairs,)
        The local score of every pair of the dataset (rows grouped in any order).
    groups : ndarray of shape (n_pairs,)
        Query code of each pair, 0..n_queries-1 (the dataset's query order).
    rule : BudgetRule
    make : callable
        Returns an unfitted calibrator (the family ``fit`` will fit).
    cost : ndarray of shape (n_queries,), optional
        What buying each query costs in the budget's unit (default: its pairs).
    categories : sequence, optional
        A category per query, crossed with the first round's strata.
    seed : int
    """

    local: np.ndarray
    groups: np.ndarray
    rule: BudgetRule
    make: Callable[[], object]
    cost: np.ndarray | None = None
    categories: Sequence | None = None
    seed: int = 0
    rounds: list[Round] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.local = np.asarray(self.local, dtype=np.float64)
        self.codes, best, self.sizes = query_profiles(self.local, self.groups)
        n_q = self.sizes.size
        self.cost = self.sizes.astype(np.float64) if self.cost is None else np.asarray(self.cost, dtype=np.float64)
        if self.cost.shape != (n_q,):
            raise ValueError(f"cost must have one entry per query ({n_q}), got shape {self.cost.shape}")
        self._rows_by_query = np.argsort(self.codes, kind="stable")
        self._starts = np.cumsum(self.sizes) - self.sizes
        self.reference = np.full(self.local.size, np.nan)
        self.bought = np.zeros(n_q, dtype=bool)
        self.uniform = np.zeros(n_q, dtype=bool)  # bought as part of a round's uniform share
        self.grid = band_grid(self.local, self.rule.region, self.rule.grid_points)
        rng = np.random.default_rng([self.seed, 7919])
        self._uniform_order = rng.permutation(n_q)
        self._first_order = stratified_order(best, strata=self.rule.strata, categories=self.categories, seed=self.seed)
        self.band: Band | None = None
        self._within: list[bool] = []
        self._last = Purchase([], [])  # what the latest add() recorded: the round measure() reports

    # -- choosing ------------------------------------------------------------------------------

    @property
    def pairs_bought(self) -> int:
        return int(self.sizes[self.bought].sum())

    @property
    def cost_bought(self) -> float:
        return float(self.cost[self.bought].sum())

    def next_round(self, limit: float | None = None) -> Purchase:
        """The next round's queries: ``rule.uniform_share`` of ``rule.round_pairs`` uniformly at
        random, the rest stratified (first round) or where the band is widest (later rounds);
        within ``limit`` (the budget left, in the cost's unit) when given."""
        pairs = self.rule.round_pairs
        room = float("inf") if limit is None else float(limit)
        # a round is cut in pairs; the cost limit applies on top (it is what may not be crossed)
        pair_cost = self.sizes.astype(np.float64)
        skip = self.bought.copy()
        uniform = take_within(self._uniform_order, pair_cost, pairs * self.rule.uniform_share, skip)
        uniform = _within(uniform, self.cost, room)
        skip[uniform] = True
        room -= float(self.cost[uniform].sum())
        rest = pairs - int(self.sizes[uniform].sum())
        if self.band is None:
            order = self._first_order
        else:  # most band width per pair first; ties in the uniform order (seeded, stable)
            priority = band_priority(self.band, self.local, self.codes, self.sizes)
            rank = np.empty(self.sizes.size, dtype=np.intp)
            rank[self._uniform_order] = np.arange(self.sizes.size)
            order = np.lexsort((rank, -priority))
        chosen = _within(take_within(order, pair_cost, rest, skip), self.cost, room)
        return Purchase(uniform + chosen, [True] * len(uniform) + [False] * len(chosen))

    # -- learning ------------------------------------------------------------------------------

    def add(self, purchase: Purchase, reference: Sequence[np.ndarray]) -> None:
        """Record the API scores of a purchase's queries (one array per query, in its pair order)."""
        for q, is_uniform, scores in zip(purchase.queries, purchase.uniform, reference):
            rows = self.rows_of(q)
            scores = np.asarray(scores, dtype=np.float64)
            if scores.shape != rows.shape:
                raise ValueError(f"query {q}: {scores.size} API scores for {rows.size} pairs")
            self.reference[rows] = scores
            self.bought[q] = True
            self.uniform[q] = self.uniform[q] or is_uniform
        self._last = purchase

    def measure(self) -> Round:
        """Band and held-out agreement on everything bought so far; appends and returns the round."""
        rows = self.bought[self.codes]
        self.band = curve_band(
            self.local[rows],
            self.reference[rows],
            self.codes[rows],
            self.grid,
            self.make,
            n_bootstrap=self.rule.n_bootstrap,
            confidence=self.rule.confidence,
            seed=self.seed + len(self.rounds),
        )
        held_out = self.held_out_agreement()  # on the learning curve whether or not it is a target
        within = self.band.width <= self.rule.band and (
            self.rule.agreement is None
            or (held_out is not None and held_out["high"] - held_out["low"] <= self.rule.agreement)
        )
        self._within.append(bool(within))
        # the first round that dips under the target is often a lucky one (its band is itself an
        # estimate): the target must hold on the last ``confirm_rounds`` rounds
        met = len(self._within) >= self.rule.confirm_rounds and all(self._within[-self.rule.confirm_rounds :])
        last = self._last
        bought = np.asarray(last.queries, dtype=np.intp)
        entry = Round(
            index=len(self.rounds),
            queries=len(last.queries),
            pairs=int(self.sizes[bought].sum()),
            cost=float(self.cost[bought].sum()),
            pairs_total=self.pairs_bought,
            cost_total=self.cost_bought,
            band=self.band.width,
            agreement=held_out,
            met=bool(met),
        )
        self.rounds.append(entry)
        return entry

    def held_out_agreement(self) -> dict[str, float] | None:
        """``rule.agreement_metric`` of out-of-fold calibrated scores against the API, on the
        uniformly drawn queries only (a random sample of the dataset: the oversampled top would
        flatter or darken the figure), with its bootstrap interval over those queries."""
        from pipeline.calibration.calibrators import grouped_splits

        rows = np.flatnonzero(self.bought[self.codes])
        codes = self.codes[rows]
        if np.unique(codes).size < 2 or not self.uniform[codes].any():
            return None
        predictions = np.empty(rows.size)
        for train, test in grouped_splits(rows.size, codes, self.rule.n_splits, self.seed):
            model = self.make().fit(self.local[rows[train]], self.reference[rows[train]])
            predictions[test] = model.predict(self.local[rows[test]])
        keep = self.uniform[codes]
        figures, _ = agreement(
            predictions[keep],
            self.reference[rows[keep]],
            codes[keep],
            n_bootstrap=self.rule.n_bootstrap * 5,
            confidence=self.rule.confidence,
            seed=self.seed,
        )
        value: MetricValue = figures[self.rule.agreement_metric]
        return {"value": value.value, "low": value.low, "high": value.high}

    def rows_of(self, query: int) -> np.ndarray:
        """The pair rows of one query, in their order in the dataset."""
        return self._rows_by_query[self._starts[query] : self._starts[query] + self.sizes[query]]


def _within(queries: list[int], cost: np.ndarray, room: float) -> list[int]:
    """The prefix of ``queries`` whose summed cost stays within ``room`` (later cheaper ones too)."""
    out, total = [], 0.0
    for q in queries:
        if total + cost[q] <= room:
            out.append(q)
            total += float(cost[q])
    return out
