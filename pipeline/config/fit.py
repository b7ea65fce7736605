"""The fit side's sections: ``data``, ``calibrator``, ``fusion``, ``evaluate``, ``models``,
``export``, ``report``; the checks that involve two of their fields; and where a fit's outputs go
(:func:`artifact_name`, :func:`report_dir`).

The fit package reads these through :class:`FitSettings`, the sections of one fit and nothing
else, so fitting never sees the API, collect or serve settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from pathlib import PurePath
from typing import Any, Dict, List, Optional

from pipeline.calibration.ranges import CV_FOLDS, DEGREE, SIGMOID_C
from pipeline.config.settings import SectionView, SettingError, setting
from pipeline.runtime.text import TextConfig

#: ``calibrator.auto_max_rows`` and ``fusion.auto_max_rows``: a model choice is made on at most
#: this many rows of whole queries (the bench's tables: the same choices as on every row)
AUTO_MAX_ROWS = 10_000


class TableFormat(Enum):
    auto = "auto"
    csv = "csv"
    parquet = "parquet"


class Family(Enum):
    """Calibrator families; see :mod:`pipeline.calibration.calibrators`."""

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


class BootstrapMaps(Enum):
    """Weight intervals: what a resample refits; see :mod:`pipeline.calibration.fusion_bootstrap`."""

    fixed = "fixed"  # the weights, the source maps held at the full-data fit
    refit = "refit"  # the whole fusion step, maps included


class FusionObjective(Enum):
    """What the fusion weights are fitted for; see :mod:`pipeline.calibration.fusion`."""

    auto = "auto"  # the better held-out ``combined`` of the two
    rank = "rank"  # within-query pairs ordered like the reference (pairwise logistic)
    score = "score"  # least squares against the reference


class FusionScale(Enum):
    """The scale each source is fused on; see :mod:`pipeline.calibration.fusion_scale`."""

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
    # ranges the estimators check too: declared once, in pipeline.calibration.ranges
    degree: int = setting(3, **DEGREE.bounds())
    # bounds of the output; null = the target's range seen in training
    y_min: Optional[float] = setting(None)
    y_max: Optional[float] = setting(None)
    sigmoid_C: float = setting(100.0, **SIGMOID_C.bounds())
    candidates: list[Family] = field(
        default_factory=lambda: [Family.poly, Family.isotonic, Family.sigmoid, Family.identity]
    )
    # auto: candidates are compared by held-out MSE with GroupKFold(n_splits) by query
    auto_splits: int = setting(5, **CV_FOLDS.bounds())
    # auto: compare on at most this many rows (whole queries, seeded), then refit the chosen
    # family on every row; null = compare on every row
    auto_max_rows: Optional[int] = setting(AUTO_MAX_ROWS, ge=100)


@dataclass
class FusionConfig:
    method: FusionMethod = FusionMethod.nonneg_linear
    objective: FusionObjective = FusionObjective.auto
    scale: FusionScale = FusionScale.calibrated
    center: FusionCenter = FusionCenter.none
    # objective=auto: held-out comparison with GroupKFold by query inside the training rows
    auto_splits: int = setting(3, **CV_FOLDS.bounds())
    # objective=auto: compare on at most this many rows (whole queries, seeded), then fit the
    # chosen objective on every row; null = compare on every row
    auto_max_rows: Optional[int] = setting(AUTO_MAX_ROWS, ge=100)
    # resamples of whole queries for the reported weight intervals (0 = none)
    n_bootstrap: int = setting(200, ge=0, why="0 = no intervals")
    # weight intervals: refit the weights with the source maps held fixed (fast), or refit the
    # maps too on every resample (one full fusion fit each; minutes on a million pairs)
    bootstrap_maps: BootstrapMaps = BootstrapMaps.fixed


@dataclass
class EvaluateConfig:
    n_splits: int = setting(5, **CV_FOLDS.bounds())
    n_bootstrap: int = setting(1000, ge=0, why="0 = no intervals")
    confidence: float = setting(0.95, gt=0, lt=1, why="the coverage of the intervals, e.g. 0.95")
    top_k: int = setting(3, ge=1)
    # warn when fewer queries than this, or when an interval is wider than max_ci_width
    min_queries: int = setting(30, ge=0)
    max_ci_width: float = setting(0.1, gt=0)
    # warn when a source's raw per-query rank agreement is below this and no `align` run chose
    # its configuration (the sidecar records none): the prompt, not a calibrator, is the fix
    min_rank_agreement: float = setting(0.9, ge=-1, le=1, why="a Spearman correlation")
    # keep/drop decisions {score >= t} vs {reference >= t} are compared at these thresholds on the
    # reference scale; null = 0.1, 0.3, 0.5, 0.7, 0.9 for a reference in [0, 1], else its quantiles
    # at those levels; [] = none
    thresholds: Optional[List[float]] = None


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
    #: calibration.csv and calibration.png show at most this many pairs, evenly spaced in score
    #: order (a million points draw as one blot and take seconds to write)
    max_points: int = setting(20_000, ge=100)


def artifact_name(cfg: Any) -> str:
    """``export.name``, else derived from the table: the folder of a ``paired_scores.*`` table
    (what collect writes: ``data/<name>/paired_scores.csv`` -> ``<name>``), otherwise the file's
    stem; characters outside ``[A-Za-z0-9._-]`` become ``_``. So a fit on a user's table never
    lands in the demo's artifact by default."""
    if cfg.export.name:
        return cfg.export.name
    path = PurePath(cfg.data.path)
    stem = path.stem if path.stem != "paired_scores" or not path.parent.name else path.parent.name
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip("._-") or "calibrator"


def report_dir(cfg: Any) -> str:
    """``report.dir``, else ``reports/<artifact name>``."""
    return cfg.report.dir or f"reports/{artifact_name(cfg)}"


@dataclass
class FitSettings(SectionView):
    """The sections one fit reads (``FitSettings.of(cfg)``): what ``pipeline.fit`` takes instead
    of the whole config. Same attribute names as the config, so ``settings.calibrator.degree``
    reads as ``cfg.calibrator.degree`` does."""

    name: str
    seed: int
    data: DataConfig
    calibrator: CalibratorConfig
    fusion: FusionConfig
    evaluate: EvaluateConfig
    models: ModelsConfig
    export: ExportConfig
    report: ReportConfig
    text: TextConfig


def check_fit(cfg: Any) -> None:
    """The fit sections' cross-field checks (``cfg``: a ``PipelineConfig`` or :class:`FitSettings`)."""
    cal = cfg.calibrator
    if cal.y_min is not None and cal.y_max is not None and not cal.y_min < cal.y_max:
        raise SettingError(f"calibrator.y_min={cal.y_min:g} must be below calibrator.y_max={cal.y_max:g}")
    if cfg.evaluate.n_bootstrap and cfg.evaluate.n_bootstrap < 10:
        raise SettingError(
            f"evaluate.n_bootstrap={cfg.evaluate.n_bootstrap}: use 0 (no intervals) or at least 10 resamples"
        )
    if cfg.export.name is not None:
        from pipeline.runtime.loader import ArtifactError, check_name

        try:
            check_name(cfg.export.name)
        except ArtifactError as exc:
            raise SettingError(f"export.name: {exc}") from None
