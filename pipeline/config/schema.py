"""Structured configs: dataclass schemas registered in Hydra's ConfigStore.

``conf/config.yaml`` starts its defaults list with ``pipeline_schema`` so every YAML group and
every command-line override is validated against these dataclasses: a misspelt key or a value
outside an Enum fails at composition time, before any work starts. Groups mirror packages:
``conf/local/`` <-> ``pipeline/scorers/``, ``conf/api/`` <-> ``pipeline/api/``,
``conf/calibrator/`` <-> ``pipeline/calibration/calibrators.py``.

No field here ever holds a secret. API keys are read from the environment variable *named* by
``api.api_key_env`` in code, so neither conf/ nor DVC's resolved params.yaml can contain one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from pipeline.config.align import AlignConfig
from pipeline.config.api import ApiConfig, check_api
from pipeline.config.check import CheckConfig, check_check
from pipeline.config.collect import CollectConfig, PlanConfig, check_budget
from pipeline.config.demo import DemoConfig, TrainSettings, check_demo
from pipeline.config.embed_check import EmbedCheckConfig, LocalChanges
from pipeline.config.fit import (
    CalibratorConfig,
    DataConfig,
    EvaluateConfig,
    ExportConfig,
    FusionConfig,
    ModelsConfig,
    ReportConfig,
    check_fit,
)
from pipeline.config.local import LocalScorerConfig, check_chunking
from pipeline.config.reference import ReferenceConfig
from pipeline.config.serve import ServeConfig
from pipeline.config.settings import check_ranges, setting
from pipeline.runtime.text import TextConfig


@dataclass
class PipelineConfig:
    #: names a run's files: data/<name>/ (table), artifacts/calibrators/<name>/, reports/<name>/
    name: str = "demo"
    seed: int = setting(0, ge=0, why="numpy seeds are non-negative")
    data: DataConfig = field(default_factory=DataConfig)
    calibrator: CalibratorConfig = field(default_factory=CalibratorConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    text: TextConfig = field(default_factory=TextConfig)
    local: LocalScorerConfig = field(default_factory=LocalScorerConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    check: CheckConfig = field(default_factory=CheckConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    embed_check: EmbedCheckConfig = field(default_factory=EmbedCheckConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)


SCHEMAS: tuple[type, ...] = (
    PipelineConfig,
    DataConfig,
    CalibratorConfig,
    FusionConfig,
    EvaluateConfig,
    ModelsConfig,
    ExportConfig,
    ReportConfig,
    TextConfig,
    LocalScorerConfig,
    ApiConfig,
    CollectConfig,
    CheckConfig,
    AlignConfig,
    ServeConfig,
    EmbedCheckConfig,
    LocalChanges,
    ReferenceConfig,
    DemoConfig,
    TrainSettings,
)


def register_configs() -> None:
    """Register the schema once; safe to call repeatedly (tests compose many times)."""
    ConfigStore.instance().store(name="pipeline_schema", node=PipelineConfig)


def validate(cfg: PipelineConfig) -> None:
    """Every range, then each section's checks that involve several settings."""
    check_ranges(cfg)
    check_fit(cfg)
    check_api(cfg.api)
    check_check(cfg.check)
    check_budget(cfg.collect.budget, cfg.api)
    for key, local in [
        ("local", cfg.local),
        *((f"collect.extra_local.{c}", entry) for c, entry in cfg.collect.extra_local.items()),
    ]:
        check_chunking(key, local)
    check_demo(cfg.demo)
