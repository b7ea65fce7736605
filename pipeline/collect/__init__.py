"""The collect stage (``python -m pipeline collect``): score a dataset with the local scorer(s) and
the reference API.

Reads the JSONL dataset (:mod:`pipeline.data.dataset`), preprocesses every query and document once
with :func:`pipeline.runtime.text.preprocess` (the same strings go to the local model, to the API and
into the cache keys), then fills one score column per source:

* ``collect.reference_col`` (default ``reference``): the API configured in ``api``;
* ``collect.local_col`` (default ``local``): the scorer configured in ``local``;
* one column per entry of ``collect.extra_local`` (column -> a ``local`` config; from the command
  line ``+local@collect.extra_local.<column>=<conf/local entry>``).

With ``reference.enabled`` the API side is the loopback reference server
(:mod:`pipeline.reference.server`), started on a free port for the requests and stopped
afterwards; it is not started at all when every reference score is cached.

Scores already in the SQLite cache (``collect.cache``) are reused, so a re-run after a crash or
Ctrl-C sends requests only for the pairs still missing. API requests run concurrently on an
asyncio loop while the local scorer works in a thread. Finally the paired-score table
(``collect.output``, CSV or Parquet) and its ``.meta.json`` sidecar are written atomically, and
a summary table is printed. ``collect.dry_run=true`` prints the requests, tokens and estimated
cost of the pairs not cached yet and sends nothing.

A local column is scored in this process by default. Its scorer may also be an HTTP engine
(``local.engine.base_url``: vLLM, TEI, infinity; :mod:`pipeline.scorers.engine`), and with
``collect.ray.enabled`` it is scored by Ray workers in shards of query groups
(:mod:`pipeline.collect.ray_backend`); either way only this process writes the cache and the
table.

Modules: ``sources`` (columns, fingerprints, pending pairs), ``local_side`` / ``ray_backend`` /
``api_side`` (scoring), ``seed`` (cache from the previous table), ``summary`` (sidecar, summary,
dry run), ``stage`` (the run).
"""

from __future__ import annotations

import importlib
from typing import Any

#: name -> module; imported on first use, so ``pipeline.config.collect`` (the schema every stage
#: composes) does not pull in httpx or torch
_EXPORTS = {
    "api_scores": "api_side",
    "prompt_mode_warnings": "api_side",
    "seed_cache_from_table": "seed",
    "CollectError": "sources",
    "SourceState": "sources",
    "api_source_fingerprint": "sources",
    "build_local_scorer": "sources",
    "local_configs": "sources",
    "reference_api": "sources",
    "CollectResult": "stage",
    "collect": "stage",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pipeline.collect' has no attribute {name!r}")
    return getattr(importlib.import_module(f"pipeline.collect.{module}"), name)
