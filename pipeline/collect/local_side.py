"""Scoring a local column: the pending pairs of each query group, one cache transaction per unit
of work, so a crash loses only the work in flight.

In this process (the default), the scorer scores ``collect.local_groups_per_batch`` groups per
call; with ``collect.ray.enabled`` the same groups go to Ray workers in shards
(:mod:`pipeline.collect.ray_backend`) and come back here to be written. Either way only this
process writes the cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.cache import ScoreCache, pair_key
from pipeline.collect.progress import bar
from pipeline.collect.sources import CollectError, Groups, SourceState

if TYPE_CHECKING:
    from pipeline.config.schema import PipelineConfig


class Stopped(Exception):
    """Another source failed: stop between units of work."""


def pending_groups(groups: Groups, src: SourceState, chunk: Sequence[int]) -> list[tuple[str, list[str]]]:
    """``(query, pending documents)`` of the groups in ``chunk``."""
    return [(groups[g][0], [groups[g][1][j] for j in src.pending[g]]) for g in chunk]


def checked_items(column: str, chunk: Sequence[int], batch: Sequence[tuple[str, Sequence[str]]],
                  results: Sequence[Any]) -> list[tuple[str, float]]:
    """Cache items of one scored unit of work, after checking every group got one finite score
    per document (a scorer that returns fewer, more or NaN is an error, never a short table)."""
    if len(results) != len(batch):
        raise CollectError(f"{column}: scorer returned {len(results)} groups for {len(batch)}")
    items: list[tuple[str, float]] = []
    for g, (query, docs), values in zip(chunk, batch, results):
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (len(docs),) or not np.all(np.isfinite(values)):
            raise CollectError(f"{column}: scorer returned a bad score array for query group {g}")
        items += [(pair_key(query, d), float(v)) for d, v in zip(docs, values)]
    return items


def score_local(cfg: "PipelineConfig", groups: Groups, src: SourceState, cache_path: Path,
                stop: threading.Event, position: int) -> None:
    """Score the pending pairs of one local source: on Ray when it has workers, else here."""
    if src.workers is not None:
        from pipeline.collect.ray_backend import score_on_ray

        score_on_ray(cfg, groups, src, cache_path, stop, position)
    else:
        score_in_process(cfg, groups, src, cache_path, stop, position)


def score_in_process(cfg: "PipelineConfig", groups: Groups, src: SourceState, cache_path: Path,
                     stop: threading.Event, position: int) -> None:
    """One scorer call and one cache transaction per ``collect.local_groups_per_batch`` groups."""
    from pipeline.scorers.base import QueryGroup

    todo = [g for g, p in enumerate(src.pending) if p]
    per_batch = max(1, cfg.collect.local_groups_per_batch)
    start = time.monotonic()
    progress_bar = bar(src.n_pending, src.column, position, cfg.collect.progress)
    try:
        with ScoreCache(cache_path) as cache:  # one connection per thread
            for i in range(0, len(todo), per_batch):
                if stop.is_set():
                    raise Stopped()
                chunk = todo[i : i + per_batch]
                batch = pending_groups(groups, src, chunk)
                reported = 0

                def progress(n: int) -> None:
                    nonlocal reported
                    reported += n
                    progress_bar.update(n)

                results = src.scorer.score([QueryGroup(q, docs) for q, docs in batch], progress)
                items = checked_items(src.column, chunk, batch, results)
                cache.put_many(src.hash, items)
                n = len(items)
                src.scored += n
                if reported < n:
                    progress_bar.update(n - reported)
    except Stopped:
        return
    finally:
        src.elapsed_s += time.monotonic() - start
        progress_bar.close()
