"""Qwen3-Reranker (0.6B, 4B, 8B): a causal LM asked "yes" or "no"; score = P(yes).

The model card computes full-vocabulary logits at every position of every padded row, keeps the
last position, takes the "no" and "yes" columns and applies log_softmax over the two. Only two
numbers of that tensor matter, so this backend runs the transformer body alone
(``model.base_model``, no KV cache), takes the hidden state of each row's last token and
multiplies it by the two lm_head rows:

    P(yes) = softmax([l_no, l_yes])[1] = sigmoid(l_yes - l_no),  l_t = h_last . W[t] (+ b[t])

The body runs packed (:mod:`pipeline.scorers.packing`): the token prefix that every row of a
scoring call shares (system prompt + instruction, and the query when the call holds one query)
is run once, and each batch's rows follow it without padding, each attending to the prefix and
to itself. This is the same arithmetic on the same tensors, so float32 scores match the card to
~1e-6, while skipping a (rows x length x 151,669) logits tensor, the KV cache the card's call
builds, every padding token and all but one copy of the prompt.

The checkpoint must load completely as ``AutoModelForCausalLM``; a sequence-classification
checkpoint (a "seq-cls" conversion) is refused with a pointer to ``kind=cross_encoder``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from pipeline.config.local import LocalScorerConfig
from pipeline.runtime.text import TextConfig
from pipeline.scorers.hf import TransformersScorer
from pipeline.scorers.loading import ScorerLoadError, architectures, load_config, load_model, load_tokenizer
from pipeline.scorers.packing import packed_runner, register
from pipeline.scorers.prompts import DEFAULT_INSTRUCTION, PromptEncoder


def single_token_id(tokenizer: Any, word: str, model_name: str) -> int:
    """Id of ``word`` as one vocabulary token, or a clear error (the score is read from it)."""
    token_id = tokenizer.convert_tokens_to_ids(word)
    ok = (
        isinstance(token_id, int)
        and token_id != tokenizer.unk_token_id
        and tokenizer.convert_ids_to_tokens(token_id) == word
        and tokenizer.encode(word, add_special_tokens=False) == [token_id]
    )
    if not ok:
        pieces = tokenizer.tokenize(word)
        raise ScorerLoadError(
            f"the tokenizer of {model_name} has no single token {word!r} (it splits it into {pieces}); "
            "kind=qwen3_reranker reads P(yes) from the 'yes'/'no' token logits, so this is not a "
            "Qwen3-Reranker checkpoint (use kind=cross_encoder for classifier checkpoints)"
        )
    return token_id


class Qwen3RerankerScorer(TransformersScorer):
    kind = "qwen3_reranker"
    score_type = "probability"
    packed = True

    def __init__(self, cfg: LocalScorerConfig, text_cfg: TextConfig | None = None) -> None:
        super().__init__(cfg, text_cfg)
        cfg = self.cfg  # coerced: Enums even when built in code with strings
        from transformers import AutoModelForCausalLM

        hf_config = load_config(self.source, cfg)
        arch = architectures(hf_config)
        if any("SequenceClassification" in a for a in arch):
            raise ScorerLoadError(
                f"{cfg.model} is a sequence-classification checkpoint ({', '.join(arch)}); reading yes/no "
                "logits from it would use an untied or missing lm_head. Use local.kind=cross_encoder "
                "(with local.template=official for seq-cls conversions of Qwen3 rerankers)"
            )
        if cfg.attn_implementation not in (None, "", "sdpa"):
            raise ValueError(
                f"local.attn_implementation={cfg.attn_implementation!r} is not used by kind=qwen3_reranker: it "
                "runs its own packed attention (torch scaled_dot_product_attention per row); leave it unset"
            )
        self.tokenizer = load_tokenizer(self.source, cfg)  # rows are packed, never padded
        self.yes_id = single_token_id(self.tokenizer, "yes", cfg.model)
        self.no_id = single_token_id(self.tokenizer, "no", cfg.model)
        self.prompt = self._encoder(cfg)
        model = load_model(
            AutoModelForCausalLM,
            self.source,
            cfg,
            instead="Qwen3-Reranker checkpoints load completely as a causal LM; check local.model and local.kind.",
        )
        self.model = model.to(self.device).eval()
        self.model.set_attn_implementation(register())
        self.body = self.model.base_model
        head = self.model.get_output_embeddings()
        rows = torch.tensor([self.no_id, self.yes_id], device=head.weight.device)
        # (2, hidden): a copy, so the fast path never touches the 151k-row matrix
        self.head_weight = head.weight.detach().index_select(0, rows).clone()
        bias = getattr(head, "bias", None)
        self.head_bias = None if bias is None else bias.detach().index_select(0, rows).clone()

    def _encode(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        return self.prompt.encode(pairs)

    def encode_pairs(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        """The token rows the model reads for ``pairs`` (already preprocessed), prompt included."""
        return self._encode(pairs)

    PROMPT_FIELDS = (
        "template",
        "instruction",
        "max_length",
        "strip_texts",
        "strip_prompt",
        "batch_size",
        "max_batch_tokens",
        "aligned_by",
    )

    def _encoder(self, cfg: LocalScorerConfig, instruction: str | None = None) -> PromptEncoder:
        return PromptEncoder(
            self.tokenizer,
            cfg.template,
            instruction or cfg.instruction or DEFAULT_INSTRUCTION,
            cfg.max_length,
            strip_prompt=cfg.strip_prompt,
        )

    def with_prompt(self, cfg: LocalScorerConfig) -> Qwen3RerankerScorer:
        """A scorer for ``cfg`` that shares this one's loaded weights: allowed when ``cfg`` differs
        only in how pairs become tokens (template, instruction, max_length, strip_texts) or in
        batching. ``align`` tries many prompts on one model load this way."""
        import copy
        from dataclasses import asdict

        from pipeline.config.local import coerce

        cfg = coerce(cfg)
        mine, theirs = asdict(self.cfg), asdict(cfg)
        differing = sorted(k for k in mine if mine[k] != theirs[k] and k not in self.PROMPT_FIELDS)
        if differing:
            raise ValueError(f"with_prompt cannot change {differing}: those need another model load")
        twin = copy.copy(self)
        twin.cfg = cfg
        twin.prompt = self._encoder(cfg)
        return twin

    @contextlib.contextmanager
    def using_instruction(self, instruction: str | None) -> Iterator[None]:
        """Score with ``instruction`` instead of the configured one while the block runs (``None``:
        keep it). For a server whose requests carry their own instruction; not thread-safe, so
        callers that score concurrently hold a lock around it."""
        if instruction is None or instruction == self.prompt.instruction:
            yield
            return
        saved = self.prompt
        self.prompt = self._encoder(self.cfg, instruction)
        try:
            yield
        finally:
            self.prompt = saved

    def _batch_runner(self, rows: Sequence[Sequence[int]]):
        """Run the call's shared prefix once; each batch then runs packed after it."""
        return packed_runner(self.body, rows, self.device, self._yes_probability)

    def _yes_probability(self, last: torch.Tensor) -> torch.Tensor:
        """P(yes) from the last-token hidden states (rows x hidden): two lm_head rows, not 151k."""
        logits = last @ self.head_weight.T
        if self.head_bias is not None:
            logits = logits + self.head_bias
        logits = logits.float()
        return torch.sigmoid(logits[:, 1] - logits[:, 0])

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {
            "template": self.cfg.template.value,
            "instruction": self.prompt.effective_instruction,
            "yes_token_id": self.yes_id,
            "no_token_id": self.no_id,
        }

    def close(self) -> None:
        self.body = None
        self.head_weight = None
        self.head_bias = None
        super().close()
