"""Reference servers that differ from a local transformers run in one known way each, scored by
the literal model-card reimplementation (pipeline/testing/model_card.py) with the mismatch applied
to its input -- never by the project's scorer, so that `align` finding the mismatch proves
something. Served through the project's one loopback server module (model_factory)."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.testing.model_card import PREFIX, SUFFIX, ModelCardReranker

#: the mismatches, as real deployments differ
MISMATCHES = (
    "none",
    "no_template",
    "vllm_split",
    "strip",
    "strip_prompt",
    "instruction",
    "bfloat16",
    "nfkc",
    "inverted",
)
OTHER_INSTRUCTION = "Rank passages by how useful they are"


class MismatchedCardModel:
    """``score(query, documents, instruction)`` as a server with ``mismatch`` would compute it."""

    def __init__(self, settings, path, mismatch: str, max_length: int = 512) -> None:
        import torch

        self.settings = settings  # what the server module reads: served model name, limits
        if mismatch not in MISMATCHES:
            raise ValueError(f"unknown mismatch {mismatch!r}")
        self.mismatch = mismatch
        self.card = ModelCardReranker(
            path, max_length=max_length, dtype=torch.bfloat16 if mismatch == "bfloat16" else None
        )
        if mismatch == "strip_prompt":  # the whole formatted prompt stripped: the suffix loses its "\n\n"
            self.card.suffix_tokens = self.card.tokenizer.encode(SUFFIX.rstrip(), add_special_tokens=False)

    def score(self, query: str, documents: Sequence[str], instruction: str | None) -> tuple[list[float], int]:
        documents = list(documents)
        if self.mismatch == "strip":  # the server strips query and documents before the template
            query, documents = query.strip(), [d.strip() for d in documents]
        if self.mismatch == "nfkc":  # the server normalises Unicode (NFKC) before tokenising
            import unicodedata

            query, documents = (
                unicodedata.normalize("NFKC", query),
                [unicodedata.normalize("NFKC", d) for d in documents],
            )
        if self.mismatch == "instruction" and instruction is None:  # another default instruction
            instruction = OTHER_INSTRUCTION
        if self.mismatch == "no_template":  # the tokenizer's own pair encoding, no prompt at all
            tok = self.card.tokenizer
            inputs = tok(
                [query] * len(documents),
                documents,
                padding=True,
                truncation="longest_first",
                max_length=self.card.max_length,
                return_tensors="pt",
            )
            return self.card.compute_logits(inputs), int(inputs["attention_mask"].sum())
        if self.mismatch == "vllm_split":  # vLLM's example: query part and document part tokenised apart
            return self._split(query, documents, instruction), 0
        scores = self.card.score([(query, d) for d in documents], instruction=instruction)
        if self.mismatch == "inverted":  # a model that ranks every query the other way round: no
            scores = [1.0 - float(s) for s in scores]  # monotone map fits (the isotonic fit is constant)
        return scores, 0

    def _split(self, query: str, documents: list[str], instruction: str | None) -> list[float]:
        tok = self.card.tokenizer
        instruction = instruction or "Given a web search query, retrieve relevant passages that answer the query"
        head = tok.encode(f"{PREFIX}<Instruct>: {instruction}\n<Query>: {query}\n", add_special_tokens=False)
        rows = [head + tok.encode(f"<Document>: {d}{SUFFIX}", add_special_tokens=False) for d in documents]
        inputs = tok.pad({"input_ids": rows}, padding=True, return_tensors="pt")
        return self.card.compute_logits(inputs)

    def close(self) -> None:
        self.card = None
