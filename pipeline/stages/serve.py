"""``python -m pipeline serve``: the local model + its calibrator as a drop-in for SiliconFlow's"""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.config.schema import PipelineConfig
from pipeline.serve.run import run_serve


def run(cfg: PipelineConfig) -> int:
    return run_serve(cfg)
