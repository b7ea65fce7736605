"""``python -m pipeline demo-train``: train the demo reranker and report how well it ranks."""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.config.schema import PipelineConfig
from pipeline.demo.train import run_training


def run(cfg: PipelineConfig) -> int:
    return run_training(cfg.demo, cfg.seed)
