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

from pipeline.config.local import Template
from pipeline.runtime.text import TextConfig, is_identity, preprocess
from pipeline.scorers.prompts import PREFIX, SUFFIX, VLLM_DOCUMENT, VLLM_QUERY

TextForm = Callable[[str], str]

#: Qwen3-Embedding's query form (the model card's; no space after "Query:")
EMBEDDING_QUERY_TEMPLATE = "Instruct: {task}\nQuery:{query}"


def scorer_text(text: str, text_cfg: TextConfig, strip_texts: bool) -> str:
    """A query or document as every local backend sees it: ``text.*`` preprocessing (a no-op on
    text collect already preprocessed), then ``local.strip_texts``."""
    text = text if is_identity(text_cfg) else preprocess(text, text_cfg)
    return text.strip() if strip_texts else text


#: how ``local.strip_prompt`` is recorded in a fingerprint where it strips each text the tokenizer
#: receives (template vllm: the query part and the document part; none: query and document;
#: embeddings: each text embedded). ``official`` strips its one whole prompt and records ``true``.
STRIP_EACH_TEXT = "each text"


def strip_prompt_mark(kind: str, template: Template | str | None) -> bool | str:
    """The fingerprint value of ``local.strip_prompt=true`` for a scorer of ``kind``/``template``."""
    if kind != "embedding" and Template(template) is Template.official:
        return True
    return STRIP_EACH_TEXT


def embedding_text(text: str, strip_prompt: bool) -> str:
    """A text as an embedding model is given it: ``local.strip_prompt`` strips it, as a server that
    strips every input (infinity) does."""
    return text.strip() if strip_prompt else text


def embedding_query(query: str, task: str | None) -> str:
    """The text embedded for a query: bare without a task, else the instructed form."""
    return query if task is None else EMBEDDING_QUERY_TEMPLATE.format(task=task, query=query)


def qwen3_pair_texts(template: Template, instruction: str, strip_prompt: bool = False) -> tuple[TextForm, TextForm]:
    """How a query and a document become the two texts of the pair an engine tokenises: the Qwen3
    prompt split where ``template=vllm`` splits it, or the bare pair for ``template=none``.
    ``strip_prompt`` strips each of the two texts, which is what a server that strips every input
    (infinity) computes from the unstripped ones; the in-process encoder does the same."""
    template = Template(template)
    if template is Template.none:
        return (str.strip, str.strip) if strip_prompt else (str, str)
    if template is not Template.vllm:
        raise ValueError(
            f"local.template={template.value} cannot be reproduced by an HTTP engine: it tokenises the whole "
            "prompt as one string, while an engine tokenises (query part, document part) as a pair. Use "
            "local.template=vllm (the same tokens unless a document is truncated) or none"
        )

    def query_text(query: str) -> str:
        text = VLLM_QUERY.format(prefix=PREFIX, instruction=instruction, query=query)
        return text.strip() if strip_prompt else text

    def document_text(doc: str) -> str:
        text = VLLM_DOCUMENT.format(doc=doc) + SUFFIX
        return text.strip() if strip_prompt else text

    return query_text, document_text
