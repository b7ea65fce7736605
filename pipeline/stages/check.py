"""``python -m pipeline check``: is the deployment still what its calibrator was fitted for?"""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.check.run import run_check
from pipeline.config.check import CheckSettings
from pipeline.config.schema import PipelineConfig


def run(cfg: PipelineConfig) -> int:
    return run_check(CheckSettings.of(cfg))
