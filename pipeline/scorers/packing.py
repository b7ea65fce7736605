"""Packed causal execution with a shared prompt prefix: no padding, the common prefix computed once.

Why. A Qwen3-Reranker prompt is ``system prompt + instruction + query + document + suffix``;
every row of a scoring call starts with the same ~50-60 tokens, and documents of mixed lengths
waste a batch's padding on all but its longest row. In a causal model neither is needed:

* **Packing.** The rows of a batch are concatenated into one sequence of real tokens (no pad
  token anywhere); each keeps its own position ids, and attention runs segment by segment, so a
  token only sees the earlier tokens of its own row. The linear layers, which are ~85% of the
  work, then multiply one (total tokens x hidden) matrix.
* **Shared prefix.** The longest token prefix common to all rows is run once; its keys and values
  (per layer, after k_norm and the rotary embedding of positions 0..P-1) are handed to every
  segment, whose own positions start at P. A token at position P+j attends to the P prefix keys
  and to its row's keys up to itself: the same keys, values and positions as in the full row.

Both change only which tensors are computed, not the arithmetic of any kept value, so scores
match the unpacked model to float rounding (~1e-7 in float32; tested against the model-card
snippet). Nothing is stored across calls: the prefix keys/values live for one scoring call, and
no KV cache of the packed tokens is kept (that is what the card's default forward builds).

How. transformers' attention functions are pluggable (``AttentionInterface``); the model's
forward passes unknown keyword arguments through to them. :data:`ATTENTION` is registered under
that name and reads the segment layout and the prefix from those arguments; the matching mask
function returns ``None`` because the segments are the mask.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

#: the name the attention function and its (empty) mask function are registered under
ATTENTION = "pipeline_packed_causal"


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix shared by all rows, leaving at least one token of each row to run
    (the score is read at each row's last token, which must be computed in the packed pass)."""
    if len(rows) < 2:
        return 0  # nothing to share
    first = rows[0]
    limit = min(len(r) for r in rows) - 1
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


@dataclass
class PackedBatch:
    """Rows concatenated without padding: ``input_ids``/``position_ids`` are (1, total tokens)."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    segments: list[tuple[int, int]]  # (start, length) of each row in the packed sequence
    last_index: torch.Tensor  # index of each row's last token in the packed sequence

    @classmethod
    def build(cls, rows: Sequence[Sequence[int]], offset: int = 0) -> PackedBatch:
        """Pack ``rows`` (each without the shared prefix); positions start at ``offset`` (= prefix length)."""
        if not rows or any(len(r) == 0 for r in rows):
            raise ValueError("every packed row needs at least one token")
        segments, start = [], 0
        for row in rows:
            segments.append((start, len(row)))
            start += len(row)
        ids = torch.tensor([t for row in rows for t in row], dtype=torch.long)
        positions = torch.cat([torch.arange(offset, offset + len(row)) for row in rows])
        last = torch.tensor([s + n - 1 for s, n in segments], dtype=torch.long)
        return cls(ids[None], positions[None], segments, last)


class SharedPrefix:
    """Keys and values of a token prefix, per layer, computed by one forward pass of ``body``."""

    def __init__(self, body: Any, prefix_ids: Sequence[int], device: torch.device) -> None:
        self.length = len(prefix_ids)
        self.layers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if self.length:
            ids = torch.tensor([list(prefix_ids)], dtype=torch.long, device=device)
            positions = torch.arange(self.length, device=device)[None]
            body(input_ids=ids, position_ids=positions, use_cache=False,
                 packed_segments=[(0, self.length)], record_prefix=self.layers)  # fmt: skip

    def kv(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.layers.get(layer_idx)  # None for an empty prefix: nothing was recorded


def run_packed(body: Any, rows: Sequence[Sequence[int]], prefix: SharedPrefix, device: torch.device) -> torch.Tensor:
    """Last-token hidden states (rows x hidden) of ``rows``, which all start with ``prefix``'s tokens."""
    packed = PackedBatch.build([row[prefix.length :] for row in rows], offset=prefix.length)
    hidden = body(
        input_ids=packed.input_ids.to(device),
        position_ids=packed.position_ids.to(device),
        use_cache=False,
        packed_segments=packed.segments,
        shared_prefix=prefix,
    ).last_hidden_state[0]
    return hidden[packed.last_index.to(device)]


