"""The HTTP client for SiliconFlow and the APIs that speak its dialect (httpx), nothing else.

* :class:`~pipeline.api.client.ApiClient`: ``async with ApiClient(cfg) as c: await c.score(q, docs)``;
* :func:`~pipeline.api.collector.plan_requests` / :func:`~pipeline.api.collector.collect_api`:
  batched, cached collection (used by ``python -m pipeline collect``);
* errors (:mod:`pipeline.api.errors`): :class:`ApiError` (base), :class:`FatalApiError`
  (400/401/403/404, not retried), :class:`RetriesExhausted`, :class:`ResponseFormatError`, and
  ``ApiConfigError`` for settings.

The settings are :class:`pipeline.config.api.ApiConfig`; the same client behind the synchronous
``Scorer`` contract is :class:`pipeline.scorers.api.ApiScorer`. Submodules are imported on first
use, so importing this package costs nothing.
"""
