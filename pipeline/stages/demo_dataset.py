"""``python -m pipeline demo-dataset``: expand the seed texts into the demo's two datasets.

Reads ``demo.seeds`` (one JSON file per text category, :mod:`pipeline.demo.seeds`) and writes the
calibration part (``demo.calibration``, what collect scores) and the training part
(``demo.train_dataset``, what the demo reranker learns from); see :mod:`pipeline.demo.dataset`.
"""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.config.schema import PipelineConfig
from pipeline.demo.dataset import build


def run(cfg: PipelineConfig) -> int:
    d = cfg.demo
    summary = build(d.seeds, d.calibration, d.train_dataset, seed=d.dataset_seed)
    for part, info in summary.items():
        langs = ", ".join(f"{k} {v}" for k, v in info["languages"].items())
        labels = ", ".join(f"{k}: {v}" for k, v in info["labels"].items())
        print(
            f"{part:<11} {info['path']}: {info['queries']} queries, {info['pairs']} pairs "
            f"({len(info['categories'])} categories; {langs}; labels {labels})"
        )
    return 0
