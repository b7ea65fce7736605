"""``python -m pipeline embed-check``: two embedding setups, text by text, as a deployment gate."""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.config.embed_check import EmbedCheckSettings
from pipeline.config.schema import PipelineConfig
from pipeline.embed_check.run import run_embed_check


def run(cfg: PipelineConfig) -> int:
    return run_embed_check(EmbedCheckSettings.of(cfg))
