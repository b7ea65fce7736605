"""Local scorers (transformers backends), one file per backend.

``build_scorer(cfg.local, cfg.text)`` returns the configured backend. Importing this package does
not import torch or transformers: the backend module is imported when a scorer is built.
``local.engine.base_url`` selects :mod:`pipeline.scorers.engine` (an HTTP engine, no torch here).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pipeline.config.local import LocalScorerConfig, ScorerKind, coerce
from pipeline.scorers.base import QueryGroup, Scorer

if TYPE_CHECKING:
    from pipeline.runtime.text import TextConfig

__all__ = ["QueryGroup", "Scorer", "LocalScorerConfig", "ScorerKind", "build_scorer", "BACKENDS"]

#: kind -> (module, class); modules are imported lazily
BACKENDS: dict[ScorerKind, tuple[str, str]] = {
    ScorerKind.qwen3_reranker: ("pipeline.scorers.qwen3_reranker", "Qwen3RerankerScorer"),
    ScorerKind.cross_encoder: ("pipeline.scorers.cross_encoder", "CrossEncoderScorer"),
    ScorerKind.embedding: ("pipeline.scorers.embedding", "EmbeddingScorer"),
}


def build_scorer(local_cfg: LocalScorerConfig, text_cfg: TextConfig | None = None) -> Scorer:
    """Load the model ``local_cfg`` describes and return a ready :class:`Scorer`.

    Raises :class:`pipeline.scorers.loading.ScorerLoadError` when the checkpoint cannot be scored
    as configured (missing weights, no single yes/no tokens, wrong kind), ``ValueError`` for
    invalid settings; both messages name the config key to change.
    """
    local_cfg = coerce(local_cfg)
    if local_cfg.engine.base_url:  # an HTTP engine runs the model (vLLM, TEI, infinity)
        from pipeline.scorers.engine import EngineScorer

        return EngineScorer(local_cfg, text_cfg)
    module_name, class_name = BACKENDS[local_cfg.kind]
    backend = getattr(importlib.import_module(module_name), class_name)
    return backend(local_cfg, text_cfg)
