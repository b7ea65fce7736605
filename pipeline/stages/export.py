"""``python -m pipeline export``: fit on all rows and write the artifact, no cross-validation.

The manifest's held-out metrics come from ``metrics.json`` when an earlier ``fit``/``evaluate``
produced it from the same data and settings (:func:`pipeline.fit.export.matching_metrics`).
"""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.config.fit import FitSettings
from pipeline.config.schema import PipelineConfig
from pipeline.fit.run import run_fit


def run(cfg: PipelineConfig) -> int:
    run_fit(FitSettings.of(cfg), evaluate_held_out=False)
    return 0
