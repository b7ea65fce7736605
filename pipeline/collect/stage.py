"""The collect run: dataset in, every source's pending pairs scored into the cache, the
paired-score table and its sidecar out."""

from __future__ import annotations

import asyncio
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.api.client import resolve_api_key
from pipeline.collect.api_side import score_api
from pipeline.collect.local_side import score_in_process
from pipeline.collect.seed import seed_cache_from_table
from pipeline.collect.sources import (
    CollectError,
    Groups,
    SourceState,
    api_source,
    build_local_scorer,
    check_columns,
    local_configs,
    local_source,
    prepare,
    reference_api,
)
from pipeline.collect.summary import dry_run, print_summary, run_record, table_meta
from pipeline.core.cache import ScoreCache, pair_key
from pipeline.core.files import atomic_write_json, utc_now
from pipeline.data.dataset import Dataset, load_dataset
from pipeline.runtime.text import preprocess

if TYPE_CHECKING:
    from pipeline.collect.budgeted import BudgetOutcome, PlanEstimate
    from pipeline.config.collect import PlanConfig, ScoringSettings
    from pipeline.scorers.base import Scorer


@dataclass
class CollectResult:
    output: Path | None
    #: the sidecar (``<output>.meta.json``)
    meta: dict[str, Any]
    sources: list[SourceState]
    #: this run's account (``<output>.run.json``): times, and per column cached/scored/requests/cost
    run: dict[str, Any]
    #: a budgeted run's rounds and selection (``collect.budget.enabled``)
    budget: BudgetOutcome | None = None
    #: ``plan``'s estimate (``pilot``)
    plan: PlanEstimate | None = None


def score_local(
    cfg: ScoringSettings, groups: Groups, src: SourceState, cache_path: Path, stop: threading.Event, position: int
) -> None:
    """Score the pending pairs of one local source: on Ray when it has workers, else here."""
    if src.workers is not None:
        from pipeline.collect.ray_backend import score_on_ray

        score_on_ray(cfg, groups, src, cache_path, stop, position)
    else:
        score_in_process(cfg, groups, src, cache_path, stop, position)


def collect(
    cfg: ScoringSettings,
    *,
    scorers: dict[str, Scorer] | None = None,
    out=None,
    pilot: PlanConfig | None = None,
) -> CollectResult:
    """Run the stage; ``scorers`` (column -> Scorer) replaces ``build_scorer`` (tests, notebooks).

    With ``pilot`` (``python -m pipeline plan``): the local pass and one pilot round of
    ``collect.budget``'s choosing only, then the estimate of what the target needs; no table is
    written (the pilot's pairs are cached for the collect that follows)."""
    out = out or sys.stdout
    c = cfg.collect
    started = utc_now()
    local_cfgs = local_configs(cfg) if c.run_local else {}
    check_columns(cfg, list(local_cfgs))
    if not c.run_api and not c.run_local:
        raise CollectError("collect.run_api and collect.run_local are both false: nothing to collect")

    if pilot is None and not c.budget.enabled and (c.budget.pairs is not None or c.budget.cost is not None):
        limit = "pairs" if c.budget.pairs is not None else "cost"
        print(
            f"warning: collect.budget.{limit} is set but collect.budget.enabled is false: every pair is collected, "
            "without a budget (add collect.budget.enabled=true to buy within it)",
            file=sys.stderr,
        )
    full = load_dataset(c.dataset)
    # collect.max_queries first samples the candidates; a budget then buys among them
    dataset = candidates = full.sample(c.max_queries, cfg.seed)
    groups: Groups = [
        (preprocess(q.text, cfg.text), [preprocess(d.text, cfg.text) for d in q.documents]) for q in dataset.queries
    ]
    keys = [[pair_key(query, doc) for doc in docs] for query, docs in groups]

    api = api_source(cfg) if c.run_api else None
    if c.dry_run:
        dry_run(cfg, dataset, groups, keys, api, list(local_cfgs), out)
        return CollectResult(None, {}, [api] if api else [], {})

    sources: list[SourceState] = []
    cache_path = Path(c.cache)
    try:
        with ScoreCache(cache_path) as cache:
            seeded = seed_cache_from_table(cfg, full, cache)
            if seeded:
                print(
                    f"seeded the score cache with {seeded} score(s) from {c.output} (same dataset and preprocessing; "
                    f"keyed by the fingerprints its sidecar records)",
                    file=out,
                )
            if api is not None:
                prepare(cache, api, keys, sources)
                if api.n_pending:
                    resolve_api_key(cfg.api)  # fail on a missing key before loading any model
            for src in _local_sources(cfg, local_cfgs, scorers or {}):  # models load before any paid request
                prepare(cache, src, keys, sources)
            needs_api = api is not None and api.n_pending > 0
            budget = None
            with reference_api(cfg, needs_api) as run_cfg:
                if pilot is not None:
                    if api is None:
                        raise CollectError("plan needs the API column: collect.run_api=true")
                    estimate = _budgeted(run_cfg, dataset, groups, keys, sources, cache, cache_path, out, pilot)
                    return CollectResult(None, {}, sources, {}, plan=estimate)
                if c.budget.enabled and api is not None:
                    budget = _budgeted(run_cfg, dataset, groups, keys, sources, cache, cache_path, out)
                    dataset = dataset.subset(budget.bought)
                    keys = [keys[q] for q in budget.bought]
                else:
                    run_sources(run_cfg, groups, sources, cache, cache_path)
            columns = _assemble(cfg, dataset, keys, sources, cache)
    finally:
        for src in sources:
            src.close()

    output = Path(c.output)
    from pipeline.data.table import write_table, write_table_meta

    write_table(output, columns)
    meta = table_meta(cfg, dataset, sources, sampled_from=len(full.queries) if dataset is not full else None)
    if budget is not None:
        meta["budget"] = budget.sidecar(candidates, c.budget, cfg.seed)
    write_table_meta(output, meta)
    record = run_record(dataset, sources, started)
    atomic_write_json(run_record_path(output), record)
    print_summary(sources, output, out)
    if budget is not None:
        from pipeline.collect.budget_report import write_budget_report

        write_budget_report(budget, c.budget, candidates, out)
    return CollectResult(output, meta, sources, record, budget)


