"""Scoring the API column: one rate-limited client for the whole run (the limits belong to the
account, not to a worker), every response cached as it arrives."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.api.client import ApiClient, ClientStats, resolve_api_key
from pipeline.api.collector import collect_api, cost_of, plan_requests
from pipeline.collect.progress import bar
from pipeline.collect.sources import Groups, SourceState, api_source, prepare, reference_api
from pipeline.core.cache import ScoreCache, pair_key
from pipeline.core.console import print_warnings

if TYPE_CHECKING:
    from pipeline.api.spend import SpendGuard
    from pipeline.config.api import ApiConfig
    from pipeline.config.collect import ScoringSettings


async def score_api(
    cfg: ScoringSettings, groups: Groups, src: SourceState, cache: ScoreCache, spend: SpendGuard | None = None
) -> None:
    """Send the source's pending pairs; with ``spend``, each attempt is booked against a budget
    first (a request that would cross it raises ``BudgetExhausted`` before it is sent)."""
    plan = plan_requests(cfg.api, groups, src.pending)
    progress_bar = bar(src.n_pending, src.column, 0, cfg.collect.progress)
    start = time.monotonic()

    def refresh(*_: Any) -> None:
        s = client.stats
        progress_bar.set_postfix(req=s.requests, retries=s.retries, r429=s.rate_limited, refresh=False)

    def on_response(request, scores) -> None:
        src.scored += len(request.doc_indices)
        refresh()
        progress_bar.update(len(request.doc_indices))

    client = ApiClient(cfg.api, on_retry=refresh, spend=spend)
    if src.stats is not None:  # a budgeted run's later rounds: one account of the whole run
        client.stats = src.stats
    src.stats = client.stats
    try:
        async with client:
            await collect_api(client, plan, cache, src.hash, on_response)
        print_warnings(prompt_mode_warnings(cfg.api, client.stats))
    finally:
        src.elapsed_s += time.monotonic() - start
        src.cost = cost_of(cfg.api, client.stats)
        progress_bar.close()


def prompt_mode_warnings(api: ApiConfig, stats: ClientStats) -> list[str]:
    """A warning when the API's answers look like a wrong prompt: most responses scoring every
    document alike, as a Qwen3 reranker does on a prompt wrapped twice (or on none)."""
    if stats.succeeded == 0 or stats.clustered_responses * 2 <= stats.succeeded:
        return []
    hint = ""
    if api.server_template is not None:
        hint = f" With api.server_template={str(api.server_template).lower()} the " + (
            "server formats the prompt: is it really started with --chat-template?"
            if api.server_template
            else "client formats the prompt: was the server started with --chat-template? Then set "
            "api.server_template=true."
        )
    return [
        f"{stats.clustered_responses} of {stats.succeeded} API responses gave every document the same score "
        f"(within 1e-4): the prompt may be wrapped twice, or missing where the model needs one.{hint}"
    ]


def api_scores(
    cfg: ScoringSettings, groups: Groups, cache: ScoreCache, *, noise_pairs: int = 0
) -> tuple[list[np.ndarray], np.ndarray]:
    """The reference API's scores of preprocessed query groups, through the score cache (each
    pair is paid once, shared with collect), starting the loopback reference when configured.

    With ``noise_pairs`` > 0, that many pairs (whole groups, from the first) are also sent again
    bypassing the cache; returns ``(scores per group, |second - first| of those pairs)``, the
    API's disagreement with itself.
    """
    keys = [[pair_key(query, doc) for doc in docs] for query, docs in groups]
    src = api_source(cfg)
    prepare(cache, src, keys, [])
    if src.n_pending or noise_pairs:
        resolve_api_key(cfg.api)
    repeat: list[tuple[int, str, list[str]]] = []
    for g, (query, docs) in enumerate(groups):
        if sum(len(d) for _, _, d in repeat) >= noise_pairs:
            break
        repeat.append((g, query, docs))
    deltas: list[float] = []
    with reference_api(cfg, bool(src.n_pending or repeat)) as run_cfg:
        if src.n_pending:
            asyncio.run(score_api(run_cfg, groups, src, cache))
        if repeat:

            async def again() -> list[np.ndarray]:
                async with ApiClient(run_cfg.api) as client:
                    return [(await client.score(query, docs)).scores for _, query, docs in repeat]

            fresh = asyncio.run(again())
    found = cache.get_many(src.hash, [k for group in keys for k in group])
    scores = [np.array([found[k] for k in group], dtype=np.float64) for group in keys]
    for (g, _, _), values in zip(repeat, fresh if repeat else []):
        deltas.extend(np.abs(values - scores[g]).tolist())
    return scores, np.asarray(deltas, dtype=np.float64)
