"""``python -m pipeline resolve``: write the model versions actually in use to ``collect.versions``."""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.collect.versions import run_resolve
from pipeline.config.collect import ScoringSettings
from pipeline.config.schema import PipelineConfig


def run(cfg: PipelineConfig) -> int:
    return run_resolve(ScoringSettings.of(cfg))