def packed_runner(
    body: Any, rows: Sequence[Sequence[int]], device: torch.device, head: Callable[[torch.Tensor], torch.Tensor]
) -> Callable[[Sequence[Sequence[int]]], torch.Tensor]:
    """What a packed backend scores batches with: ``rows``' shared prefix runs now, once; each batch
    (a subset of ``rows``) then runs packed after it, and ``head`` maps its last-token hidden states
    (rows x hidden) to one value per row."""
    prefix = SharedPrefix(body, rows[0][: common_prefix_length(rows)] if rows else [], device)

    def run(batch: Sequence[Sequence[int]]) -> torch.Tensor:
        return head(run_packed(body, batch, prefix, device))

    return run


def segment_attention(query, key, value, prefix_kv, scaling, repeat_kv: bool | None = None):
    """Causal attention of one segment (1, heads, n, dim), after ``prefix_kv``'s keys when given.

    Grouped-query attention (fewer kv heads) uses SDPA's ``enable_gqa`` on the CPU; elsewhere, or
    with ``repeat_kv``, the kv heads are repeated first (not every CUDA/MPS kernel takes
    ``enable_gqa``). Both give the same numbers (tested on the CPU).
    """
    n = query.shape[-2]
    gqa = query.shape[1] != key.shape[1]
    if repeat_kv is None:
        repeat_kv = query.device.type != "cpu"
    if prefix_kv is None:
        mask, causal = None, True
    else:
        key = torch.cat([prefix_kv[0], key], dim=-2)
        value = torch.cat([prefix_kv[1], value], dim=-2)
        p = key.shape[-2] - n
        # row j (position p+j) sees keys 0..p+j: lower-right aligned causal mask
        mask, causal = torch.ones(n, p + n, dtype=torch.bool, device=query.device).tril(p), False
    if gqa and repeat_kv:
        groups = query.shape[1] // key.shape[1]
        key, value, gqa = key.repeat_interleave(groups, 1), value.repeat_interleave(groups, 1), False
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, is_causal=causal, scale=scaling,
                                          enable_gqa=gqa)  # fmt: skip


def packed_causal_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function: ``query`` (1, heads, total, dim), rows laid out by
    ``packed_segments``; returns (1, total, heads, dim) like the built-in ones."""
    segments = kwargs.get("packed_segments")
    if segments is None:
        raise RuntimeError(f"attention '{ATTENTION}' needs packed_segments; call it through run_packed()")
    record = kwargs.get("record_prefix")
    if record is not None:
        record[module.layer_idx] = (key, value)
    prefix: SharedPrefix | None = kwargs.get("shared_prefix")
    prefix_kv = prefix.kv(module.layer_idx) if prefix is not None else None
    outputs = [
        segment_attention(query[:, :, s : s + n], key[:, :, s : s + n], value[:, :, s : s + n], prefix_kv, scaling)
        for s, n in segments
    ]
    out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=2)
    return out.transpose(1, 2).contiguous(), None


def _no_mask(*args, **kwargs):
    """The segments are the mask: transformers must not build a (total x total) one."""
    return None


def register() -> str:
    """Register the attention and mask functions with transformers (idempotent); returns the name."""
    from transformers import AttentionInterface, AttentionMaskInterface

    AttentionInterface.register(ATTENTION, packed_causal_attention)
    AttentionMaskInterface.register(ATTENTION, _no_mask)
    return ATTENTION
