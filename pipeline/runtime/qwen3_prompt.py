"""The Qwen3-Reranker prompt as its model card writes it, and vLLM's split of the same text.

Plain strings, in one place: the local scorer's templates (:mod:`pipeline.scorers.prompts`), the
API client's check of a vLLM server's template mode, ``serve`` and the demo's training all read
them from here.
"""

PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the "
    'Instruct provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
BODY = "<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {doc}"
DEFAULT_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"

# vLLM example split of the same text
VLLM_QUERY = "{prefix}<Instruct>: {instruction}\n<Query>: {query}\n"
VLLM_DOCUMENT = "<Document>: {doc}"
