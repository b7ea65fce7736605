"""Reference-API clients (httpx) for SiliconFlow and the APIs that speak its dialect.

Public surface:

* :class:`~pipeline.config.api.ApiConfig` and the
  enums :class:`Dialect`, :class:`Endpoint`, :class:`TopN`, :class:`ScoreType` (config schemas);
* :class:`~pipeline.api.client.ApiClient`: ``async with ApiClient(cfg) as c: await c.score(q, docs)``;
* :class:`~pipeline.api.scorer.ApiScorer`: the same behind the synchronous ``Scorer`` contract;
* :func:`~pipeline.api.collector.plan_requests` / :func:`~pipeline.api.collector.collect_api`:
  batched, cached collection (used by ``python -m pipeline collect``);
* errors: :class:`ApiError` (base), :class:`FatalApiError` (400/401/403/404, not retried),
  :class:`RetriesExhausted`, :class:`ResponseFormatError`, and ``ApiConfigError`` for settings.

Submodules are imported on first use so ``pipeline.config`` can import the schemas cheaply.
"""

from pipeline.config.api import ApiConfig, Dialect, Endpoint, ScoreType, TopN

__all__ = ["ApiConfig", "Dialect", "Endpoint", "ScoreType", "TopN"]