def _budgeted(
    cfg: ScoringSettings,
    dataset: Dataset,
    groups: Groups,
    keys: list[list[str]],
    sources: list[SourceState],
    cache: ScoreCache,
    cache_path: Path,
    out,
    pilot: PlanConfig | None = None,
) -> BudgetOutcome | PlanEstimate:
    """Local columns over the whole dataset (free), then the API column in budgeted rounds (or
    one pilot round and the estimate, with ``pilot``)."""
    from pipeline.collect.budgeted import collect_budgeted, plan_budget

    run_sources(cfg, groups, [s for s in sources if s.kind == "local"], cache, cache_path)
    column = cfg.collect.budget.column or cfg.collect.local_col
    chooser = next((s for s in sources if s.kind == "local" and s.column == column), None)
    if chooser is None:
        raise CollectError(
            f"collect.budget.column={column!r}: no local column of that name "
            f"(local columns: {[s.column for s in sources if s.kind == 'local']})"
        )
    api = next(s for s in sources if s.kind == "api")
    if pilot is not None:
        return plan_budget(cfg, dataset, groups, keys, api, chooser, cache, pilot, out)
    return collect_budgeted(cfg, dataset, groups, keys, api, chooser, cache, out)


def run_record_path(output: Path) -> Path:
    """``<table>.run.json``: beside the table, untracked (``*.run.json`` in .gitignore)."""
    return output.with_name(output.name + ".run.json")


def _local_sources(cfg: ScoringSettings, local_cfgs: dict, scorers: dict[str, Scorer]) -> list[SourceState]:
    """Each local column's source: its scorer in this process, or (``collect.ray.enabled``) the
    Ray workers that hold it; the driver then never loads a model, the workers report the
    fingerprints."""
    out: list[SourceState] = []
    on_ray = {c: lcfg for c, lcfg in local_cfgs.items() if c not in scorers} if cfg.collect.ray.enabled else {}
    try:
        for column, lcfg in local_cfgs.items():
            if column in on_ray:
                continue
            scorer = scorers.get(column) or build_local_scorer(lcfg, cfg)
            src = local_source(column, lcfg, scorer.fingerprint(), scorer.score_type, scorer=scorer)
            src.stats = getattr(scorer, "stats", None)  # an engine column's requests, retries, tokens
            out.append(src)
        if on_ray:
            from pipeline.collect.ray_backend import start_workers

            workers = start_workers(cfg, on_ray)
            for column, lcfg in on_ray.items():
                info = workers.columns[column]
                out.append(local_source(column, lcfg, info["fingerprint"], info["score_type"], workers=workers))
    except BaseException:
        for src in out:
            src.close()
        raise
    order = list(local_cfgs)
    return sorted(out, key=lambda s: order.index(s.column))


def _assemble(
    cfg: ScoringSettings, dataset: Dataset, keys: list[list[str]], sources: list[SourceState], cache: ScoreCache
) -> dict[str, list[Any]]:
    c = cfg.collect
    columns: dict[str, list[Any]] = {
        c.query_col: [q.query_id for q in dataset.queries for _ in q.documents],
        c.doc_col: [d.doc_id for q in dataset.queries for d in q.documents],
    }
    if c.label_col and dataset.has_labels:
        columns[c.label_col] = [np.nan if d.label is None else d.label for q in dataset.queries for d in q.documents]
    flat = [k for group in keys for k in group]
    for src in sources:
        found = cache.get_many(src.hash, flat)
        missing = sum(1 for k in flat if k not in found)
        if missing:
            raise CollectError(f"{src.column}: {missing} pair(s) have no score after the run; re-run to resume")
        columns[src.column] = [found[k] for k in flat]
    return columns


def run_sources(
    cfg: ScoringSettings, groups: Groups, sources: list[SourceState], cache: ScoreCache, cache_path: Path
) -> None:
    """Score every source's pending pairs: the local ones in a thread while the API requests are
    in flight on this thread's event loop (``collect.overlap_local_and_api``), else one by one."""
    api = [s for s in sources if s.kind == "api" and s.n_pending]
    local = [s for s in sources if s.kind == "local" and s.n_pending]
    stop = threading.Event()
    if not cfg.collect.overlap_local_and_api or not api or not local:
        for src in local:
            score_local(cfg, groups, src, cache_path, stop, position=0)
        for src in api:
            asyncio.run(score_api(cfg, groups, src, cache))
        return

    def locals_in_turn() -> None:
        for src in local:
            score_local(cfg, groups, src, cache_path, stop, position=1)

    async def both() -> None:
        thread_task = asyncio.ensure_future(asyncio.to_thread(locals_in_turn))
        api_task = asyncio.ensure_future(score_api(cfg, groups, api[0], cache))
        try:
            done, _ = await asyncio.wait({thread_task, api_task}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            await asyncio.gather(thread_task, api_task)
        finally:
            stop.set()
            api_task.cancel()
            await asyncio.gather(thread_task, api_task, return_exceptions=True)

    asyncio.run(both())
