"""Qwen3-Reranker scorer: exact model-card scores, fast path, templates, batching, fingerprints."""

from __future__ import annotations

import math
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from pipeline.config.local import DType, Template
from pipeline.runtime.text import TextConfig
from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer
from pipeline.scorers.loading import ScorerLoadError
from pipeline.scorers.prompts import DEFAULT_INSTRUCTION, PromptEncoder
from pipeline.testing.model_card import ModelCardReranker
from pipeline.testing.tiny_models import make_hub_cache

pytestmark = pytest.mark.slow


def flat_pairs(groups):
    return [(g.query, d) for g in groups for d in g.documents]


def cfg_for(path, **kw) -> LocalScorerConfig:
    return LocalScorerConfig(model=str(path), device="cpu", **{"batch_size": 4, **kw})


def test_matches_model_card_snippet(reranker, model_card, sample_groups):
    ours = np.concatenate(reranker.score(sample_groups))
    # the card scores in the given order, 8 at a time; ours sorts by length and batches by 4
    card = np.array(model_card.score(flat_pairs(sample_groups), batch_size=8))
    assert ours.shape == card.shape == (len(flat_pairs(sample_groups)),)
    assert np.abs(ours - card).max() <= 1e-5
    assert ours.std() > 0.01, "random weights should still spread the scores"


def test_matches_model_card_under_truncation_and_custom_instruction(reranker_dir, sample_groups):
    instruction = "Judge code snippets for relevance"
    scorer = build_scorer(cfg_for(reranker_dir, max_length=96, instruction=instruction))
    card = ModelCardReranker(reranker_dir, max_length=96)
    pairs = flat_pairs(sample_groups)
    rows = scorer.prompt.encode(pairs)
    assert max(len(r) for r in rows) == 96, "some pairs must be truncated for this test to mean anything"
    assert all(r[-len(scorer.prompt.suffix_ids) :] == scorer.prompt.suffix_ids for r in rows)
    ours = np.concatenate(scorer.score(sample_groups))
    expected = np.array(card.score(pairs, instruction=instruction, batch_size=3))
    assert np.abs(ours - expected).max() <= 1e-5


def test_fast_path_never_computes_vocabulary_logits(reranker, sample_groups):
    head = reranker.model.get_output_embeddings()
    calls = []
    handle = head.register_forward_hook(lambda *a: calls.append(1))
    try:
        reranker.score(sample_groups)
    finally:
        handle.remove()
    assert calls == []
    assert reranker.head_weight.shape == (2, reranker.model.config.hidden_size)


def test_equals_sigmoid_of_logit_difference(reranker, model_card):
    pair = ("What is the capital of China?", "The capital of China is Beijing.")
    inputs = model_card.process_inputs([model_card_format(*pair)])
    with torch.no_grad():
        logits = model_card.model(**inputs).logits[0, -1]
    expected = 1 / (1 + math.exp(-(logits[reranker.yes_id] - logits[reranker.no_id]).item()))
    assert reranker.score([QueryGroup(*[pair[0]], [pair[1]])])[0][0] == pytest.approx(expected, abs=1e-6)


def model_card_format(query, doc):
    from pipeline.testing.model_card import format_instruction

    return format_instruction(None, query, doc)


@pytest.mark.parametrize("batch_size, max_batch_tokens", [(1, 100000), (3, 100000), (64, 300), (64, 1)])
def test_batching_does_not_change_scores(reranker, reranker_dir, sample_groups, batch_size, max_batch_tokens):
    base = np.concatenate(reranker.score(sample_groups))
    other = build_scorer(cfg_for(reranker_dir, batch_size=batch_size, max_batch_tokens=max_batch_tokens))
    assert np.abs(np.concatenate(other.score(sample_groups)) - base).max() <= 1e-5


def test_output_shapes_order_and_progress(reranker, sample_groups):
    seen = []
    groups = [QueryGroup("empty", []), *sample_groups, QueryGroup("one", ["only doc"])]
    out = reranker.score(groups, progress=seen.append)
    assert [len(a) for a in out] == [len(g.documents) for g in groups]
    assert all(a.dtype == np.float64 for a in out)
    assert sum(seen) == sum(len(g.documents) for g in groups)
    assert all(((0 < a) & (a < 1)).all() for a in out)
    # document order is the caller's: scoring one document alone gives the same number
    alone = reranker.score([QueryGroup(sample_groups[0].query, [sample_groups[0].documents[2]])])[0][0]
    assert out[1][2] == pytest.approx(alone, abs=1e-5)
    assert reranker.score([]) == []


def test_vllm_template_equals_official_tokens_unless_truncated(reranker):
    enc = reranker.prompt
    vllm = PromptEncoder(reranker.tokenizer, Template.vllm, DEFAULT_INSTRUCTION, enc.max_length)
    pairs = [("What is the capital of China?", "The capital of China is Beijing."), ("中国？", "北京。\n")]
    assert vllm.encode(pairs) == enc.encode(pairs)
    short = PromptEncoder(reranker.tokenizer, Template.vllm, DEFAULT_INSTRUCTION, 90)
    long_pair = [("q", "gravity force " * 200)]
    row = short.encode(long_pair)[0]
    assert len(row) == 90 and row[-len(enc.suffix_ids) :] == enc.suffix_ids


