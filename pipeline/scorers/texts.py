"""The prompts as text, before any tokenizer: what an HTTP scoring engine receives.

The transformers backends turn pairs into token ids (:mod:`pipeline.scorers.prompts`); an engine
(vLLM, TEI, infinity) is sent strings and tokenises them itself, as a *pair*: ``text_1`` and
``text_2`` tokenised separately and concatenated (Qwen tokenizers add no special tokens to
pairs; BERT-style ones add ``[CLS] ... [SEP] ... [SEP]``). That is exactly ``template=vllm`` of
the Qwen3 prompt (query part | document part) and ``template=none``, so those two are what an
engine can reproduce; ``official`` tokenises the whole prompt as one string and is refused.
Built from the same constants as the token-level encoder, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable

from pipeline.scorers.config import Template
from pipeline.scorers.prompts import PREFIX, SUFFIX, VLLM_DOCUMENT, VLLM_QUERY
from pipeline.text import TextConfig, is_identity, preprocess

TextForm = Callable[[str], str]

#: Qwen3-Embedding's query form (the model card's; no space after "Query:")
EMBEDDING_QUERY_TEMPLATE = "Instruct: {task}\nQuery:{query}"


def scorer_text(text: str, text_cfg: TextConfig, strip_texts: bool) -> str:
    """A query or document as every local backend sees it: ``text.*`` preprocessing (a no-op on
    text collect already preprocessed), then ``local.strip_texts``."""
    text = text if is_identity(text_cfg) else preprocess(text, text_cfg)
    return text.strip() if strip_texts else text


def embedding_query(query: str, task: str | None) -> str:
    """The text embedded for a query: bare without a task, else the instructed form."""
    return query if task is None else EMBEDDING_QUERY_TEMPLATE.format(task=task, query=query)


def qwen3_pair_texts(template: Template, instruction: str, strip_prompt: bool = False) -> tuple[TextForm, TextForm]:
    """How a query and a document become the two texts of the pair an engine tokenises: the Qwen3
    prompt split where ``template=vllm`` splits it, or the bare pair for ``template=none``."""
    template = Template(template)
    if template is Template.none:
        if strip_prompt:  # as PromptEncoder: the whole prompt stripped = the query's head, the document's tail
            return str.lstrip, str.rstrip
        return str, str
    if template is not Template.vllm:
        raise ValueError(
            f"local.template={template.value} cannot be reproduced by an HTTP engine: it tokenises the whole "
            "prompt as one string, while an engine tokenises (query part, document part) as a pair. Use "
            "local.template=vllm (the same tokens unless a document is truncated) or none"
        )
    prefix = PREFIX.lstrip() if strip_prompt else PREFIX
    suffix = SUFFIX.rstrip() if strip_prompt else SUFFIX

    def query_text(query: str) -> str:
        return VLLM_QUERY.format(prefix=prefix, instruction=instruction, query=query)

    def document_text(doc: str) -> str:
        return VLLM_DOCUMENT.format(doc=doc) + suffix

    return query_text, document_text
