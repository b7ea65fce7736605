"""One unit of local scoring, whoever scores it (this process or a Ray worker): the pending
documents of a few query groups in, checked cache items out. Only the collect driver writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.collect.sources import CollectError, Groups, SourceState
from pipeline.core.cache import pair_key


class Stopped(Exception):
    """Another source failed: stop between units of work."""


def pending_groups(groups: Groups, src: SourceState, chunk: Sequence[int]) -> list[tuple[str, list[str]]]:
    """``(query, pending documents)`` of the groups in ``chunk``."""
    return [(groups[g][0], [groups[g][1][j] for j in src.pending[g]]) for g in chunk]


def checked_items(
    column: str, chunk: Sequence[int], batch: Sequence[tuple[str, Sequence[str]]], results: Sequence[Any]
) -> list[tuple[str, float]]:
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
