"""``python -m pipeline evaluate``: held-out agreement of raw vs calibrated scores, no export.

Writes the report files of :mod:`pipeline.fit.outputs` and prints the table.
"""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.config.fit import FitSettings
from pipeline.config.schema import PipelineConfig
from pipeline.fit.run import run_fit


def run(cfg: PipelineConfig) -> int:
    run_fit(FitSettings.of(cfg), export=False)
    return 0
