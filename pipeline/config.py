"""Structured configs: dataclass schemas registered in Hydra's ConfigStore.

``conf/config.yaml`` starts its defaults list with ``pipeline_schema`` so every YAML group and
every command-line override is validated against these dataclasses: a misspelt key or a value
outside an Enum fails at composition time, before any work starts. Groups mirror packages:
``conf/local/`` <-> ``pipeline/scorers/``, ``conf/api/`` <-> ``pipeline/api/``,
``conf/calibrator/`` <-> ``pipeline/calibrators.py``.

No field here ever holds a secret. API keys are read from the environment variable *named* by
``api.api_key_env`` in code, so neither conf/ nor DVC's resolved params.yaml can contain one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from hydra.core.config_store import ConfigStore

from pipeline.api.config import ApiConfig, CollectConfig
from pipeline.scorers.config import LocalScorerConfig
from pipeline.text import TextConfig


class TableFormat(Enum):
    auto = "auto"
    csv = "csv"
    parquet = "parquet"


class Family(Enum):
    """Calibrator families; see :mod:`pipeline.calibrators`."""

    auto = "auto"
    poly = "poly"
    isotonic = "isotonic"
    sigmoid = "sigmoid"
    identity = "identity"


class FusionMethod(Enum):
    """How several local sources become one score before calibration."""

    none = "none"  # only valid with exactly one source
    nonneg_linear = "nonneg_linear"


class FusionCenter(Enum):
    """What the fusion weights are fitted to: all pairs, or within-query deviations (ranking)."""

    none = "none"
    query = "query"


@dataclass
class DataConfig:
    """Which paired-score table to read and which columns play which role."""

    path: str = "data/demo/paired_scores.csv"
    format: TableFormat = TableFormat.auto
    query_col: str = "query_id"
    doc_col: str = "doc_id"
    target: str = "reference"
    sources: list[str] = field(default_factory=lambda: ["local"])


@dataclass
class CalibratorConfig:
    family: Family = Family.auto
    degree: int = 3
    # bounds of the output; null = the target's range seen in training
    y_min: Optional[float] = None
    y_max: Optional[float] = None
    sigmoid_C: float = 100.0
    candidates: list[Family] = field(
        default_factory=lambda: [Family.poly, Family.isotonic, Family.sigmoid, Family.identity]
    )
    # auto: candidates are compared by held-out MSE with GroupKFold(n_splits) by query
    auto_splits: int = 5


@dataclass
class FusionConfig:
    method: FusionMethod = FusionMethod.nonneg_linear
    center: FusionCenter = FusionCenter.none


@dataclass
class EvaluateConfig:
    n_splits: int = 5
    n_bootstrap: int = 1000
    confidence: float = 0.95
    top_k: int = 3
    # warn when fewer queries than this, or when an interval is wider than max_ci_width
    min_queries: int = 30
    max_ci_width: float = 0.1


@dataclass
class ModelsConfig:
    """Identities recorded in the manifest when the table's metadata does not carry them."""

    source_model: Optional[str] = None
    source_revision: Optional[str] = None
    target_model: Optional[str] = None
    target_revision: Optional[str] = None


@dataclass
class ExportConfig:
    name: str = "demo"
    root: str = "artifacts/calibrators"
    joblib: bool = True


@dataclass
class ReportConfig:
    dir: str = "reports/fit"
    plots: bool = True


@dataclass
class PipelineConfig:
    seed: int = 0
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
)


def register_configs() -> None:
    """Register the schema once; safe to call repeatedly (tests compose many times)."""
    ConfigStore.instance().store(name="pipeline_schema", node=PipelineConfig)
