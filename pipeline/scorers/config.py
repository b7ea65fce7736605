"""Schema of the ``local`` config group (conf/local/*.yaml). Owned by the scorers package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass
class LocalScorerConfig:
    # placeholder until the scorers land; extended by pipeline/scorers
    kind: str = "qwen3_reranker"
    model: str = "Qwen/Qwen3-Reranker-0.6B"
    revision: Optional[str] = None
