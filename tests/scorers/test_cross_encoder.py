"""Cross-encoder scorer: seq-cls conversions reproduce the reranker; plain pair encoding otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer


def cfg_for(path, **kw) -> LocalScorerConfig:
    return LocalScorerConfig(model=str(path), kind="cross_encoder", device="cpu", batch_size=3, **kw)


def test_seq_cls_conversion_with_official_template_equals_reranker(seq_cls_dir, reranker, sample_groups):
    scorer = build_scorer(cfg_for(seq_cls_dir, template="official"))
    assert scorer.score_type == "probability" and scorer.packed, "Qwen3 classifiers run packed"
    ours = np.concatenate(scorer.score(sample_groups))
    assert np.abs(ours - np.concatenate(reranker.score(sample_groups))).max() <= 1e-5


def test_activation_none_returns_the_logit(seq_cls_dir, sample_groups):
    prob = np.concatenate(build_scorer(cfg_for(seq_cls_dir, template="official")).score(sample_groups))
    raw = build_scorer(cfg_for(seq_cls_dir, template="official", activation="none"))
    assert raw.score_type == "logit"
    logits = np.concatenate(raw.score(sample_groups))
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), prob, atol=1e-6)
    assert raw.fingerprint()["activation"] == "none"


def test_pair_encoding_matches_direct_transformers_call(seq_cls_dir):
    """template=none is the tokenizer's pair encoding, as sentence-transformers' CrossEncoder does."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    scorer = build_scorer(cfg_for(seq_cls_dir, template="none", max_length=64))
    # the last document ends with the pad token itself: transformers reads the token before it
    query, docs = "What is the capital of China?", ["Beijing.", "Gravity is a force " * 40, "北京", "Beijing.<|endoftext|>"]
    tok = AutoTokenizer.from_pretrained(seq_cls_dir, padding_side="left")
    model = AutoModelForSequenceClassification.from_pretrained(seq_cls_dir).eval()
    with torch.no_grad():
        for doc in docs:  # one at a time: no padding on the reference side
            enc = tok(query, doc, truncation=True, max_length=64, return_tensors="pt")
            expected = torch.sigmoid(model(**enc).logits[0, 0]).item()
            assert scorer.score([QueryGroup(query, [doc])])[0][0] == pytest.approx(expected, abs=1e-6)
    assert scorer.fingerprint()["template"] == "none" and scorer.fingerprint()["instruction"] is None


def test_attn_implementation_selects_the_padded_transformers_path(seq_cls_dir, sample_groups):
    packed = build_scorer(cfg_for(seq_cls_dir, template="official"))
    padded = build_scorer(cfg_for(seq_cls_dir, template="official", attn_implementation="eager"))
    assert packed.packed and not padded.packed and padded.padding_side == "left"
    a, b = (np.concatenate(s.score(sample_groups)) for s in (packed, padded))
    assert np.abs(a - b).max() <= 1e-5


@pytest.mark.parametrize(
    "row, expected", [([5, 6, 0, 0], [5, 6]), ([5, 0, 6], [5, 0, 6]), ([0, 0], [0]), ([7], [7]), ([], [])]
)
def test_rows_end_at_the_token_the_classifier_reads(row, expected):
    from pipeline.scorers.cross_encoder import through_last_non_pad

    assert through_last_non_pad(row, 0) == expected
    assert through_last_non_pad(row, None) == row
