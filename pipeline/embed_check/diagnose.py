"""Name the cause of a disagreement with an API: which single change to the local configuration
makes the local side reproduce the API's vectors.

Candidates: queries without the task instruction, each other pooling, each other dtype, each text
stripped of its surrounding whitespace (as infinity does with every input). Each is
embedded locally and compared with the API's vectors; the closest candidate explains the
disagreement when it cuts the mean distance (``1 - cos``) to a fifth of the configured one and at
least halves the worst. (A dtype is never reproduced bit for bit: bfloat16 results depend on how
texts are batched, so the bar cannot be "identical".) The other sizes are not candidates: vectors of another length are an error
before any comparison.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from pipeline.config.local import DType, LocalScorerConfig, Pooling, coerce
from pipeline.embed_check.compare import normalised
from pipeline.embed_check.sides import LocalSide
from pipeline.embed_check.texts import TextSet
from pipeline.runtime.text import TextConfig


def candidates(cfg: LocalScorerConfig) -> list[tuple[str, LocalScorerConfig]]:
    cfg = coerce(cfg)
    out = []
    if cfg.task is not None:
        out.append(("the other side embeds queries without the task instruction", replace(cfg, task=None)))
    for pooling in Pooling:
        if pooling is not cfg.pooling:
            out.append(
                (
                    f"the other side pools with '{pooling.value}' (this side: '{cfg.pooling.value}')",
                    replace(cfg, pooling=pooling),
                )
            )
    for dtype in (DType.float32, DType.bfloat16, DType.float16):
        if dtype is not cfg.dtype:
            out.append((f"the other side runs {dtype.value} (this side: {cfg.dtype.value})", replace(cfg, dtype=dtype)))
    if not cfg.strip_prompt:  # infinity strips every input: local.strip_prompt=true is what it computes
        out.append(
            (
                "the other side strips each text's surrounding whitespace (set local.strip_prompt=true)",
                replace(cfg, strip_prompt=True),
            )
        )
    return out


def diagnose(
    texts: TextSet,
    cfg: LocalScorerConfig,
    text_cfg: TextConfig | None,
    other: np.ndarray,
    configured_cosines: np.ndarray,
) -> dict[str, Any]:
    """Every candidate's agreement with ``other``; ``cause`` is the one that explains it, or None."""
    other = normalised(other)
    configured = float(configured_cosines.min())
    configured_mean = float(configured_cosines.mean())
    tried = []
    for cause, variant in candidates(cfg):
        side = LocalSide(variant, text_cfg, label="candidate")
        try:
            vectors = normalised(side.embed(texts))
        finally:
            side.close()
        if vectors.shape != other.shape:
            continue
        cosines = np.einsum("ij,ij->i", vectors, other)
        tried.append({"cause": cause, "min_cosine": float(cosines.min()), "mean_cosine": float(cosines.mean())})
    tried.sort(key=lambda t: -t["mean_cosine"])
    best = tried[0] if tried else None
    explains = (
        best is not None
        and (1 - best["mean_cosine"]) <= 0.2 * (1 - configured_mean)
        and (1 - best["min_cosine"]) <= 0.5 * (1 - configured)
    )
    return {
        "cause": best["cause"] if explains else None,
        "configured_min_cosine": configured,
        "configured_mean_cosine": configured_mean,
        "candidates": tried,
    }
