"""``python -m pipeline collect``: the CLI entry of the collect stage (:mod:`pipeline.collect`)."""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

import sys
from typing import TYPE_CHECKING

from pipeline.api.client import ApiConfigError
from pipeline.api.errors import ApiError
from pipeline.cache import CacheError
from pipeline.collect import CollectError, collect
from pipeline.dataset import DatasetError
from pipeline.scorers.engine import EngineError

if TYPE_CHECKING:
    from pipeline.config import PipelineConfig


def run(cfg: "PipelineConfig") -> int:
    """Exit 2 for settings that cannot work (found before any request), 1 for failures on the way."""
    try:
        collect(cfg)
    except ApiConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (DatasetError, ApiError, CacheError, CollectError, EngineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
