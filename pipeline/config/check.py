"""The ``check`` section: the drift check's sample, tolerance and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from pipeline.config.collect import ScoringSettings
from pipeline.config.fit import DataConfig, EvaluateConfig, ExportConfig, ReportConfig
from pipeline.config.settings import SettingError, setting


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
    n_bootstrap: int = setting(1000, ge=0, why="0 = no intervals")


def check_check(cfg: CheckConfig) -> None:
    """Metric names exist (the names are :mod:`pipeline.calibration.metrics`'s)."""
    from pipeline.calibration.metrics import METRICS

    unknown = [m for m in cfg.metrics if m not in METRICS]
    if unknown:
        raise SettingError(f"check.metrics: unknown metric(s) {unknown}; allowed: {', '.join(METRICS)}")


@dataclass
class CheckSettings(ScoringSettings):
    """What ``check`` reads: how pairs are scored, the check, and where the artifact and its
    reports are (``name``, ``data``, ``export``, ``report``: see :func:`pipeline.config.fit.artifact_name`)."""

    check: CheckConfig
    name: str
    data: DataConfig
    evaluate: EvaluateConfig
    export: ExportConfig
    report: ReportConfig
