"""``python -m pipeline align``: the local scoring configuration that reproduces the API."""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.align.run import run_align
from pipeline.config.align import AlignSettings
from pipeline.config.schema import PipelineConfig


def run(cfg: PipelineConfig) -> int:
    return run_align(AlignSettings.of(cfg))
