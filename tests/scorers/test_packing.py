"""Packed execution with a shared prefix computes what each row computes alone, padded or not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer
from pipeline.scorers.packing import PackedBatch, SharedPrefix, common_prefix_length, run_packed
from pipeline.testing.model_card import ModelCardReranker

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([], 0),
        ([[1, 2, 3]], 0),  # one row: nothing to share
        ([[1, 2, 3], [1, 2, 4]], 2),
        ([[1, 2, 3], [9, 2, 3]], 0),
        ([[1, 2, 3], [1, 2, 3]], 2),  # identical rows keep their last token to run
        ([[1, 2, 3, 4, 5], [1, 2]], 1),  # capped by the shortest row
    ],
)
def test_common_prefix_length(rows, expected):
    assert common_prefix_length(rows) == expected


def test_packed_batch_layout():
    packed = PackedBatch.build([[5, 6, 7], [8], [9, 10]], offset=4)
    assert packed.input_ids.tolist() == [[5, 6, 7, 8, 9, 10]]
    assert packed.position_ids.tolist() == [[4, 5, 6, 4, 4, 5]]
    assert packed.segments == [(0, 3), (3, 1), (4, 2)]
    assert packed.last_index.tolist() == [2, 3, 5]
    with pytest.raises(ValueError, match="at least one token"):
        PackedBatch.build([[1], []])


def _row_alone(body, row):
    """The reference: one row, unpadded, through the model's ordinary causal attention."""
    with torch.inference_mode():
        return body(input_ids=torch.tensor([row]), use_cache=False).last_hidden_state[0, -1]


@pytest.mark.parametrize("prefix_len", [0, 1, 7])
def test_packed_hidden_states_equal_each_row_alone(reranker_dir, prefix_len):
    from transformers import AutoModelForCausalLM

    from pipeline.scorers.packing import register

    reference = AutoModelForCausalLM.from_pretrained(reranker_dir, dtype=torch.float32).eval()
    packed_model = AutoModelForCausalLM.from_pretrained(reranker_dir, dtype=torch.float32).eval()
    packed_model.set_attn_implementation(register())
    gen = torch.Generator().manual_seed(0)
    prefix = torch.randint(10, 200, (prefix_len,), generator=gen).tolist()
    rows = [prefix + torch.randint(10, 200, (n,), generator=gen).tolist() for n in (9, 1, 30, 4)]
    with torch.inference_mode():
        shared = SharedPrefix(packed_model.base_model, prefix, torch.device("cpu"))
        hidden = run_packed(packed_model.base_model, rows, shared, torch.device("cpu"))
    assert hidden.shape == (len(rows), packed_model.config.hidden_size)
    for i, row in enumerate(rows):
        torch.testing.assert_close(hidden[i], _row_alone(reference.base_model, row), atol=1e-5, rtol=1e-5)


def test_one_query_call_shares_the_query_and_matches_the_card(reranker, reranker_dir):
    query = "What is the capital of China?"
    docs = ["The capital of China is Beijing.", "Gravity pulls apples down.", "北京是中国的首都。", "x"]
    rows = reranker.prompt.encode([(query, d) for d in docs])
    query_tokens = len(reranker.tokenizer.encode(query, add_special_tokens=False))
    assert common_prefix_length(rows) >= len(reranker.prompt.prefix_ids) + query_tokens
    ours = reranker.score([QueryGroup(query, docs)])[0]
    card = ModelCardReranker(reranker_dir).score([(query, d) for d in docs], batch_size=8)
    assert np.abs(ours - np.array(card)).max() <= 1e-5


def test_identical_pairs_score_identically(reranker, reranker_dir):
    pair = ("q", "the same document")
    ours = reranker.score([QueryGroup(pair[0], [pair[1]] * 3)])[0]
    card = ModelCardReranker(reranker_dir).score([pair], batch_size=1)[0]
    assert np.allclose(ours, card, atol=1e-5, rtol=0)


def test_prefix_runs_once_per_call(reranker, sample_groups):
    tokens_seen = []
    handle = reranker.body.embed_tokens.register_forward_hook(lambda m, args, out: tokens_seen.append(args[0].numel()))
    try:
        reranker.score(sample_groups)
    finally:
        handle.remove()
    pairs = [(g.query, d) for g in sample_groups for d in g.documents]
    rows = reranker.prompt.encode(pairs)
    prefix = common_prefix_length(rows)
    assert prefix >= len(reranker.prompt.prefix_ids)
    # one pass over the prefix, then every row without it: no token is computed twice, none padded
    assert tokens_seen[0] == prefix
    assert sum(tokens_seen) == prefix + sum(len(r) - prefix for r in rows)


def test_attn_implementation_other_than_sdpa_is_refused(reranker_dir):
    with pytest.raises(ValueError, match="attn_implementation='eager' is not used by kind=qwen3_reranker"):
        build_scorer(LocalScorerConfig(model=str(reranker_dir), device="cpu", attn_implementation="eager"))


@pytest.mark.parametrize("prefix_len", [0, 5])
def test_repeated_kv_heads_equal_enable_gqa(prefix_len):
    """The non-CPU branch (kv heads repeated) computes what the CPU branch (enable_gqa) does."""
    from pipeline.scorers.packing import segment_attention

    gen = torch.Generator().manual_seed(1)
    q = torch.randn(1, 4, 6, 8, generator=gen)
    k, v = torch.randn(1, 2, 6, 8, generator=gen), torch.randn(1, 2, 6, 8, generator=gen)
    prefix = (torch.randn(1, 2, prefix_len, 8, generator=gen), torch.randn(1, 2, prefix_len, 8, generator=gen))
    prefix = prefix if prefix_len else None
    gqa = segment_attention(q, k, v, prefix, None, repeat_kv=False)
    repeated = segment_attention(q, k, v, prefix, None, repeat_kv=True)
    torch.testing.assert_close(repeated, gqa)
    # and both equal plain softmax attention over the prefix and the causal part
    keys = k if prefix is None else torch.cat([prefix[0], k], dim=-2)
    values = v if prefix is None else torch.cat([prefix[1], v], dim=-2)
    keys, values = keys.repeat_interleave(2, 1), values.repeat_interleave(2, 1)
    scores = q @ keys.transpose(-1, -2) / 8**0.5
    allowed = torch.ones(6, prefix_len + 6, dtype=torch.bool).tril(prefix_len)
    expected = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ values
    torch.testing.assert_close(gqa, expected, atol=1e-5, rtol=1e-5)
