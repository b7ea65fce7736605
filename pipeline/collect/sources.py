"""The score columns of a collect run: which source fills each one, its fingerprint, and what is
still missing from the score cache.

A column is an API (``collect.reference_col``, the configured ``api``) or a local scorer
(``collect.local_col`` plus every ``collect.extra_local`` entry). Each is keyed in the cache by
its fingerprint hash, so a source that changes anything that changes scores starts afresh while
tuning knobs (concurrency, batching, workers) never invalidates a score.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pipeline.api.client import ClientStats, resolve_api_key, sanitize_url
from pipeline.api.collector import api_fingerprint
from pipeline.core.cache import ScoreCache
from pipeline.core.console import wrapped
from pipeline.core.errors import PipelineError
from pipeline.scorers.base import fingerprint_hash

if TYPE_CHECKING:
    from pipeline.config.collect import ScoringSettings
    from pipeline.config.local import LocalScorerConfig
    from pipeline.scorers.base import Scorer


class CollectError(PipelineError, RuntimeError):
    """The collect stage cannot run as configured, or did not get every score."""


#: preprocessed (query, documents) per query group, in dataset order
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
    scorer: Any = None  # Scorer for local sources scored in this process
    workers: Any = None  # RayWorkers for local sources scored on Ray
    stats: ClientStats | None = None  # API sources
    cost: float | None = None  # API sources: estimated from usage and the configured prices
    meta: dict[str, Any] = field(default_factory=dict)
    #: extra usage figures for the sidecar (the Ray backend's shards, workers and retries)
    usage: dict[str, Any] = field(default_factory=dict)

    @property
    def n_pending(self) -> int:
        return sum(len(p) for p in self.pending)

    def close(self) -> None:
        for held in (self.scorer, self.workers):
            close = getattr(held, "close", None)
            if callable(close):
                close()


# --- configuration ---------------------------------------------------------------------------


def local_configs(cfg: ScoringSettings) -> dict[str, LocalScorerConfig]:
    """Score column -> local scorer config: ``local`` plus every ``collect.extra_local`` entry."""
    out = {cfg.collect.local_col: cfg.local}
    out.update(cfg.collect.extra_local)
    return out


def check_columns(cfg: ScoringSettings, local_columns: Sequence[str]) -> None:
    c = cfg.collect
    names = [c.query_col, c.doc_col] + ([c.label_col] if c.label_col else [])
    names += ([c.reference_col] if c.run_api else []) + list(local_columns)
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise CollectError(
            f"collect: column name(s) {duplicated} used twice (query_col, doc_col, label_col, "
            f"reference_col, local_col and extra_local keys must differ)"
        )


def api_source(cfg: ScoringSettings) -> SourceState:
    fp = api_source_fingerprint(cfg)
    a = cfg.api
    meta = {
        "kind": "api",
        "dialect": a.dialect.value,
        "base_url": sanitize_url(a.base_url),
        "model": a.model,
        "revision": a.revision,
        "endpoint": a.endpoint.value,
        # what was sent: with api.server_template=true the server's template supplies them (null here)
        "instruction": fp["instruction"],
        "query_template": fp["query_template"],
        "document_template": fp["document_template"],
        "dimensions": a.dimensions,
        "raw_scores": a.raw_scores,
    }
    if "reference_server" in fp:
        meta["reference_server"] = fp["reference_server"]
    return SourceState(cfg.collect.reference_col, "api", fp, fingerprint_hash(fp), fp["score_type"], meta=meta)


def api_source_fingerprint(cfg: ScoringSettings) -> dict[str, Any]:
    """The API column's fingerprint: the configured API, plus, when the loopback reference server
    answers instead (``reference.enabled``), what it serves (weights revision, template, strip,
    dtype, default instruction), so changing the server re-collects instead of reusing its old
    scores. The live port is not in it: the cache key does not change from run to run."""
    fp = api_fingerprint(cfg.api)
    if cfg.reference.enabled:
        from pipeline.reference.server import ReferenceConfigError, check_api_matches, reference_fingerprint

        try:
            check_api_matches(cfg.api, cfg.reference)
            fp["reference_server"] = reference_fingerprint(cfg.reference)
        except ReferenceConfigError as exc:
            raise CollectError(str(exc)) from None
    return fp


@contextlib.contextmanager
def reference_api(cfg: ScoringSettings, needed: bool) -> Iterator[ScoringSettings]:
    """``cfg`` with ``api.base_url`` pointing at the live loopback reference server while the
    block runs (started only when ``needed``), else ``cfg`` unchanged."""
    if not (cfg.reference.enabled and needed):
        yield cfg
        return
    from pipeline.reference.server import ReferenceServer

    print(
        wrapped(
            f"starting the loopback reference API ({cfg.reference.model}, template {cfg.reference.template.value}, "
            f"strip {cfg.reference.strip}, {cfg.reference.dtype.value}) ..."
        ),
        file=sys.stderr,
        flush=True,
    )
    server = ReferenceServer(cfg.reference, api_key=resolve_api_key(cfg.api))
    try:
        server.start()
    except (ValueError, OSError, RuntimeError) as exc:  # ScorerLoadError, a busy port, bad settings
        raise CollectError(f"the loopback reference API (reference.*) did not start: {exc}") from exc
    try:
        yield replace(cfg, api=replace(cfg.api, base_url=server.live_url(cfg.api.base_url)))
    finally:
        server.stop()


def build_local_scorer(lcfg: LocalScorerConfig, cfg: ScoringSettings) -> Scorer:
    from pipeline.scorers import build_scorer

    try:
        return build_scorer(lcfg, cfg.text)
    except (ValueError, OSError, RuntimeError) as exc:  # ScorerLoadError, EngineError and config errors
        raise CollectError(f"cannot build the local scorer for model {lcfg.model!r}: {exc}") from exc


def local_source(
    column: str, lcfg: LocalScorerConfig, fingerprint: dict[str, Any], score_type: str, **held: Any
) -> SourceState:
    """A local column's state from its scorer's fingerprint (``held``: ``scorer=`` or ``workers=``)."""
    return SourceState(
        column,
        "local",
        fingerprint,
        fingerprint_hash(fingerprint),
        score_type,
        meta=local_meta(lcfg, fingerprint),
        **held,
    )


def local_meta(lcfg: LocalScorerConfig, fp: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "kind": "local",
        "model": fp.get("model", getattr(lcfg, "model", None)),
        "revision": fp.get("revision", getattr(lcfg, "revision", None)),
    }
    for key in (
        "template",
        "instruction",
        "task",
        "max_length",
        "dtype",
        "dimensions",
        "pooling",
        "strip_texts",
        "strip_prompt",
        "engine",
    ):
        if key in fp:
            meta[key] = fp[key]
    if getattr(lcfg, "aligned_by", None):
        meta["aligned_by"] = lcfg.aligned_by
    return meta


# --- cache bookkeeping -----------------------------------------------------------------------


def prepare(cache: ScoreCache, src: SourceState, keys: list[list[str]], sources: list[SourceState]) -> None:
    """Register ``src`` in the cache, find its pending pairs, and add it to ``sources``."""
    cache.register(src.hash, src.fingerprint)
    src.pending, src.cached = pending_pairs(cache, src.hash, keys)
    sources.append(src)


def pending_pairs(cache: ScoreCache, scorer_hash: str, keys: list[list[str]]) -> tuple[list[list[int]], int]:
    """Per group, the document indices with no cached score; and how many are cached."""
    found = cache.get_many(scorer_hash, [k for group in keys for k in group])
    pending = [[j for j, k in enumerate(group) if k not in found] for group in keys]
    cached = sum(len(g) for g in keys) - sum(len(p) for p in pending)
    return pending, cached
