"""``python -m pipeline collect``: the CLI entry of the collect stage (:mod:`pipeline.collect`)."""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.collect import collect
from pipeline.config.collect import ScoringSettings
from pipeline.config.schema import PipelineConfig


def run(cfg: PipelineConfig) -> int:
    """Errors (settings found before any request, failures on the way) are PipelineErrors: exit 2."""
    collect(ScoringSettings.of(cfg))
    return 0
