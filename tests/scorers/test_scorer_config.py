"""conf/local/*: every entry composes against the schema; bad values name the key; lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.config.compose import ConfigError, compose_config
from pipeline.config.local import Device, DType, LocalScorerConfig, Pooling, ScorerKind, Template, coerce
from pipeline.scorers.batching import pad, plan_batches

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = sorted(p.stem for p in (ROOT / "conf" / "local").glob("*.yaml"))


def test_issue_entries_exist():
    required = {"qwen3-reranker-0.6b", "qwen3-reranker-4b", "qwen3-reranker-8b", "cross-encoder", "minilm",
                "qwen3-embedding-0.6b", "qwen3-embedding-4b", "qwen3-embedding-8b"}  # fmt: skip
    assert required <= set(ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_composes(entry):
    local = compose_config([f"local={entry}"]).local
    assert isinstance(local, LocalScorerConfig) and isinstance(local.kind, ScorerKind)
    # float32 by default; an `align` result keeps the dtype that reproduced the API
    assert isinstance(local.dtype, DType) and (local.dtype is DType.float32 or entry.startswith("aligned-"))
    assert (ROOT / "conf" / "local" / f"{entry}.yaml").read_text().startswith("# @package local")
    if entry.startswith("qwen3-reranker"):
        assert local.kind is ScorerKind.qwen3_reranker and local.template is Template.official
        assert local.model == "Qwen/Qwen3-Reranker-" + entry.rsplit("-", 1)[1].upper()
    if entry.startswith("qwen3-embedding"):
        assert local.kind is ScorerKind.embedding and local.pooling is Pooling.last and local.task
    if entry == "minilm":
        assert local.pooling is Pooling.mean and local.task is None
        assert local.model == "sentence-transformers/all-MiniLM-L6-v2"
    if entry == "cross-encoder":
        assert local.kind is ScorerKind.cross_encoder and local.template is Template.none


def test_overrides_are_validated():
    local = compose_config(["local=qwen3-reranker-8b", "local.dtype=bfloat16", "local.template=vllm",
                            "local.instruction=Find code", "local.device=cpu"]).local  # fmt: skip
    assert (local.dtype, local.template, local.device) == (DType.bfloat16, Template.vllm, Device.cpu)
    assert local.instruction == "Find code"
    with pytest.raises(ConfigError, match="local.dtype"):
        compose_config(["local.dtype=bf16"])
    with pytest.raises(ConfigError, match="template"):
        compose_config(["local.template=chatml"])


def test_coerce_turns_strings_into_enums_and_names_bad_keys():
    cfg = coerce(LocalScorerConfig(kind="embedding", dtype="float16", pooling="mean"))
    assert cfg.kind is ScorerKind.embedding and cfg.dtype is DType.float16 and cfg.pooling is Pooling.mean
    with pytest.raises(ValueError, match="local.pooling='max' is not one of: last, mean, cls"):
        coerce(LocalScorerConfig(pooling="max"))


def test_importing_scorers_does_not_import_torch():
    code = "import sys, pipeline.scorers, pipeline.config.local; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@settings(max_examples=200, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=500), max_size=60),
    batch_size=st.integers(min_value=1, max_value=16),
    budget=st.integers(min_value=1, max_value=4000),
    packed=st.booleans(),
)
def test_plan_batches(lengths, batch_size, budget, packed):
    batches = plan_batches(lengths, batch_size, budget, packed=packed)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= batch_size
        widths = [lengths[i] for i in batch]
        assert widths == sorted(widths, reverse=True)
        cost = sum(widths) if packed else len(batch) * max(widths)
        assert len(batch) == 1 or cost <= budget


def test_packed_budget_counts_real_tokens():
    # padded, [100, 10, 10] costs 300 tokens; packed it costs 120
    assert plan_batches([100, 10, 10], 8, 150) == [[0], [1, 2]]
    assert plan_batches([100, 10, 10], 8, 150, packed=True) == [[0, 1, 2]]


def test_pad_sides():
    ids, mask = pad([[1, 2, 3], [4]], 0, "left")
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = pad([[1, 2, 3], [4]], 9, "right")
    assert ids.tolist() == [[1, 2, 3], [4, 9, 9]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]
