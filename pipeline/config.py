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

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePath
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore

from pipeline.api.config import ApiConfig
from pipeline.collect.config import RayConfig
from pipeline.demo.config import DemoConfig, ReferenceConfig, TrainSettings
from pipeline.scorers.config import DType, LocalScorerConfig, Template
from pipeline.embed_check.config import EmbedCheckConfig, LocalChanges
from pipeline.serve.config import ServeConfig
from pipeline.text import TextConfig
from pipeline.validation import setting


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
    """Score objective: fit on all values, or on within-query deviations (rank pairs always are)."""

    none = "none"
    query = "query"


class FusionObjective(Enum):
    """What the fusion weights are fitted for; see :mod:`pipeline.fusion`."""

    auto = "auto"  # the better held-out ``combined`` of the two
    rank = "rank"  # within-query pairs ordered like the reference (pairwise logistic)
    score = "score"  # least squares against the reference


class FusionScale(Enum):
    """The scale each source is fused on; see :mod:`pipeline.fusion_scale`."""

    calibrated = "calibrated"  # each source's own monotone map onto the reference's linear scale
    type = "type"  # logit of probabilities, other score types unchanged
    raw = "raw"  # unchanged (earlier releases)


class ScoreType(Enum):
    """What a score column is, for ``fusion.scale``; the sidecar records it for collected tables."""

    probability = "probability"
    logit = "logit"
    cosine = "cosine"
    unbounded = "unbounded"


@dataclass
class DataConfig:
    """Which paired-score table to read and which columns play which role."""

    path: str = "data/demo/paired_scores.csv"
    format: TableFormat = TableFormat.auto
    query_col: str = "query_id"
    doc_col: str = "doc_id"
    target: str = "reference"
    sources: list[str] = field(default_factory=lambda: ["local"])
    # column -> score type, for tables without a sidecar entry; unset columns are inferred
    score_types: Dict[str, ScoreType] = field(default_factory=dict)
    # columns reported raw next to the fitted ones, never fitted or exported: e.g. the unaligned
    # local column beside an aligned one (raw, aligned and aligned+calibrated side by side)
    compare: list[str] = field(default_factory=list)


@dataclass
class CalibratorConfig:
    family: Family = Family.auto
    degree: int = setting(3, ge=1, le=10, why='the polynomial degree')
    # bounds of the output; null = the target's range seen in training
    y_min: Optional[float] = setting(None)
    y_max: Optional[float] = setting(None)
    sigmoid_C: float = setting(100.0, gt=0, why='inverse regularisation strength')
    candidates: list[Family] = field(
        default_factory=lambda: [Family.poly, Family.isotonic, Family.sigmoid, Family.identity]
    )
    # auto: candidates are compared by held-out MSE with GroupKFold(n_splits) by query
    auto_splits: int = setting(5, ge=2, why='GroupKFold by query needs at least 2 folds')


@dataclass
class FusionConfig:
    method: FusionMethod = FusionMethod.nonneg_linear
    objective: FusionObjective = FusionObjective.auto
    scale: FusionScale = FusionScale.calibrated
    center: FusionCenter = FusionCenter.none
    # objective=auto: held-out comparison with GroupKFold by query inside the training rows
    auto_splits: int = setting(3, ge=2, why='GroupKFold by query needs at least 2 folds')
    # resamples of whole queries for the reported weight intervals (0 = none)
    n_bootstrap: int = setting(200, ge=0, why='0 = no intervals')


@dataclass
class EvaluateConfig:
    n_splits: int = setting(5, ge=2, why='GroupKFold by query needs at least 2 folds')
    n_bootstrap: int = setting(1000, ge=0, why='0 = no intervals')
    confidence: float = setting(0.95, gt=0, lt=1, why='the coverage of the intervals, e.g. 0.95')
    top_k: int = setting(3, ge=1)
    # warn when fewer queries than this, or when an interval is wider than max_ci_width
    min_queries: int = setting(30, ge=0)
    max_ci_width: float = setting(0.1, gt=0)
    # warn when a source's raw per-query rank agreement is below this and no `align` run chose
    # its configuration (the sidecar records none): the prompt, not a calibrator, is the fix
    min_rank_agreement: float = setting(0.9, ge=-1, le=1, why='a Spearman correlation')


@dataclass
class ModelsConfig:
    """Identities recorded in the manifest when the table's metadata does not carry them."""

    source_model: Optional[str] = None
    source_revision: Optional[str] = None
    target_model: Optional[str] = None
    target_revision: Optional[str] = None


@dataclass
class ExportConfig:
    #: artifact directory name under ``root``; null = derived from the table (see run_name)
    name: Optional[str] = None
    root: str = "artifacts/calibrators"
    joblib: bool = True
    #: replace an artifact of the same name that was fitted on another table
    replace: bool = False


@dataclass
class ReportConfig:
    #: where evaluate/fit/check write their reports; null = reports/<artifact name>
    dir: Optional[str] = None
    plots: bool = True


