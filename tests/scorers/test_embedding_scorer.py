"""Embedding scorer: Qwen3-Embedding conventions on a tiny model, mean pooling on real MiniLM weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer
from pipeline.scorers.embedding import QUERY_TEMPLATE
from pipeline.scorers.prompts import DEFAULT_INSTRUCTION

pytestmark = pytest.mark.slow

TASK = DEFAULT_INSTRUCTION
QUERIES = ["What is the capital of China?", "Explain gravity", "中国的首都"]
DOCS = ["The capital of China is Beijing.", "Gravity is a force " * 20, "北京。", "def f(x):\n    return x"]


def qwen_cfg(path, **kw) -> LocalScorerConfig:
    return LocalScorerConfig(model=str(path), kind="embedding", device="cpu", pooling="last", task=TASK,
                             batch_size=3, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def qwen_embedder(embedding_dir):
    return build_scorer(qwen_cfg(embedding_dir))


def model_card_embeddings(path, texts, max_length=8192):
    """The Qwen3-Embedding model card's transformers recipe, verbatim in spirit."""
    from transformers import AutoModel, AutoTokenizer

    def last_token_pool(last_hidden_states, attention_mask):
        left_padding = attention_mask[:, -1].sum() == attention_mask.shape[0]
        if left_padding:
            return last_hidden_states[:, -1]
        sequence_lengths = attention_mask.sum(dim=1) - 1
        return last_hidden_states[torch.arange(last_hidden_states.shape[0]), sequence_lengths]

    tokenizer = AutoTokenizer.from_pretrained(path, padding_side="left")
    model = AutoModel.from_pretrained(path).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    return torch.nn.functional.normalize(last_token_pool(out.last_hidden_state, batch["attention_mask"]), p=2, dim=1)


def test_matches_model_card(qwen_embedder, embedding_dir):
    texts = [QUERY_TEMPLATE.format(task=TASK, query=q) for q in QUERIES] + DOCS
    expected = model_card_embeddings(embedding_dir, texts).numpy()
    ours = np.concatenate([qwen_embedder.embed(QUERIES, is_query=True), qwen_embedder.embed(DOCS)])
    assert ours.shape == expected.shape and ours.dtype == np.float32
    assert np.abs(ours - expected).max() <= 1e-5
    scores = qwen_embedder.score([QueryGroup(q, DOCS) for q in QUERIES])
    np.testing.assert_allclose(np.stack(scores), expected[:3] @ expected[3:].T, atol=1e-5)
    assert qwen_embedder.score_type == "cosine"


def test_query_instruction_and_bare_documents(qwen_embedder):
    assert qwen_embedder.format_query("hi") == "Instruct: " + TASK + "\nQuery:hi"
    direct = qwen_embedder._embed_prepared(["Instruct: " + TASK + "\nQuery:hi", "hi"])
    np.testing.assert_allclose(qwen_embedder.embed(["hi"], is_query=True)[0], direct[0], atol=1e-6)
    np.testing.assert_allclose(qwen_embedder.embed(["hi"])[0], direct[1], atol=1e-6)


def test_eos_is_appended_as_the_tokenizer_defines_it(qwen_embedder):
    eos = qwen_embedder.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    ids = qwen_embedder.tokenizer(["a doc", "another"], truncation=True, max_length=8192)["input_ids"]
    assert all(row[-1] == eos for row in ids)


@pytest.mark.parametrize("side", ["left", "right"])
def test_last_token_pooling_is_padding_side_independent(qwen_embedder, side):
    reference = np.stack([qwen_embedder.embed([d])[0] for d in DOCS])  # one at a time: no padding
    qwen_embedder.padding_side = side
    try:
        padded = qwen_embedder.embed(DOCS)
    finally:
        qwen_embedder.padding_side = "left"
    assert np.abs(padded - reference).max() <= 1e-5


def test_dimensions_truncate_then_renormalise(embedding_dir, qwen_embedder):
    full = qwen_embedder.embed(DOCS)
    small = build_scorer(qwen_cfg(embedding_dir, dimensions=8))
    cut = small.embed(DOCS)
    expected = full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True)
    assert cut.shape == (len(DOCS), 8)
    np.testing.assert_allclose(cut, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(cut, axis=1), 1.0, atol=1e-6)
    assert small.fingerprint()["dimensions"] == 8 and small.fingerprint_hash() != qwen_embedder.fingerprint_hash()
    with pytest.raises(ValueError, match="local.dimensions"):
        build_scorer(qwen_cfg(embedding_dir, dimensions=10_000))


def test_unnormalised_embeddings_still_give_cosine(embedding_dir, qwen_embedder):
    raw = build_scorer(qwen_cfg(embedding_dir, normalize=False))
    vectors = raw.embed(DOCS)
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    groups = [QueryGroup(q, DOCS) for q in QUERIES]
    np.testing.assert_allclose(np.stack(raw.score(groups)), np.stack(qwen_embedder.score(groups)), atol=1e-6)


def test_grouping_duplicates_and_progress(qwen_embedder):
    seen = []
    groups = [QueryGroup("q", ["a", "b", "a"]), QueryGroup("q", []), QueryGroup("r", ["b"])]
    out = qwen_embedder.score(groups, progress=seen.append)
    assert [len(x) for x in out] == [3, 0, 1] and sum(seen) == 4
    assert out[0][0] == out[0][2]
    assert out[2][0] != out[0][1]  # another query, another instruction-formatted text


def test_fingerprint(qwen_embedder):
    fp = qwen_embedder.fingerprint()
    assert fp["kind"] == "embedding" and fp["pooling"] == "last" and fp["task"] == TASK
    assert fp["query_template"] == QUERY_TEMPLATE and fp["revision"].startswith("sha256:")


# -- real weights: sentence-transformers/all-MiniLM-L6-v2 (mean pooling) ---------------------------
SENTENCES = ["This is an example sentence", "Each sentence is converted", "北京是中国的首都。", "x = [1, 2, 3]"]


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    cfg = LocalScorerConfig(model=str(minilm_dir), kind="embedding", device="cpu", pooling="mean", task=None,
                            max_length=256, batch_size=2)  # fmt: skip
    return build_scorer(cfg)


def test_minilm_mean_pooling_matches_direct_computation(minilm, minilm_dir):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = AutoModel.from_pretrained(minilm_dir).eval()
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    ours = minilm.embed(SENTENCES)
    assert ours.shape == (4, 384)
    assert np.abs(ours - expected).max() <= 1e-5
    assert minilm.fingerprint()["pooling"] == "mean" and minilm.fingerprint()["query_template"] is None


def test_minilm_matches_sentence_transformers(minilm, minilm_dir):
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(minilm_dir), device="cpu")
    expected = model.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=True)
    assert np.abs(minilm.embed(SENTENCES) - expected).max() <= 1e-5
    scores = minilm.score([QueryGroup(SENTENCES[0], SENTENCES[1:])])[0]
    np.testing.assert_allclose(scores, expected[1:] @ expected[0], atol=1e-5)
