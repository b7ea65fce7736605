"""Long documents for classic cross-encoders (``local.max_chunks_per_doc``): SiliconFlow documents
``max_chunks_per_doc``/``overlap_tokens`` for bge-reranker-v2-m3 and bce-reranker-base_v1 (the
document scored by its best chunk). Checked against a reimplementation of the stated rule on a
tiny BERT cross-encoder with a real WordPiece tokenizer."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config.compose import ConfigError, compose_config
from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer

pytestmark = pytest.mark.slow

QUERY = "how do rerankers score long documents"
SHORT = "Rerankers read the query and the document together."
LONG = " ".join(f"Sentence {i} about cross encoders, chunks, overlaps and the best chunk wins." for i in range(60))


@pytest.fixture(scope="module")
def bert_dir(models_dir):
    from pipeline.testing import tiny_models

    return tiny_models.build_tiny_bert_cross_encoder(models_dir / "bert-cross-encoder")


def scorer(bert_dir, **extra):
    return build_scorer(
        LocalScorerConfig(
            kind="cross_encoder", model=str(bert_dir), template="none", device="cpu", max_length=128, **extra
        )
    )


def expected(bert_dir, query: str, document: str, max_chunks: int, overlap: int, max_length: int = 128) -> float:
    """The rule, written out: [CLS] q [SEP] chunk [SEP] rows, chunk = what fits beside the query,
    consecutive chunks sharing ``overlap`` tokens, the first ``max_chunks``, the best score."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    tok = AutoTokenizer.from_pretrained(bert_dir)
    model = BertForSequenceClassification.from_pretrained(bert_dir).eval()
    q, d = tok.encode(query, add_special_tokens=False), tok.encode(document, add_special_tokens=False)
    room = max_length - 3 - len(q)
    starts = list(range(0, len(d), room - overlap))
    best = -np.inf
    for start in starts[:max_chunks]:
        ids = [tok.cls_token_id, *q, tok.sep_token_id, *d[start : start + room], tok.sep_token_id]
        with torch.no_grad():
            logit = model(input_ids=torch.tensor([ids])).logits[0, 0]
        best = max(best, float(torch.sigmoid(logit)))
        if start + room >= len(d):
            break
    return best


def test_a_long_document_is_scored_by_its_best_chunk(bert_dir):
    with scorer(bert_dir, max_chunks_per_doc=16, overlap_tokens=20) as chunked:
        (got,) = chunked.score([QueryGroup(QUERY, [LONG])])
        assert len(chunked.chunk_rows(QUERY, LONG, 16, 20)) > 3  # the document really is cut
    assert got[0] == pytest.approx(expected(bert_dir, QUERY, LONG, 16, 20), abs=1e-6)


def test_a_document_that_fits_scores_as_without_chunking_and_one_chunk_is_truncation(bert_dir):
    with (
        scorer(bert_dir) as plain,
        scorer(bert_dir, max_chunks_per_doc=4) as chunked,
        scorer(bert_dir, max_chunks_per_doc=1, overlap_tokens=0) as first_only,
    ):
        (a,) = plain.score([QueryGroup(QUERY, [SHORT, LONG])])
        (b,) = chunked.score([QueryGroup(QUERY, [SHORT, LONG])])
        (c,) = first_only.score([QueryGroup(QUERY, [SHORT, LONG])])
    assert b[0] == pytest.approx(a[0], abs=1e-7)  # fits: the same tokens
    assert c[1] == pytest.approx(a[1], abs=1e-6)  # one chunk = the pair encoding's right truncation
    assert b[1] >= c[1] - 1e-7  # more chunks can only find a better one


def test_chunking_is_in_the_fingerprint_only_when_set(bert_dir):
    with scorer(bert_dir) as plain, scorer(bert_dir, max_chunks_per_doc=8) as chunked:
        assert "chunking" not in plain.fingerprint()
        assert chunked.fingerprint()["chunking"] == {"max_chunks_per_doc": 8, "overlap_tokens": 80}


def test_chunking_a_prompt_template_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="max_chunks_per_doc=4 applies to kind=cross_encoder with template=none"):
        compose_config(["local.max_chunks_per_doc=4"])  # the demo's Qwen3 reranker
    compose_config(["local=cross-encoder", "local.max_chunks_per_doc=4"])  # bge-reranker-v2-m3: fine
