"""Loads that would give silent garbage fail with a message that says what to use instead."""

from __future__ import annotations

import pytest

from pipeline.scorers import LocalScorerConfig, build_scorer
from pipeline.scorers.loading import ScorerLoadError, load_model, resolve_source

pytestmark = pytest.mark.slow


def cfg_for(path, **kw) -> LocalScorerConfig:
    return LocalScorerConfig(model=str(path), **{"device": "cpu", **kw})


def test_causal_reranker_as_cross_encoder_is_refused(reranker_dir):
    with pytest.raises(ScorerLoadError, match="kind=qwen3_reranker") as err:
        build_scorer(cfg_for(reranker_dir, kind="cross_encoder"))
    assert "newly initialised" in str(err.value)


def test_loader_reports_newly_initialised_weights_itself(reranker_dir):
    """Below the architecture check: the loading report of transformers is what is enforced."""
    from transformers import AutoModelForSequenceClassification

    cfg = cfg_for(reranker_dir, kind="cross_encoder")
    with pytest.raises(ScorerLoadError, match=r"score\.weight.*use this instead") as err:
        load_model(AutoModelForSequenceClassification, resolve_source(cfg), cfg, instead="use this instead")
    assert "newly initialised" in str(err.value)


def test_checkpoint_missing_its_head_is_refused(missing_head_dir):
    with pytest.raises(ScorerLoadError, match=r"lm_head\.weight") as err:
        build_scorer(cfg_for(missing_head_dir))
    assert "Qwen3ForCausalLM" in str(err.value)


def test_seq_cls_checkpoint_as_qwen3_reranker_is_refused(seq_cls_dir):
    with pytest.raises(ScorerLoadError, match="kind=cross_encoder"):
        build_scorer(cfg_for(seq_cls_dir))


def test_tokenizer_without_single_yes_no_tokens_is_refused(no_yes_no_dir):
    with pytest.raises(ScorerLoadError, match="no single token 'yes'") as err:
        build_scorer(cfg_for(no_yes_no_dir))
    assert "kind=cross_encoder" in str(err.value)


def test_classifier_as_embedding_is_refused(seq_cls_dir):
    with pytest.raises(ScorerLoadError, match="kind=cross_encoder"):
        build_scorer(cfg_for(seq_cls_dir, kind="embedding"))


def test_missing_directory_or_hub_id_fails_clearly(tmp_path):
    with pytest.raises(ScorerLoadError, match="cannot find"):
        build_scorer(LocalScorerConfig(model="nobody/no-such-model", device="cpu", local_files_only=True,
                                       cache_dir=str(tmp_path)))  # fmt: skip
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScorerLoadError, match="no weight files"):
        build_scorer(cfg_for(tmp_path / "empty"))


def test_unavailable_device_fails_clearly(reranker_dir):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ScorerLoadError, match="local.device=cuda"):
        build_scorer(cfg_for(reranker_dir, device="cuda"))
