"""A budgeted collection: the local scores of every pair first (free), then API scores bought in
rounds of whole query groups until the calibration is pinned down or the budget is spent.

What to buy and when to stop is :class:`pipeline.calibration.budget_run.BudgetRun`'s; this
module pays: each round's pending pairs go through the ordinary API path with a
:class:`~pipeline.api.spend.SpendGuard` that books every attempt in the ledger before it is
sent. Pairs already in the score cache cost nothing, so a killed run, or a re-run with a larger
budget, replays the same rounds for free and buys only what is new.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.api.collector import estimate_plan, plan_requests
from pipeline.api.spend import BudgetExhausted, SpendGuard, SpendLedger, Spent
from pipeline.calibration.budget_run import Purchase
from pipeline.collect.api_side import score_api
from pipeline.collect.sources import CollectError, Groups, SourceState, pending_pairs
from pipeline.core.cache import ScoreCache
from pipeline.core.files import atomic_write_json

if TYPE_CHECKING:
    from pipeline.calibration.budget_run import BudgetRun, Round
    from pipeline.config.collect import BudgetConfig, ScoringSettings
    from pipeline.data.dataset import Dataset


@dataclass
class BudgetOutcome:
    """Which queries were bought (indices into the dataset's queries), the rounds, why it stopped."""

    bought: list[int]
    uniform: list[int]
    rounds: list[Round]
    purchases: list[list[int]]
    stop: str
    spent_pairs: int
    spent_cost: float
    full_pairs: int
    full_cost: float
    run: BudgetRun
    #: the account's spend after each round (every run's, from the ledger)
    spent_after: list[Spent]

    def sidecar(self, dataset: Dataset, budget: BudgetConfig, seed: int) -> dict[str, Any]:
        """The sidecar's ``budget`` block: the rule, the selection (query ids per round, the
        uniform part) and why it stopped; deterministic, so the same purchase writes the same bytes."""
        ids = [q.query_id for q in dataset.queries]
        return {
            "rule": rule_dict(budget),
            "seed": seed,
            "column": budget.column,
            "rounds": [[ids[q] for q in purchase] for purchase in self.purchases],
            "uniform_queries": sorted(ids[q] for q in self.uniform),
            "stop": self.stop,
        }


def rule_dict(budget: BudgetConfig) -> dict[str, Any]:
    keys = ("pairs", "cost", "band", "region", "agreement", "agreement_metric", "round_pairs", "confirm_rounds", "uniform_share",
            "strata", "calibrator", "n_bootstrap", "confidence")  # fmt: skip
    return {k: (list(getattr(budget, k)) if k == "region" else getattr(budget, k)) for k in keys}


def build_run(cfg: ScoringSettings, dataset: Dataset, local: np.ndarray, cost: np.ndarray) -> BudgetRun:
    """The run's decision side from ``collect.budget`` (the rule, the calibrator family, strata)."""
    from pipeline.calibration.budget_run import BudgetRule, BudgetRun
    from pipeline.calibration.calibrators import make_calibrator

    b = cfg.collect.budget
    rule = BudgetRule(
        band=b.band,
        region=(float(b.region[0]), float(b.region[1])),
        agreement=b.agreement,
        agreement_metric=b.agreement_metric,
        round_pairs=b.round_pairs,
        confirm_rounds=b.confirm_rounds,
        uniform_share=b.uniform_share,
        strata=b.strata,
        n_bootstrap=b.n_bootstrap,
        confidence=b.confidence,
    )
    family = b.calibrator
    sizes = [len(q.documents) for q in dataset.queries]
    categories = [q.category or "" for q in dataset.queries]
    return BudgetRun(
        local,
        np.repeat(np.arange(len(sizes)), sizes),
        rule,
        lambda: make_calibrator(family),
        cost=cost,
        categories=categories if any(categories) else None,
        seed=cfg.seed,
    )


def query_costs(cfg: ScoringSettings, groups: Groups, pending: list[list[int]], in_money: bool) -> np.ndarray:
    """What buying each query's pending pairs costs: money through the cost model (the dry run's
    estimate), else pairs."""
    if not in_money:
        return np.array([len(p) for p in pending], dtype=np.float64)
    return np.array(
        [estimate_plan(cfg.api, plan_requests(cfg.api, [g], [p])).cost if p else 0.0 for g, p in zip(groups, pending)]
    )


def _local_scores(cache: ScoreCache, local: SourceState, keys: list[list[str]]) -> np.ndarray:
    """The choosing column's score of every pair, in dataset order (scored by the local pass)."""
    flat = [k for group in keys for k in group]
    found = cache.get_many(local.hash, flat)
    if len(found) < len(set(flat)):
        raise CollectError(f"{local.column}: local scores missing after the local pass; re-run to resume")
    return np.array([found[k] for k in flat], dtype=np.float64)


def _whole_dataset(cfg: ScoringSettings, groups: Groups, keys: list[list[str]]):
    """The cost model's estimate for buying every pair (what a budget is compared with)."""
    return estimate_plan(cfg.api, plan_requests(cfg.api, groups, [list(range(len(g))) for g in keys]))


def _buy(
    cfg: ScoringSettings,
    groups: Groups,
    api: SourceState,
    pending: list[list[int]],
    queries: list[int],
    cache: ScoreCache,
    guard: SpendGuard,
) -> None:
    """Send the pending pairs of ``queries`` through the ordinary API path, booked by ``guard``;
    ``api`` keeps the run's account (scored, stats, cost, time) whatever happens."""
    chosen = set(queries)
    round_src = replace(api, pending=[p if q in chosen else [] for q, p in enumerate(pending)])
    try:
        if round_src.n_pending:
            asyncio.run(score_api(cfg, groups, round_src, cache, spend=guard))
    finally:
        api.scored, api.stats, api.cost = round_src.scored, round_src.stats, round_src.cost
        api.elapsed_s = round_src.elapsed_s


def _reported_rate(ledger: SpendLedger) -> float:
    """What the API reported over the cost model's estimate, over every run's answers on this
    account (a re-run that finds everything cached has none of its own); 1 before any."""
    rate = ledger.rate()
    return 1.0 if rate is None else rate


def _answers(cache: ScoreCache, api: SourceState, keys: list[list[str]], queries: list[int]) -> list[np.ndarray]:
    """The API scores of ``queries``, one array per query in its pair order (all cached)."""
    answers = cache.get_many(api.hash, [k for q in queries for k in keys[q]])
    return [np.array([answers[k] for k in keys[q]]) for q in queries]


def collect_budgeted(
    cfg: ScoringSettings,
    dataset: Dataset,
    groups: Groups,
    keys: list[list[str]],
    api: SourceState,
    local: SourceState,
    cache: ScoreCache,
    out=None,
) -> BudgetOutcome:
    """Buy rounds of ``api`` pairs (``cfg`` already points at a live API) chosen by the local
    scores of ``local`` (already scored for every pair). Returns what was bought."""
    out = out or sys.stdout
    b = cfg.collect.budget
    local_scores = _local_scores(cache, local, keys)
    in_money = b.cost is not None
    full_plan = _whole_dataset(cfg, groups, keys)
    with SpendLedger(b.ledger, api.hash, pairs=b.pairs, cost=b.cost) as ledger:
        guard = SpendGuard(cfg.api, ledger)
        before = ledger.spent()
        if before.pairs:
            print(
                f"budget: {before.pairs} pair(s), cost {before.cost:.4f} already spent on this API "
                f"({b.ledger}){f'; {before.open} request(s) of a stopped run counted as spent' if before.open else ''}",
                file=out,
            )
        pending, _ = pending_pairs(cache, api.hash, keys)
        run = build_run(cfg, dataset, local_scores, query_costs(cfg, groups, pending, in_money))
        purchases: list[list[int]] = []
        spent_after: list[Spent] = []  # the account's ledger after each round
        stop = ""
        while not stop:
            pairs_left, cost_left = ledger.remaining()
            purchase = run.next_round(cost_left if in_money else pairs_left)
            if purchase.empty:
                stop = "budget spent" if not run.bought.all() else "every query bought"
                break
            try:
                _buy(cfg, groups, api, pending, purchase.queries, cache, guard)
            except BudgetExhausted as exc:
                print(str(exc), file=out)  # its message starts "budget: "
                stop = "budget spent"
            pending, _ = pending_pairs(cache, api.hash, keys)
            # whole groups only: a query the budget cut short stays out (its pairs stay cached)
            kept = [(q, u) for q, u in zip(purchase.queries, purchase.uniform) if not pending[q]]
            if not kept:
                break
            bought = Purchase([q for q, _ in kept], [u for _, u in kept])
            run.add(bought, _answers(cache, api, keys, bought.queries))
            purchases.append(bought.queries)
            measured = run.measure()
            spent_after.append(ledger.spent())
            print(round_line(measured, b, spent_after[-1].cost if in_money else None), file=out, flush=True)
            if measured.met:
                stop = "target met"
        spent = ledger.spent()
        full_cost = full_plan.cost * _reported_rate(ledger)
    return BudgetOutcome(
        bought=[int(q) for q in np.flatnonzero(run.bought)],
        uniform=[int(q) for q in np.flatnonzero(run.uniform)],
        rounds=run.rounds,
        purchases=purchases,
        stop=stop or "budget spent",
        spent_pairs=spent.pairs,
        spent_cost=spent.cost,
        full_pairs=full_plan.pairs,
        full_cost=full_cost,
        run=run,
        spent_after=spent_after,
    )


def round_line(r: Round, b: BudgetConfig, spent_cost: float | None = None) -> str:
    """One round's printout; ``spent_cost`` (the ledger's, in a money budget) is what was spent."""
    agreement = ""
    if r.agreement is not None:
        a = r.agreement
        agreement = f"; {b.agreement_metric} {a['value']:.3f} [{a['low']:.3f}, {a['high']:.3f}]"
        if b.agreement is not None:
            agreement += f" (width target {b.agreement:g})"
    spent = f"{r.pairs_total} pairs" + (f", cost {spent_cost:.4f} spent" if spent_cost is not None else "")
    band = f"band {r.band:.4f}" if np.isfinite(r.band) else "band unbounded (no pair bought at the region's edge yet)"
    return (
        f"budget round {r.index + 1}: +{r.queries} queries ({r.pairs} pairs), {spent} in all; "
        f"{band} (target {b.band:g}){agreement}{' -> target met' if r.met else ''}"
    )


@dataclass
class PlanEstimate:
    """What ``plan`` found: the pilot, and the pairs and cost the budgeted run is estimated to need."""

    pilot_queries: int
    pilot_pairs: int
    pilot_band: float
    pairs: dict[str, float]  # estimate, low, high
    cost: dict[str, float]
    simulations: int
    met: int
    full_pairs: int
    full_cost: float
    spent_pairs: int
    spent_cost: float

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["pilot_band"] = self.pilot_band if np.isfinite(self.pilot_band) else None
        return out


def plan_budget(
    cfg: ScoringSettings,
    dataset: Dataset,
    groups: Groups,
    keys: list[list[str]],
    api: SourceState,
    local: SourceState,
    cache: ScoreCache,
    pilot: Any,
    out=None,
) -> PlanEstimate:
    """Buy one pilot round of ``pilot.pilot_pairs`` (booked in the budget's ledger, cached for the
    collect that follows), then simulate the rest of the budgeted run (:mod:`pipeline.calibration.budget_plan`)."""
    from pipeline.calibration.budget_plan import estimate_pairs

    out = out or sys.stdout
    b = cfg.collect.budget
    local_scores = _local_scores(cache, local, keys)
    pending, _ = pending_pairs(cache, api.hash, keys)
    money = query_costs(cfg, groups, pending, in_money=True)  # the cost model, for the estimate's cost
    full_plan = _whole_dataset(cfg, groups, keys)
    run = build_run(cfg, dataset, local_scores, money)
    rule = run.rule
    run.rule = replace(rule, round_pairs=pilot.pilot_pairs)
    purchase = run.next_round()
    run.rule = rule
    with SpendLedger(b.ledger, api.hash, pairs=b.pairs, cost=b.cost) as ledger:
        guard = SpendGuard(cfg.api, ledger)
        _buy(cfg, groups, api, pending, purchase.queries, cache, guard)
        spent = ledger.spent()
        rate = _reported_rate(ledger)
    run.add(purchase, _answers(cache, api, keys, purchase.queries))
    measured = run.measure()
    run.cost = run.cost * rate  # at the rate the API reported (the pilot's, and earlier runs')
    print(
        f"plan: pilot of {measured.pairs} pairs ({measured.queries} queries) bought; "
        + round_line(measured, b).split("; ", 1)[1],
        file=out,
    )
    estimate = estimate_pairs(run, simulations=pilot.simulations, seed=cfg.seed)
    result = PlanEstimate(
        pilot_queries=measured.queries,
        pilot_pairs=measured.pairs,
        pilot_band=measured.band,
        pairs={"estimate": estimate.pairs, "low": estimate.low, "high": estimate.high},
        cost={"estimate": estimate.cost, "low": estimate.cost_low, "high": estimate.cost_high},
        simulations=estimate.simulations,
        met=estimate.met,
        full_pairs=full_plan.pairs,
        full_cost=full_plan.cost * rate,
        spent_pairs=spent.pairs,
        spent_cost=spent.cost,
    )
    print(plan_summary(result, b), file=out)
    path = Path(b.report).with_name("plan.json")
    atomic_write_json(path, result.as_dict())
    print(f"wrote {path}", file=out)
    return result


def plan_summary(p: PlanEstimate, b: BudgetConfig) -> str:
    pairs, cost = p.pairs, p.cost
    target = f"band {b.band:g}" + (f" and an agreement interval of {b.agreement:g}" if b.agreement is not None else "")
    whole = f"the whole dataset: {p.full_pairs:,} pairs, cost {p.full_cost:.4f}"
    if p.met == 0:  # no estimate to give: every simulation ran out of queries
        lines = [
            f"plan: no simulation reached {target} before buying every query ({whole}). Loosen "
            "collect.budget.band or grow the dataset; or buy a larger pilot (plan.pilot_pairs): the noise the "
            "simulations draw comes from the pilot's out-of-fold residuals, which a pilot of few queries overstates"
        ]
    else:
        lines = [
            f"plan: to reach {target}: about {pairs['estimate']:,.0f} pairs in all ({pairs['low']:,.0f}-"
            f"{pairs['high']:,.0f} over {p.simulations} simulations), cost {cost['estimate']:.4f} "
            f"({cost['low']:.4f}-{cost['high']:.4f}); {whole}",
        ]
        if p.met < p.simulations:
            lines.append(
                f"plan: {p.simulations - p.met} of {p.simulations} simulations bought every query without reaching "
                "the target (counted at the whole dataset above): loosen collect.budget.band or grow the dataset"
            )
    limit = f"collect.budget.pairs={int(pairs['high']):d}" if p.met else "and a limit (collect.budget.pairs or .cost)"
    lines.append(
        f"plan: the pilot's pairs are cached and booked ({p.spent_pairs} pairs, cost {p.spent_cost:.4f} spent so far): "
        f"python -m pipeline collect with these settings (the same cache and collect.budget.ledger) and "
        f"collect.budget.enabled=true {limit} starts from them"
    )
    return "\n".join(lines)
