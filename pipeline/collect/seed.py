"""Seed the score cache from the table collect wrote before (the committed demo table, say)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.core.cache import ScoreCache, pair_key
from pipeline.data.dataset import Dataset
from pipeline.runtime.text import describe, preprocess

if TYPE_CHECKING:
    from pipeline.config.collect import ScoringSettings


def seed_cache_from_table(cfg: ScoringSettings, dataset: Dataset, cache: ScoreCache) -> int:
    """Put the scores of the table this stage wrote before (``collect.output``) into the cache.

    Why: the table is committed (the demo's is), the cache is not, so in a fresh clone the cache
    is empty while the scores are right there; switching the local model would otherwise re-ask
    the API for every reference score. Each column goes in under the fingerprint hash its sidecar
    records, which is what produced it, and only when the table was collected from the same
    dataset file (sha256) with the same preprocessing, so every key names the texts that were
    scored. Scores already cached are left alone. Returns how many were added.
    """
    import pandas as pd

    from pipeline.data.table import TableError, read_table_meta

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
        frame = (
            pd.read_parquet(output) if output.suffix.lower() in {".parquet", ".pq"} else pd.read_csv(output, dtype=ids)
        )
    except Exception:  # an unreadable old table is simply not used
        return 0
    keys = {
        (q.query_id, d.doc_id): pair_key(preprocess(q.text, cfg.text), preprocess(d.text, cfg.text))
        for q in dataset.queries
        for d in q.documents
    }
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
