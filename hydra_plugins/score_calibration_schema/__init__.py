"""Registers the pipeline's config schema (``pipeline_schema``) with Hydra in processes that
compose ``conf/`` without importing the pipeline first: DVC's Hydra composition in
``dvc exp run -S ...``, which writes params.yaml.

Hydra imports every module under a ``hydra_plugins`` package when it starts, and DVC puts the
repository root (its ``hydra.plugins_path``) on ``sys.path`` for that. Without this, DVC fails with
"Could not load 'pipeline_schema'"; with it, DVC validates ``-S`` overrides against the same
dataclasses as ``python -m pipeline``.
"""

from pipeline.config import register_configs

register_configs()
