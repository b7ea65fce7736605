"""The reference API behind the local :class:`~pipeline.scorers.base.Scorer` contract.

For code that wants API scores synchronously, the same way it gets local ones (drift checks,
notebooks): ``ApiScorer(cfg.api, cfg.text).score(groups)``. It sends one request per query group
(batched and paced exactly like the collect stage), but does not cache; the collect stage uses
the async client directly so it can cache every response as it arrives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.api.client import ApiClient, ClientStats
from pipeline.api.collector import api_fingerprint, plan_requests
from pipeline.config.api import ApiConfig
from pipeline.runtime.text import TextConfig, preprocess
from pipeline.scorers.base import ProgressCallback, QueryGroup, Scorer


class ApiScorer(Scorer):
    """Synchronous scorer over :class:`~pipeline.api.client.ApiClient` (not for use inside a
    running event loop: call ``ApiClient`` there)."""

    def __init__(self, cfg: ApiConfig, text_cfg: TextConfig | None = None, *, api_key: str | None = None) -> None:
        self.cfg = cfg
        self.text_cfg = text_cfg or TextConfig()
        self._api_key = api_key
        self._fingerprint = api_fingerprint(cfg)
        self.score_type = self._fingerprint["score_type"]
        #: requests, retries, 429s and tokens of every call so far (the collect summary's columns)
        self.stats = ClientStats()

    def fingerprint(self) -> dict[str, Any]:
        return dict(self._fingerprint)

    def score(self, groups: Sequence[QueryGroup], progress: ProgressCallback | None = None) -> list[np.ndarray]:
        prepared = [
            (preprocess(g.query, self.text_cfg), [preprocess(d, self.text_cfg) for d in g.documents]) for g in groups
        ]
        return self.score_prepared(prepared, progress)

    def score_prepared(
        self, prepared: Sequence[tuple[str, Sequence[str]]], progress: ProgressCallback | None = None
    ) -> list[np.ndarray]:
        """Scores of ``(query, documents)`` texts sent as they are (no preprocessing here)."""
        plan = plan_requests(self.cfg, prepared, [list(range(len(docs))) for _, docs in prepared])
        out = [np.full(len(docs), np.nan) for _, docs in prepared]

        client = ApiClient(self.cfg, api_key=self._api_key)

        async def one(request) -> None:
            result = await client.score(request.query, request.documents)
            out[request.group][list(request.doc_indices)] = result.scores
            if progress is not None:
                progress(len(request.doc_indices))

        async def run() -> None:
            async with client:
                await asyncio.gather(*(one(r) for r in plan))

        try:
            asyncio.run(run())
        finally:  # failed calls count too
            for name, value in vars(client.stats).items():
                setattr(self.stats, name, getattr(self.stats, name) + value)
        return out
