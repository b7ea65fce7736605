"""Scoring a local column in this process (the default): ``collect.local_groups_per_batch``
query groups per scorer call, one cache transaction each, so a crash loses only the work in
flight. With ``collect.ray.enabled`` the same units go to Ray workers instead
(:mod:`pipeline.collect.ray_backend`); :func:`pipeline.collect.stage.score_local` chooses.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.collect.progress import bar
from pipeline.collect.sources import Groups, SourceState
from pipeline.collect.units import Stopped, checked_items, pending_groups
from pipeline.core.cache import ScoreCache

if TYPE_CHECKING:
    from pipeline.config.collect import ScoringSettings


def score_in_process(
    cfg: ScoringSettings, groups: Groups, src: SourceState, cache_path: Path, stop: threading.Event, position: int
) -> None:
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
