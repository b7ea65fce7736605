"""``python -m pipeline serve``: the local model + its calibrator as a drop-in for SiliconFlow's
/v1/rerank and /v1/embeddings (:mod:`pipeline.serve`)."""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.config.schema import PipelineConfig
from pipeline.config.serve import ServeSettings
from pipeline.serve.run import run_serve


def run(cfg: PipelineConfig) -> int:
    return run_serve(ServeSettings.of(cfg))
