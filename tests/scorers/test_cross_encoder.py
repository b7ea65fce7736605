"""Cross-encoder scorer: seq-cls conversions reproduce the reranker; plain pair encoding otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer

pytestmark = pytest.mark.slow


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
    query, docs = (
        "What is the capital of China?",
        ["Beijing.", "Gravity is a force " * 40, "北京", "Beijing.<|endoftext|>"],
    )
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


@pytest.fixture(scope="module")
def two_segment_bert(models_dir):
    from pipeline.testing import tiny_models

    return tiny_models.build_tiny_bert_cross_encoder(models_dir / "bert-two-segments", type_vocab_size=2)


def test_a_two_segment_encoder_gets_the_token_types_of_the_pair_encoding(two_segment_bert, models_dir):
    """BERT cross-encoders (ms-marco MiniLM and kin) embed the document as segment 1: the scores
    are those of ``model(**tokenizer(q, d))``, as sentence-transformers, TEI and infinity compute
    them -- batched with padding and chunked alike. Without the token types the document would be
    read as segment 0 and every score would differ, silently."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    scorer = build_scorer(cfg_for(two_segment_bert, template="none", max_length=128, activation="none"))
    tok = AutoTokenizer.from_pretrained(two_segment_bert)
    model = AutoModelForSequenceClassification.from_pretrained(two_segment_bert).eval()
    query, docs = "what is the capital of china", ["beijing is the capital", "gravity " * 30, "north", "北京"]
    with torch.no_grad():
        expected = [
            model(**tok(query, d, truncation=True, max_length=128, return_tensors="pt")).logits[0, 0].item()
            for d in docs
        ]
        untyped = [
            model(**{k: v for k, v in tok(query, d, return_tensors="pt").items() if k != "token_type_ids"})
            .logits[0, 0]
            .item()
            for d in docs
        ]
    got = scorer.score([QueryGroup(query, docs)])[0]  # one padded batch of four lengths
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.max(np.abs(np.array(untyped) - np.array(expected))) > 1e-3  # the types matter for this model
    assert scorer.fingerprint()["token_type_ids"] == "pair"
    # chunked rows carry the same segments: a document that fits is its unchunked score
    chunked = build_scorer(
        cfg_for(
            two_segment_bert, template="none", max_length=128, activation="none", max_chunks_per_doc=4, overlap_tokens=8
        )
    )
    np.testing.assert_allclose(chunked.score([QueryGroup(query, docs[:1])])[0], expected[:1], atol=1e-5)
    # a one-segment encoder (XLM-R / bge-reranker shape) is unchanged, fingerprint included
    from pipeline.testing import tiny_models

    one = build_scorer(
        cfg_for(
            tiny_models.build_tiny_bert_cross_encoder(models_dir / "bert-one-segment"), template="none", max_length=128
        )
    )
    assert "token_type_ids" not in one.fingerprint()
