"""``python -m pipeline collect``: score a dataset with the local scorer(s) and the reference API.

Reads the JSONL dataset (:mod:`pipeline.dataset`), preprocesses every query and document once
with :func:`pipeline.text.preprocess` (the same strings go to the local model, to the API and
into the cache keys), then fills one score column per source:

* ``collect.reference_col`` (default ``reference``): the API configured in ``api``;
* ``collect.local_col`` (default ``local``): the scorer configured in ``local``;
* one column per entry of ``collect.extra_local`` (column -> a ``local`` config; from the command
  line ``+local@collect.extra_local.<column>=<conf/local entry>``).

With ``reference.enabled`` the API side is the loopback reference server
(:mod:`pipeline.demo.reference_server`), started on a free port for the requests and stopped
afterwards; it is not started at all when every reference score is cached.

Scores already in the SQLite cache (``collect.cache``) are reused, so a re-run after a crash or
Ctrl-C sends requests only for the pairs still missing. API requests run concurrently on an
asyncio loop while the local scorer works in a thread. Finally the paired-score table
(``collect.output``, CSV or Parquet) and its ``.meta.json`` sidecar are written atomically, and
a summary table is printed. ``collect.dry_run=true`` prints the requests, tokens and estimated
cost of the pairs not cached yet and sends nothing.
"""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.api.client import ApiClient, ApiConfigError, ClientStats, resolve_api_key, sanitize_url
from pipeline.api.collector import (
    api_fingerprint,
    collect_api,
    cost_of,
    estimate_plan,
    plan_requests,
)
from pipeline.api.errors import ApiError
from pipeline.cache import CacheError, ScoreCache, pair_key
from pipeline.console import print_warnings, wrapped
from pipeline.dataset import Dataset, DatasetError, load_dataset
from pipeline.files import utc_now
from pipeline.scorers.base import fingerprint_hash
from pipeline.text import describe, preprocess

if TYPE_CHECKING:
    from pipeline.api.config import ApiConfig
    from pipeline.config import PipelineConfig
    from pipeline.scorers.base import Scorer
    from pipeline.scorers.config import LocalScorerConfig


class CollectError(RuntimeError):
    """The collect stage cannot run as configured, or did not get every score."""


Groups = list[tuple[str, list[str]]]


@dataclass
class SourceState:
    """One score column: where its scores come from and how far it got."""

    column: str
    kind: str  # "api" | "local"
    fingerprint: dict[str, Any]
    hash: str
    score_type: str
    pending: list[list[int]] = field(default_factory=list)
    cached: int = 0
    scored: int = 0
    elapsed_s: float = 0.0
    scorer: Any = None  # Scorer for local sources
    stats: ClientStats | None = None  # API sources
    cost: float | None = None  # API sources: estimated from usage and the configured prices
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_pending(self) -> int:
        return sum(len(p) for p in self.pending)


@dataclass
class CollectResult:
    output: Path | None
    meta: dict[str, Any]
    sources: list[SourceState]


# ---------------------------------------------------------------------------------------------


