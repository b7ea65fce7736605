"""Schemas of the demo's config sections: ``demo`` (dataset and model training) and ``reference``
(the loopback reference API). Owned by :mod:`pipeline.demo`, like ``local`` by the scorers."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.config.settings import SettingError, setting


@dataclass
class TrainSettings:
    """What determines the demo reranker's weights (``demo.train.*``)."""

    vocab_size: int = setting(4000, ge=300, why="the 256 bytes, the special tokens and some merges")
    hidden_size: int = setting(64, ge=8)
    num_layers: int = setting(2, ge=1)
    num_heads: int = setting(4, ge=1)
    num_kv_heads: int = setting(2, ge=1)
    intermediate_size: int = setting(192, ge=1)
    #: tokens per (prompt + query + document) row; longer documents are truncated
    max_length: int = setting(256, ge=16)
    #: updates for revision v1; v2 continues from v1 for ``extra_steps_v2`` more
    steps: int = setting(500, ge=1)
    extra_steps_v2: int = setting(150, ge=1, why="v2 must differ from v1")
    #: query groups (ten documents each) per update
    queries_per_step: int = setting(8, ge=1)
    learning_rate: float = setting(0.01, gt=0)
    weight_decay: float = setting(0.01, ge=0)
    warmup_steps: int = setting(50, ge=0)
    #: weight of the per-query softmax term next to the pointwise cross-entropy
    listwise_weight: float = setting(1.0, ge=0)
    init_range: float = setting(0.2, gt=0)
    seed: int = setting(0, ge=0)


@dataclass
class DemoConfig:
    """The offline demo: where its seeds, datasets, model and model report live."""

    seeds: str = "data/demo/seeds"
    #: the calibration part: what collect scores (collect.dataset points here)
    calibration: str = "data/demo/calibration.jsonl"
    #: the training part: what the demo reranker learns from
    train_dataset: str = "data/demo/train.jsonl"
    #: seed of the dataset generator (document choice and order)
    dataset_seed: int = setting(0, ge=0)
    #: the trained revisions go to <model_dir>/v1 and <model_dir>/v2
    model_dir: str = "models/demo-reranker"
    #: NDCG@10 of each revision on the labelled calibration queries next to a random order's:
    #: summary.json (headline figures, for dvc metrics) and report.json (intervals, training)
    model_reports: str = "reports/demo-model"
    #: fail the training stage when v1's NDCG@10 interval does not clear a random order's
    require_signal: bool = True
    train: TrainSettings = field(default_factory=TrainSettings)


def check_demo(demo: DemoConfig) -> None:
    """The demo model's shape: attention heads divide the hidden size, KV heads divide the heads."""
    t = demo.train
    if t.hidden_size % t.num_heads or t.num_heads % t.num_kv_heads:
        raise SettingError(
            f"demo.train: hidden_size={t.hidden_size} must be a multiple of num_heads={t.num_heads}, "
            f"and num_heads a multiple of num_kv_heads={t.num_kv_heads}"
        )