@dataclass
class CollectConfig:
    """The collect stage: dataset in, paired-score table (+ sidecar meta) out."""

    dataset: str = "data/demo/calibration.jsonl"
    output: str = "data/demo/paired_scores.csv"
    # what `resolve` writes: the model versions in use (the DVC collect stage depends on it)
    versions: str = "data/demo/versions.json"
    # SQLite score cache shared by every source (keyed by each source's fingerprint hash)
    cache: str = "cache/scores.sqlite"
    # score a deterministic sample of this many query groups (by hash of query_id); null = all
    max_queries: Optional[int] = setting(None, ge=1, why='null = every query')
    # print requests, tokens and estimated cost for the pairs not cached yet; send nothing
    dry_run: bool = False
    run_api: bool = True
    run_local: bool = True
    # output column names (defaults are what the fit stage expects)
    query_col: str = "query_id"
    doc_col: str = "doc_id"
    reference_col: str = "reference"
    local_col: str = "local"
    # written when the dataset has graded labels; null = never write labels
    label_col: Optional[str] = "label"
    # further local scorers, one column each: column -> a full ``local`` config. From the command
    # line: +local@collect.extra_local.<column>=<conf/local entry>
    extra_local: Dict[str, LocalScorerConfig] = field(default_factory=dict)
    # query groups per local scorer call (one cache transaction each)
    local_groups_per_batch: int = setting(8, ge=1)
    # score locally in a worker thread while API requests are in flight
    overlap_local_and_api: bool = True
    progress: bool = True
    # score the local column(s) on Ray workers in shards of query groups (see README "Scale-out")
    ray: RayConfig = field(default_factory=RayConfig)


@dataclass
class CheckConfig:
    """The drift check: a fresh sample scored now, compared with an exported artifact."""

    #: artifact directory; null = <export.root>/<artifact name>
    artifact: Optional[str] = None
    #: query groups of collect.dataset scored (a deterministic sample by hash of query_id)
    queries: int = setting(40, ge=1)
    #: drift when a metric is below the manifest's held-out interval by more than this
    tolerance: float = setting(0.05, ge=0)
    #: the agreement metrics compared with the manifest (higher is better)
    metrics: list[str] = field(default_factory=lambda: ["pearson", "spearman"])
    #: bootstrap resamples for the sample's own intervals
    n_bootstrap: int = setting(1000, ge=0, why='0 = no intervals')


@dataclass
class AlignConfig:
    """The search for the local configuration that reproduces the API (``python -m pipeline align``)."""

    #: query groups of collect.dataset searched on, and a disjoint set that confirms the winner
    sample_queries: int = setting(32, ge=2, why='per-query agreement needs queries')
    confirm_queries: int = setting(32, ge=1)
    #: candidate values per axis; the current local config's value is always tried too
    templates: list[Template] = field(default_factory=lambda: [Template.official, Template.vllm, Template.none])
    strip_texts: list[bool] = field(default_factory=lambda: [False, True])
    strip_prompt: list[bool] = field(default_factory=lambda: [False, True])
    #: besides the current one, the model's default and api.instruction (when set)
    instructions: list[str] = field(default_factory=list)
    max_lengths: list[int] = field(default_factory=list)
    #: long documents split into chunks, scored by the best one (SiliconFlow's max_chunks_per_doc for
    #: bge-reranker-v2-m3 / bce-reranker-base_v1; kind=cross_encoder, template=none); null = none.
    #: Empty: not tried. The API must be asked the same way (+api.extra_body.max_chunks_per_doc=N)
    max_chunks_per_doc: list[Optional[int]] = field(default_factory=list)
    #: text.* switches tried one at a time (e.g. [nfkc, whitespace]); each changes what the API
    #: is sent too, so each costs one more API pass over the samples. Empty: none tried
    text_switches: list[str] = field(default_factory=list)
    dtypes: list[DType] = field(default_factory=lambda: [DType.float32, DType.bfloat16])
    #: coordinate search: passes over the axes (each pass tries every value of one axis at a time)
    max_passes: int = setting(2, ge=1)
    #: pairs sent twice, bypassing the cache, to measure the API's disagreement with itself
    noise_pairs: int = setting(16, ge=0, why='0 = no noise-floor measurement')
    #: stop when a candidate's max |delta| is within the noise floor plus this
    tolerance: float = setting(1e-5, ge=0)
    #: no candidate within this max |delta| and below rank_close per-query Spearman: unalignable
    close_delta: float = setting(0.02, gt=0)
    rank_close: float = setting(0.98, ge=-1, le=1)
    n_bootstrap: int = setting(1000, ge=0, why='0 = no intervals')
    #: reports/align/<name>/ and conf/local/aligned-<name>.yaml
    name: str = "${name}"
    root: str = "reports/align"
    #: copy the winner into conf/local/ (also `--apply`); without it nothing under conf/ changes
    apply: bool = False


@dataclass
class PipelineConfig:
    #: names a run's files: data/<name>/ (table), artifacts/calibrators/<name>/, reports/<name>/
    name: str = "demo"
    seed: int = setting(0, ge=0, why='numpy seeds are non-negative')
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


def artifact_name(cfg: PipelineConfig) -> str:
    """``export.name``, else derived from the table: the folder of a ``paired_scores.*`` table
    (what collect writes: ``data/<name>/paired_scores.csv`` -> ``<name>``), otherwise the file's
    stem; characters outside ``[A-Za-z0-9._-]`` become ``_``. So a fit on a user's table never
    lands in the demo's artifact by default."""
    if cfg.export.name:
        return cfg.export.name
    path = PurePath(cfg.data.path)
    stem = path.stem if path.stem != "paired_scores" or not path.parent.name else path.parent.name
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-") or "calibrator"


def report_dir(cfg: PipelineConfig) -> str:
    """``report.dir``, else ``reports/<artifact name>``."""
    return cfg.report.dir or f"reports/{artifact_name(cfg)}"


def register_configs() -> None:
    """Register the schema once; safe to call repeatedly (tests compose many times)."""
    ConfigStore.instance().store(name="pipeline_schema", node=PipelineConfig)
