"""``python -m pipeline plan``: the pairs (and cost) a budgeted collection will need, from a pilot round."""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.collect import collect
from pipeline.config.collect import PlanSettings
from pipeline.config.schema import PipelineConfig


def run(cfg: PipelineConfig) -> int:
    settings = PlanSettings.of(cfg)
    collect(settings, pilot=settings.plan)
    return 0
