"""Score many query groups through the API client, writing every response to the score cache.

Planning and execution are separate so the dry run and the real run agree exactly on what would
be sent: :func:`plan_requests` turns the pairs that are not cached yet into requests (one per
query group where ``api.max_documents_per_request`` and ``api.max_tokens_per_request`` allow,
else consecutive slices of the group), and :func:`collect_api` runs them with ``api.concurrency``
workers sharing one :class:`~pipeline.api.client.ApiClient`. Each response is stored in one
cache transaction before its progress is counted, so an interrupted run loses only the requests
in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.api.client import (
    ApiClient,
    ClientStats,
    client_formats_prompt,
    estimate_request_tokens,
    resolved_score_type,
    sanitize_url,
    validate_api_config,
)
from pipeline.api.errors import ApiError, ResponseFormatError
from pipeline.api.spend import request_cost
from pipeline.config.api import ApiConfig, Endpoint
from pipeline.core.cache import ScoreCache, pair_key

#: bump when the meaning of an API score changes for the same config (part of the fingerprint)
API_SOURCE_VERSION = 1


def api_fingerprint(cfg: ApiConfig) -> dict[str, Any]:
    """Everything that changes what the API returns for a pair (never the key, never limits).

    ``server_template`` appears only where it is set (the vLLM dialects), so fingerprints -- and
    cached scores -- of every other API stay what they were; with ``server_template=true`` the
    templates and the instruction are recorded as not sent.
    """
    adapter = validate_api_config(cfg)
    sent = client_formats_prompt(cfg)
    fp = {
        "kind": "api",
        "api_source_version": API_SOURCE_VERSION,
        "dialect": cfg.dialect.value,
        "base_url": sanitize_url(cfg.base_url),
        "path": adapter.path(cfg),
        "model": cfg.model,
        "revision": cfg.revision,
        "endpoint": cfg.endpoint.value,
        "instruction": cfg.instruction if sent else None,
        "query_template": cfg.query_template if sent else None,
        "document_template": cfg.document_template if sent else None,
        "raw_scores": cfg.raw_scores,
        "dimensions": cfg.dimensions,
        "score_type": resolved_score_type(cfg),
        "extra_body": dict(cfg.extra_body),
    }
    if cfg.server_template is not None:
        fp["server_template"] = cfg.server_template
    return fp


@dataclass(frozen=True)
class PairRequest:
    """One API call: a slice of one query group's documents."""

    group: int
    doc_indices: tuple[int, ...]
    query: str
    documents: tuple[str, ...]
    est_tokens: int


def plan_requests(
    cfg: ApiConfig, groups: Sequence[tuple[str, Sequence[str]]], pending: Sequence[Sequence[int]]
) -> list[PairRequest]:
    """Requests for the ``pending`` document indices of each ``(query, documents)`` group."""
    per_request = cfg.max_documents_per_request - (1 if cfg.endpoint is Endpoint.embeddings else 0)
    token_cap = cfg.max_tokens_per_request
    plan: list[PairRequest] = []
    for g, ((query, documents), todo) in enumerate(zip(groups, pending)):
        batch: list[int] = []
        batch_tokens = 0

        def flush() -> None:
            if batch:
                docs = tuple(documents[j] for j in batch)
                plan.append(PairRequest(g, tuple(batch), query, docs, estimate_request_tokens(cfg, query, docs)))

        for j in todo:
            cost = estimate_request_tokens(cfg, query, [documents[j]])
            if batch and (len(batch) >= per_request or (token_cap is not None and batch_tokens + cost > token_cap)):
                flush()
                batch, batch_tokens = [], 0
            batch.append(j)
            batch_tokens += cost
        flush()
    return plan


@dataclass
class PlanEstimate:
    requests: int
    pairs: int
    tokens: int
    cost: float


def estimate_plan(cfg: ApiConfig, plan: Sequence[PairRequest]) -> PlanEstimate:
    """What a plan would cost at the conservative token estimate (the cost model: :func:`request_cost`)."""
    tokens = sum(r.est_tokens for r in plan)
    cost = sum(request_cost(cfg, r.est_tokens, len(r.doc_indices)) for r in plan)
    return PlanEstimate(len(plan), sum(len(r.doc_indices) for r in plan), tokens, cost)


def cost_of(cfg: ApiConfig, stats: ClientStats) -> float:
    """What the calls cost: tokens (reported, else estimated), requests, and the search units the
    responses reported (Cohere bills those, not requests)."""
    return (
        stats.tokens / 1e6 * cfg.price_per_million_tokens
        + stats.succeeded * cfg.price_per_request
        + stats.search_units * cfg.price_per_search_unit
    )


async def collect_api(
    client: ApiClient,
    plan: Sequence[PairRequest],
    cache: ScoreCache,
    scorer_hash: str,
    on_response: Callable[[PairRequest, np.ndarray], None] | None = None,
) -> None:
    """Send every planned request (``client.cfg.concurrency`` at a time) and cache the scores.

    The first error that survives the retry policy stops the run: the other workers are
    cancelled (their requests are simply not cached) and the error is raised.
    """
    iterator = iter(plan)

    async def worker() -> None:
        for request in iterator:  # shared iterator: each request is taken by exactly one worker
            result = await client.score(request.query, request.documents)
            scores = result.scores
            if scores.shape != (len(request.documents),) or not np.all(np.isfinite(scores)):
                raise ResponseFormatError(f"{client.where}: scores do not match the request")
            cache.put_many(scorer_hash, ((pair_key(request.query, d), s) for d, s in zip(request.documents, scores)))
            if on_response is not None:
                on_response(request, scores)

    n_workers = max(1, min(client.cfg.concurrency, len(plan)))
    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(n_workers):
                group.create_task(worker())
    except BaseExceptionGroup as eg:  # surface the first real error, not the group
        first = _first_error(eg)
        raise first from None


def _first_error(eg: BaseExceptionGroup) -> BaseException:
    for exc in eg.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            return _first_error(exc)
        if isinstance(exc, ApiError):
            return exc
    exc = eg.exceptions[0]
    return _first_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
