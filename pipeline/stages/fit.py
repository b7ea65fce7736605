"""``python -m pipeline fit``: evaluate on held-out queries, then fit on all rows and export."""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.config.fit import FitSettings
from pipeline.config.schema import PipelineConfig
from pipeline.fit.run import run_fit


def run(cfg: PipelineConfig) -> int:
    run_fit(FitSettings.of(cfg))
    return 0
