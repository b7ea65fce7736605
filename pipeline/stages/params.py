"""``python -m pipeline params [overrides]``: write the composed config to ``params.yaml``.

The DVC stages read their parameters from ``params.yaml`` (``--params params.yaml``), which DVC's
Hydra composition rewrites on every ``dvc exp run``; ``dvc repro`` does not compose. After editing
``conf/``, run this (or ``dvc exp run``) so that ``dvc repro`` sees the change. The text is exactly
what DVC writes for the same overrides (tested), so the committed file never differs from it.
"""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.config.compose import to_yaml
from pipeline.config.schema import PipelineConfig
from pipeline.core.files import atomic_write_text

OUTPUT = "params.yaml"


def run(cfg: PipelineConfig) -> int:
    atomic_write_text(OUTPUT, to_yaml(cfg))
    print(f"wrote {OUTPUT}")
    return 0