def test_none_template_has_no_prompt_and_no_instruction(reranker_dir, reranker):
    scorer = build_scorer(cfg_for(reranker_dir, template="none", instruction="ignored"))
    row = scorer.prompt.encode([("What is it?", "A doc.")])[0]
    assert row == reranker.tokenizer.encode("What is it?A doc.", add_special_tokens=False)
    assert scorer.fingerprint()["instruction"] is None
    assert scorer.fingerprint()["template"] == "none"


def test_template_and_instruction_change_scores(reranker_dir, reranker, sample_groups):
    base = np.concatenate(reranker.score(sample_groups))
    for kw in (dict(template="none"), dict(instruction="Find code that squares numbers")):
        other = np.concatenate(build_scorer(cfg_for(reranker_dir, **kw)).score(sample_groups))
        assert np.abs(other - base).max() > 1e-3, kw


def test_text_preprocessing_is_applied_and_fingerprinted(reranker_dir, reranker):
    scorer = build_scorer(cfg_for(reranker_dir), TextConfig(fullwidth=True, quotes=True))
    wide = scorer.score([QueryGroup("Ｗｈａｔ is “Beijing”？", ["Ｔｈｅ capital，Beijing．"])])[0]
    plain = reranker.score([QueryGroup('What is "Beijing"?', ["The capital,Beijing."])])[0]
    assert wide == pytest.approx(plain, abs=1e-6)
    assert scorer.fingerprint()["text"]["fullwidth"] is True
    assert scorer.fingerprint_hash() != reranker.fingerprint_hash()


def test_fingerprint_is_stable_and_complete(reranker_dir, reranker):
    fp = reranker.fingerprint()
    for key in ("model", "revision", "dtype", "device_type", "template", "instruction", "max_length", "text"):
        assert key in fp
    assert fp["revision"].startswith("sha256:") and fp["revision_source"] == "sha256-files"
    assert fp["instruction"] == DEFAULT_INSTRUCTION and fp["dtype"] == "float32" and fp["device_type"] == "cpu"
    again = build_scorer(cfg_for(reranker_dir, batch_size=1, max_batch_tokens=50))
    assert again.fingerprint_hash() == reranker.fingerprint_hash(), "batching must not change the fingerprint"
    changed = {
        build_scorer(cfg_for(reranker_dir, **kw)).fingerprint_hash()
        for kw in (dict(max_length=512), dict(template="vllm"), dict(instruction="x"), dict(dtype="bfloat16"))
    }
    assert len(changed) == 4 and reranker.fingerprint_hash() not in changed


def test_revision_is_the_hash_of_the_files(reranker_dir, tmp_path, reranker):
    copy = shutil.copytree(reranker_dir, tmp_path / "copy")
    assert build_scorer(cfg_for(copy)).fingerprint()["revision"] == reranker.fingerprint()["revision"]
    pinned = cfg_for(copy, revision=reranker.fingerprint()["revision"])
    build_scorer(pinned)  # the pin matches
    (copy / "tokenizer_config.json").write_text((copy / "tokenizer_config.json").read_text() + "\n")
    with pytest.raises(ScorerLoadError, match="local.revision"):
        build_scorer(pinned)
    assert build_scorer(cfg_for(copy)).fingerprint()["revision"] != reranker.fingerprint()["revision"]


def test_hub_id_resolves_to_the_commit_offline(reranker_dir, tmp_path, reranker, sample_groups):
    commit = make_hub_cache(tmp_path / "hub", "tiny-org/Qwen3-Reranker-tiny", reranker_dir, commit="0123456789" * 4)
    cfg = LocalScorerConfig(
        model="tiny-org/Qwen3-Reranker-tiny", device="cpu", cache_dir=str(tmp_path / "hub"), local_files_only=True
    )
    scorer = build_scorer(cfg)
    fp = scorer.fingerprint()
    assert fp["revision"] == commit and fp["revision_source"] == "hub-commit"
    assert fp["model"] == "tiny-org/Qwen3-Reranker-tiny"
    np.testing.assert_allclose(
        np.concatenate(scorer.score(sample_groups)), np.concatenate(reranker.score(sample_groups)), atol=1e-6
    )
    with pytest.raises(ScorerLoadError, match="cannot find"):
        build_scorer(replace(cfg, revision="f" * 40))


def test_bfloat16_runs_and_stays_close(reranker_dir, reranker, sample_groups):
    scorer = build_scorer(cfg_for(reranker_dir, dtype=DType.bfloat16))
    assert scorer.model.dtype == torch.bfloat16 and scorer.fingerprint()["dtype"] == "bfloat16"
    diff = np.abs(np.concatenate(scorer.score(sample_groups)) - np.concatenate(reranker.score(sample_groups)))
    assert diff.max() < 0.1


def test_context_manager_releases_the_model(reranker_dir):
    with build_scorer(cfg_for(reranker_dir)) as scorer:
        assert scorer.model is not None
    assert scorer.model is None


def test_config_errors_name_the_key(reranker_dir):
    with pytest.raises(ValueError, match="local.batch_size"):
        build_scorer(cfg_for(reranker_dir, batch_size=0))
    with pytest.raises(ValueError, match="local.max_length"):
        build_scorer(cfg_for(reranker_dir, max_length=40))
    with pytest.raises(ValueError, match="local.kind"):
        build_scorer(cfg_for(reranker_dir, kind="colbert"))
