"""Qwen3-Reranker prompt templates: (query, document) pairs to token ids.

Most local/API disagreement for Qwen3 rerankers comes from the prompt, so each way of building
it is a named, configurable template (``local.template``):

``official``
    The model card's transformers recipe. ``body = "<Instruct>: {instruction}\\n<Query>:
    {query}\\n<Document>: {doc}"`` is tokenised on its own (the card's call: default special
    tokens, right truncation to ``max_length - len(prefix) - len(suffix)``) and wrapped as
    ``prefix + body + suffix``; the prefix is the system turn that asks for "yes"/"no", the suffix
    opens the assistant turn with an empty ``<think>`` block.
``vllm``
    vLLM's example (examples/offline_inference/qwen3_reranker.py): the query part
    ``prefix + "<Instruct>: {instruction}\\n<Query>: {query}\\n"`` and the document part
    ``"<Document>: {doc}" + suffix`` are tokenised separately and concatenated, which is what
    vLLM's score API does with a text pair for Qwen tokenizers (they add no special tokens to
    pairs). With Qwen's pre-tokenizer this gives the official tokens whenever nothing is
    truncated; it differs under truncation: vLLM rejects over-long pairs, here the document alone
    is cut so the suffix (where the score is read) survives.
``none``
    No prompt at all: the tokenizer's own pair encoding of (query, document), as a server that
    ignores the template does. For Qwen rerankers this ranks almost at random; it is here to
    reproduce such servers, not to be used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.config.local import Template
from pipeline.runtime.qwen3_prompt import BODY, DEFAULT_INSTRUCTION, PREFIX, SUFFIX, VLLM_DOCUMENT, VLLM_QUERY

__all__ = ["BODY", "DEFAULT_INSTRUCTION", "PREFIX", "SUFFIX", "VLLM_DOCUMENT", "VLLM_QUERY", "PromptEncoder"]


@dataclass
class PromptEncoder:
    """Turns pairs into token ids for one tokenizer, template and instruction."""

    tokenizer: object
    template: Template
    instruction: str
    max_length: int
    #: strip every text the tokenizer receives, as servers that strip their inputs do: official,
    #: the one whole prompt (the assistant turn loses its closing "\n\n"); vllm, each of the two
    #: parts (the query part also loses its closing "\n" and the query's trailing whitespace: what
    #: infinity computes); none, the query and the document
    strip_prompt: bool = False

    def __post_init__(self) -> None:
        self.template = Template(self.template)
        self.prefix_text = PREFIX.lstrip() if self.strip_prompt else PREFIX
        self.suffix_text = SUFFIX.rstrip() if self.strip_prompt else SUFFIX
        self.prefix_ids = self.tokenizer.encode(self.prefix_text, add_special_tokens=False)
        self.suffix_ids = self.tokenizer.encode(self.suffix_text, add_special_tokens=False)
        if self.template is not Template.none:
            room = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
            if room < 16:
                raise ValueError(
                    f"local.max_length={self.max_length} leaves {room} tokens for the instruction, query "
                    f"and document after the {len(self.prefix_ids) + len(self.suffix_ids)}-token prompt"
                )

    @property
    def effective_instruction(self) -> str | None:
        """What the fingerprint records: the template ``none`` uses no instruction."""
        return None if self.template is Template.none else self.instruction

    def encode(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        if not pairs:
            return []
        if self.template is Template.official:
            return self._official(pairs)
        if self.template is Template.vllm:
            return self._vllm(pairs)
        return self._none(pairs)

    def _official(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        bodies = [BODY.format(instruction=self.instruction, query=q, doc=d) for q, d in pairs]
        budget = self.max_length - len(self.prefix_ids) - len(self.suffix_ids)
        # same call as the model card: default special tokens, longest_first (= right) truncation
        encoded = self.tokenizer(bodies, padding=False, truncation="longest_first", max_length=budget,
                                 return_attention_mask=False)["input_ids"]  # fmt: skip
        return [self.prefix_ids + ids + self.suffix_ids for ids in encoded]

    def _vllm(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        queries = {q for q, _ in pairs}
        query_ids = {q: self.tokenizer.encode(self._vllm_query_part(q), add_special_tokens=False) for q in queries}
        out = []
        for q, d in pairs:
            head = query_ids[q]
            budget = self.max_length - len(head) - len(self.suffix_ids)
            if budget < 1:
                raise ValueError(
                    f"query of {len(head)} prompt tokens leaves no room under local.max_length={self.max_length}"
                )
            doc = self.tokenizer.encode(VLLM_DOCUMENT.format(doc=d), add_special_tokens=False)[:budget]
            out.append(head + doc + self.suffix_ids)
        return out

    def _vllm_query_part(self, query: str) -> str:
        text = VLLM_QUERY.format(prefix=self.prefix_text, instruction=self.instruction, query=query)
        return text.strip() if self.strip_prompt else text

    def _none(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        if self.strip_prompt:
            pairs = [(q.strip(), d.strip()) for q, d in pairs]
        encoded = self.tokenizer([q for q, _ in pairs], [d for _, d in pairs], padding=False,
                                 truncation="longest_first", max_length=self.max_length,
                                 return_attention_mask=False)["input_ids"]  # fmt: skip
        return [list(ids) for ids in encoded]