def run(cfg: "PipelineConfig") -> int:
    """Exit 2 for settings that cannot work (found before any request), 1 for failures on the way."""
    try:
        collect(cfg)
    except ApiConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (DatasetError, ApiError, CacheError, CollectError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def collect(
    cfg: "PipelineConfig",
    *,
    scorers: dict[str, "Scorer"] | None = None,
    out=None,
) -> CollectResult:
    """Run the stage; ``scorers`` (column -> Scorer) replaces ``build_scorer`` (tests, notebooks)."""
    out = out or sys.stdout
    c = cfg.collect
    started = utc_now()
    local_cfgs = local_configs(cfg) if c.run_local else {}
    _check_columns(cfg, list(local_cfgs))
    if not c.run_api and not c.run_local:
        raise CollectError("collect.run_api and collect.run_local are both false: nothing to collect")

    full = load_dataset(c.dataset)
    dataset = full.sample(c.max_queries, cfg.seed)
    groups: Groups = [
        (preprocess(q.text, cfg.text), [preprocess(d.text, cfg.text) for d in q.documents]) for q in dataset.queries
    ]
    keys = [[pair_key(query, doc) for doc in docs] for query, docs in groups]

    api_source = _api_source(cfg) if c.run_api else None
    if c.dry_run:
        _dry_run(cfg, dataset, groups, keys, api_source, list(local_cfgs), out)
        return CollectResult(None, {}, [api_source] if api_source else [])

    sources: list[SourceState] = []
    cache_path = Path(c.cache)
    with ScoreCache(cache_path) as cache:
        seeded = seed_cache_from_table(cfg, full, cache)
        if seeded:
            print(f"seeded the score cache with {seeded} score(s) from {c.output} (same dataset and preprocessing; "
                  f"keyed by the fingerprints its sidecar records)", file=out)
        if api_source is not None:
            _prepare(cache, api_source, keys, sources)
            if api_source.n_pending:
                resolve_api_key(cfg.api)  # fail on a missing key before loading any model
        for column, lcfg in local_cfgs.items():  # models load before any paid request is sent
            scorer = (scorers or {}).get(column) or build_local_scorer(lcfg, cfg)
            fp = scorer.fingerprint()
            local = SourceState(column, "local", fp, scorer.fingerprint_hash(), scorer.score_type,
                                scorer=scorer, meta=_local_meta(lcfg, fp, scorer))
            _prepare(cache, local, keys, sources)
        needs_api = api_source is not None and api_source.n_pending > 0
        with reference_api(cfg, needs_api) as run_cfg:
            _run_sources(run_cfg, groups, sources, cache, cache_path)
        columns = _assemble(cfg, dataset, keys, sources, cache)

    output = Path(c.output)
    from pipeline.data import write_table, write_table_meta

    write_table(output, columns)
    meta = _meta(cfg, dataset, sources, started, sampled_from=len(full.queries) if dataset is not full else None)
    write_table_meta(output, meta)
    _print_summary(sources, output, out)
    for src in sources:
        close = getattr(src.scorer, "close", None)
        if callable(close):
            close()
    return CollectResult(output, meta, sources)


def api_scores(cfg: "PipelineConfig", groups: Groups, cache: ScoreCache, *, noise_pairs: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    """The reference API's scores of preprocessed query groups, through the score cache (each
    pair is paid once, shared with collect), starting the loopback reference when configured.

    With ``noise_pairs`` > 0, that many pairs (whole groups, from the first) are also sent again
    bypassing the cache; returns ``(scores per group, |second - first| of those pairs)``, the
    API's disagreement with itself.
    """
    keys = [[pair_key(query, doc) for doc in docs] for query, docs in groups]
    src = _api_source(cfg)
    _prepare(cache, src, keys, [])
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
            asyncio.run(_score_api(run_cfg, groups, src, cache))
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


# --- configuration ---------------------------------------------------------------------------


def local_configs(cfg: "PipelineConfig") -> dict[str, "LocalScorerConfig"]:
    """Score column -> local scorer config: ``local`` plus every ``collect.extra_local`` entry."""
    out = {cfg.collect.local_col: cfg.local}
    out.update(cfg.collect.extra_local)
    return out


def _check_columns(cfg: "PipelineConfig", local_columns: Sequence[str]) -> None:
    c = cfg.collect
    names = [c.query_col, c.doc_col] + ([c.label_col] if c.label_col else [])
    names += ([c.reference_col] if c.run_api else []) + list(local_columns)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise CollectError(f"collect: column name(s) {duplicated} used twice (query_col, doc_col, label_col, "
                           f"reference_col, local_col and extra_local keys must differ)")


def _api_source(cfg: "PipelineConfig") -> SourceState:
    fp = api_source_fingerprint(cfg)
    a = cfg.api
    meta = {
        "kind": "api", "dialect": a.dialect.value, "base_url": sanitize_url(a.base_url), "model": a.model,
        "revision": a.revision, "endpoint": a.endpoint.value, "instruction": a.instruction,
        "query_template": a.query_template, "document_template": a.document_template,
        "dimensions": a.dimensions, "raw_scores": a.raw_scores,
    }
    if "reference_server" in fp:
        meta["reference_server"] = fp["reference_server"]
    return SourceState(cfg.collect.reference_col, "api", fp, fingerprint_hash(fp), fp["score_type"], meta=meta)


def api_source_fingerprint(cfg: "PipelineConfig") -> dict[str, Any]:
    """The API column's fingerprint: the configured API, plus, when the loopback reference server
    answers instead (``reference.enabled``), what it serves (weights revision, template, strip,
    dtype, default instruction), so changing the server re-collects instead of reusing its old
    scores. The live port is not in it: the cache key does not change from run to run."""
    fp = api_fingerprint(cfg.api)
    if cfg.reference.enabled:
        from pipeline.demo.reference_server import ReferenceConfigError, check_api_matches, reference_fingerprint

        try:
            check_api_matches(cfg.api, cfg.reference)
            fp["reference_server"] = reference_fingerprint(cfg.reference)
        except ReferenceConfigError as exc:
            raise CollectError(str(exc)) from None
    return fp


@contextlib.contextmanager
def reference_api(cfg: "PipelineConfig", needed: bool) -> Iterator["PipelineConfig"]:
    """``cfg`` with ``api.base_url`` pointing at the live loopback reference server while the
    block runs (started only when ``needed``), else ``cfg`` unchanged."""
    if not (cfg.reference.enabled and needed):
        yield cfg
        return
    from pipeline.demo.reference_server import ReferenceServer

    print(wrapped(f"starting the loopback reference API ({cfg.reference.model}, template {cfg.reference.template.value}, "
                  f"strip {cfg.reference.strip}, {cfg.reference.dtype.value}) ..."), file=sys.stderr, flush=True)
    server = ReferenceServer(cfg.reference, api_key=resolve_api_key(cfg.api))
    try:
        server.start()
    except (ValueError, OSError, RuntimeError) as exc:  # ScorerLoadError, a busy port, bad settings
        raise CollectError(f"the loopback reference API (reference.*) did not start: {exc}") from exc
    try:
        yield replace(cfg, api=replace(cfg.api, base_url=server.live_url(cfg.api.base_url)))
    finally:
        server.stop()


def build_local_scorer(lcfg: "LocalScorerConfig", cfg: "PipelineConfig") -> "Scorer":
    from pipeline.scorers import build_scorer

    try:
        return build_scorer(lcfg, cfg.text)
    except (ValueError, OSError, RuntimeError) as exc:  # ScorerLoadError and config errors
        raise CollectError(f"cannot build the local scorer for model {lcfg.model!r}: {exc}") from exc


def _local_meta(lcfg: "LocalScorerConfig", fp: dict[str, Any], scorer: "Scorer") -> dict[str, Any]:
    meta: dict[str, Any] = {"kind": "local", "model": fp.get("model", getattr(lcfg, "model", None)),
                            "revision": fp.get("revision", getattr(lcfg, "revision", None))}
    for key in ("template", "instruction", "task", "max_length", "dtype", "dimensions", "pooling", "strip_texts", "strip_prompt"):
        if key in fp:
            meta[key] = fp[key]
    if getattr(lcfg, "aligned_by", None):
        meta["aligned_by"] = lcfg.aligned_by
    return meta


# --- cache bookkeeping -----------------------------------------------------------------------


def seed_cache_from_table(cfg: "PipelineConfig", dataset: Dataset, cache: ScoreCache) -> int:
    """Put the scores of the table this stage wrote before (``collect.output``) into the cache.

    Why: the table is committed (the demo's is), the cache is not, so in a fresh clone the cache
    is empty while the scores are right there; switching the local model would otherwise re-ask
    the API for every reference score. Each column goes in under the fingerprint hash its sidecar
    records, which is what produced it, and only when the table was collected from the same
    dataset file (sha256) with the same preprocessing, so every key names the texts that were
    scored. Scores already cached are left alone. Returns how many were added.
    """
    import pandas as pd

    from pipeline.data import TableError, read_table_meta

    c = cfg.collect
    output = Path(c.output)
    if not output.is_file():
        return 0
    try:
        meta = read_table_meta(output)
    except TableError:
        return 0
    if (meta.get("dataset") or {}).get("sha256") != dataset.sha256 or meta.get("preprocessing") != describe(cfg.text):
        return 0
    ids = {c.query_col: str, c.doc_col: str}
    try:
        frame = pd.read_parquet(output) if output.suffix.lower() in {".parquet", ".pq"} else pd.read_csv(output, dtype=ids)
    except Exception:  # an unreadable old table is simply not used
        return 0
    keys = {(q.query_id, d.doc_id): pair_key(preprocess(q.text, cfg.text), preprocess(d.text, cfg.text))
            for q in dataset.queries for d in q.documents}
    row_keys = [keys.get((str(qid), str(did))) for qid, did in zip(frame[c.query_col], frame[c.doc_col])]
    added = 0
    for column, source in (meta.get("sources") or {}).items():
        scorer_hash = source.get("fingerprint_hash")
        if not scorer_hash or column not in frame.columns:
            continue
        items = {k: float(v) for k, v in zip(row_keys, frame[column]) if k is not None and np.isfinite(v)}
        have = cache.get_many(scorer_hash, list(items))
        new = [(k, v) for k, v in items.items() if k not in have]
        if new:
            cache.register(scorer_hash, source.get("fingerprint") or {})
            added += cache.put_many(scorer_hash, new)
    return added


def _prepare(cache: ScoreCache, src: SourceState, keys: list[list[str]], sources: list[SourceState]) -> None:
    cache.register(src.hash, src.fingerprint)
    src.pending, src.cached = _pending(cache, src.hash, keys)
    sources.append(src)


def _pending(cache: ScoreCache, scorer_hash: str, keys: list[list[str]]) -> tuple[list[list[int]], int]:
    found = cache.get_many(scorer_hash, [k for group in keys for k in group])
    pending = [[j for j, k in enumerate(group) if k not in found] for group in keys]
    cached = sum(len(g) for g in keys) - sum(len(p) for p in pending)
    return pending, cached


def _assemble(cfg: "PipelineConfig", dataset: Dataset, keys: list[list[str]], sources: list[SourceState],
              cache: ScoreCache) -> dict[str, list[Any]]:
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


# --- running the sources ---------------------------------------------------------------------


def _bar(total: int, desc: str, position: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="pair", position=position, leave=True, dynamic_ncols=True,
                mininterval=0.5, disable=not enabled or total == 0, file=sys.stderr)


def _run_sources(cfg: "PipelineConfig", groups: Groups, sources: list[SourceState], cache: ScoreCache,
                 cache_path: Path) -> None:
    api = [s for s in sources if s.kind == "api" and s.n_pending]
    local = [s for s in sources if s.kind == "local" and s.n_pending]
    stop = threading.Event()
    if not cfg.collect.overlap_local_and_api or not api or not local:
        for src in local:
            _score_local(cfg, groups, src, cache_path, stop, position=0)
        for src in api:
            asyncio.run(_score_api(cfg, groups, src, cache))
        return

    async def both() -> None:
        thread_task = asyncio.ensure_future(asyncio.to_thread(_score_locals, cfg, groups, local, cache_path, stop))
        api_task = asyncio.ensure_future(_score_api(cfg, groups, api[0], cache))
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


def _score_locals(cfg: "PipelineConfig", groups: Groups, sources: list[SourceState], cache_path: Path,
                  stop: threading.Event) -> None:
    for src in sources:
        _score_local(cfg, groups, src, cache_path, stop, position=1)


class _Stopped(Exception):
    pass


def _score_local(cfg: "PipelineConfig", groups: Groups, src: SourceState, cache_path: Path,
                 stop: threading.Event, position: int) -> None:
    """Score the pending pairs of one local source, one cache transaction per batch of groups."""
    from pipeline.scorers.base import QueryGroup

    todo = [g for g, p in enumerate(src.pending) if p]
    per_batch = max(1, cfg.collect.local_groups_per_batch)
    start = time.monotonic()
    bar = _bar(src.n_pending, src.column, position, cfg.collect.progress)
    try:
        with ScoreCache(cache_path) as cache:  # one connection per thread
            for i in range(0, len(todo), per_batch):
                if stop.is_set():
                    raise _Stopped()
                chunk = todo[i : i + per_batch]
                batch = [QueryGroup(groups[g][0], [groups[g][1][j] for j in src.pending[g]]) for g in chunk]
                reported = 0

                def progress(n: int) -> None:
                    nonlocal reported
                    reported += n
                    bar.update(n)

                results = src.scorer.score(batch, progress)
                if len(results) != len(batch):
                    raise CollectError(f"{src.column}: scorer returned {len(results)} groups for {len(batch)}")
                items = []
                for g, qg, values in zip(chunk, batch, results):
                    values = np.asarray(values, dtype=np.float64)
                    if values.shape != (len(qg.documents),) or not np.all(np.isfinite(values)):
                        raise CollectError(f"{src.column}: scorer returned a bad score array for query group {g}")
                    items += [(pair_key(qg.query, d), v) for d, v in zip(qg.documents, values)]
                cache.put_many(src.hash, items)
                n = len(items)
                src.scored += n
                if reported < n:
                    bar.update(n - reported)
    except _Stopped:
        return
    finally:
        src.elapsed_s += time.monotonic() - start
        bar.close()


async def _score_api(cfg: "PipelineConfig", groups: Groups, src: SourceState, cache: ScoreCache) -> None:
    plan = plan_requests(cfg.api, groups, src.pending)
    bar = _bar(src.n_pending, src.column, 0, cfg.collect.progress)
    start = time.monotonic()

    def refresh(*_: Any) -> None:
        s = client.stats
        bar.set_postfix(req=s.requests, retries=s.retries, r429=s.rate_limited, refresh=False)

    def on_response(request, scores) -> None:
        src.scored += len(request.doc_indices)
        refresh()
        bar.update(len(request.doc_indices))

    client = ApiClient(cfg.api, on_retry=refresh)
    src.stats = client.stats
    try:
        async with client:
            await collect_api(client, plan, cache, src.hash, on_response)
        print_warnings(prompt_mode_warnings(cfg.api, client.stats))
    finally:
        src.elapsed_s += time.monotonic() - start
        src.cost = cost_of(cfg.api, client.stats)
        bar.close()


def prompt_mode_warnings(api: ApiConfig, stats: ClientStats) -> list[str]:
    """A warning when the API's answers look like a wrong prompt: most responses scoring every
    document alike, as a Qwen3 reranker does on a prompt wrapped twice (or on none)."""
    if stats.succeeded == 0 or stats.clustered_responses * 2 <= stats.succeeded:
        return []
    hint = ""
    if api.server_template is not None:
        hint = (f" With api.server_template={str(api.server_template).lower()} the "
                + ("server formats the prompt: is it really started with --chat-template?" if api.server_template
                   else "client formats the prompt: was the server started with --chat-template? Then set "
                        "api.server_template=true."))
    return [f"{stats.clustered_responses} of {stats.succeeded} API responses gave every document the same score "
            f"(within 1e-4): the prompt may be wrapped twice, or missing where the model needs one.{hint}"]


# --- reporting -------------------------------------------------------------------------------


def _meta(cfg: "PipelineConfig", dataset: Dataset, sources: list[SourceState], started: str,
          sampled_from: int | None = None) -> dict[str, Any]:
    c = cfg.collect
    meta: dict[str, Any] = {
        "simulated": False,
        "stage": "collect",
        "columns": {"query": c.query_col, "doc": c.doc_col,
                    "label": c.label_col if (c.label_col and dataset.has_labels) else None,
                    "reference": c.reference_col if c.run_api else None,
                    "local": [s.column for s in sources if s.kind == "local"]},
        "dataset": {"path": str(dataset.path), "sha256": dataset.sha256, "queries": len(dataset.queries),
                    "pairs": dataset.n_pairs, "labelled_pairs": dataset.n_labelled,
                    **({"sampled_from": sampled_from} if sampled_from is not None else {})},
        "preprocessing": describe(cfg.text),
        "sources": {},
        "usage": {},
        "started": started,
        "finished": utc_now(),
    }
    for src in sources:
        meta["sources"][src.column] = {**src.meta, "fingerprint": src.fingerprint, "fingerprint_hash": src.hash,
                                       "score_type": src.score_type}
        usage: dict[str, Any] = {"pairs": dataset.n_pairs, "cached": src.cached, "scored": src.scored,
                                 "elapsed_s": round(src.elapsed_s, 3)}
        if src.stats is not None:
            usage.update(src.stats.as_dict())
            usage["estimated_cost"] = src.cost
        meta["usage"][src.column] = usage
    return meta


def _print_summary(sources: list[SourceState], output: Path, out) -> None:
    header = ["source", "kind", "pairs", "cached", "scored", "requests", "retries", "429s", "tokens", "cost", "time", "pairs/s"]
    rows = []
    for s in sources:
        st = s.stats
        rate = s.scored / s.elapsed_s if s.elapsed_s > 0 and s.scored else 0.0
        rows.append([
            s.column, s.kind, str(s.cached + s.scored), str(s.cached), str(s.scored),
            str(st.requests) if st else "-", str(st.retries) if st else "-", str(st.rate_limited) if st else "-",
            str(st.tokens) if st else "-", "-" if s.cost is None else f"{s.cost:.4f}",
            f"{s.elapsed_s:.1f}s", f"{rate:.1f}",
        ])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    print("\n".join(lines), file=out)
    print(f"wrote {output} and {output.name}.meta.json", file=out)


def _dry_run(cfg: "PipelineConfig", dataset: Dataset, groups: Groups, keys: list[list[str]],
             api_source: SourceState | None, local_columns: list[str], out) -> None:
    c = cfg.collect
    print("dry run: nothing is sent and nothing is written", file=out)
    print(f"dataset {dataset.path}: {len(dataset.queries)} queries, {dataset.n_pairs} pairs", file=out)
    if api_source is not None:
        cache_path = Path(c.cache)
        if cache_path.is_file():
            with ScoreCache(cache_path) as cache:
                pending, cached = _pending(cache, api_source.hash, keys)
        else:
            pending, cached = [list(range(len(k))) for k in keys], 0
        plan = plan_requests(cfg.api, groups, pending)
        est = estimate_plan(cfg.api, plan)
        a = cfg.api
        limit = []
        if a.rpm:
            limit.append(est.requests / (a.rpm * a.rate_margin))
        if a.tpm:
            limit.append(est.tokens / (a.tpm * a.rate_margin))
        minutes = max(limit) if limit else 0.0
        print(f"{api_source.column} ({a.dialect.value} {a.model}, {a.endpoint.value}): {est.pairs} pairs to score, "
              f"{cached} cached", file=out)
        print(f"  requests: {est.requests} (up to {a.max_documents_per_request} documents each)", file=out)
        print(f"  tokens (estimate): {est.tokens}", file=out)
        print(f"  estimated cost: {est.cost:.4f} (price_per_million_tokens={a.price_per_million_tokens:g}, "
              f"price_per_request={a.price_per_request:g})", file=out)
        if limit:
            print(f"  minimum time at the configured rpm/tpm limits: {minutes * 60:.0f}s", file=out)
    for column in local_columns:
        print(f"{column} (local): {dataset.n_pairs} pairs (cache state needs the model's fingerprint; "
              f"the model is not loaded in a dry run)", file=out)
