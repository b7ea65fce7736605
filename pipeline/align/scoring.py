"""Local scores of one candidate configuration, sharing model loads between candidates.

Loading weights is the expensive part of a candidate; template, instruction, max_length and
whitespace handling only change how pairs become tokens. So loaded scorers are kept per weights
key (kind, model, revision, dtype, device) and a prompt variant is derived from one with
``with_prompt`` where the backend offers it (the Qwen3 reranker); other backends are rebuilt.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.scorers.base import QueryGroup

if TYPE_CHECKING:
    from pipeline.config.collect import ScoringSettings
    from pipeline.config.local import LocalScorerConfig

_WEIGHTS = ("kind", "model", "revision", "dtype", "device", "attn_implementation", "cache_dir", "local_files_only")


class CandidateScorers:
    """``score(settings, groups)``: the local config with ``settings`` applied, on raw query groups
    (the scorer applies text preprocessing and strip_texts itself, as collect does)."""

    def __init__(self, cfg: ScoringSettings) -> None:
        self.cfg = cfg
        self.loaded: dict[tuple, Any] = {}
        self.loads = 0

    def config(self, settings: dict[str, Any]) -> LocalScorerConfig:
        """The local config of a candidate (its ``text`` switch is not a local setting)."""
        return replace(self.cfg.local, **{k: v for k, v in settings.items() if k != "text"})

    def _scorer(self, lcfg: LocalScorerConfig) -> Any:
        from pipeline.collect import build_local_scorer

        key = tuple(repr(getattr(lcfg, name)) for name in _WEIGHTS)
        base = self.loaded.get(key)
        if base is not None and hasattr(base, "with_prompt"):
            return base.with_prompt(lcfg)
        if base is not None:
            base.close()
        scorer = build_local_scorer(lcfg, self.cfg)
        self.loads += 1
        self.loaded[key] = scorer
        return scorer

    def score(self, settings: dict[str, Any], groups: list[tuple[str, list[str]]]) -> tuple[np.ndarray, dict[str, Any]]:
        """Flat scores in group order, and the scorer's fingerprint."""
        scorer = self._scorer(self.config(settings))
        values = scorer.score([QueryGroup(q, list(docs)) for q, docs in groups])
        return np.concatenate(values).astype(np.float64), scorer.fingerprint()

    def close(self) -> None:
        for scorer in self.loaded.values():
            scorer.close()
        self.loaded.clear()
