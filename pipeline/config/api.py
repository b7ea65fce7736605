"""Schema of the ``api`` config group (conf/api/*.yaml).

Every field that changes what the reference API returns (dialect, model, endpoint, instruction,
templates, raw scores, dimensions, extra body fields) goes into the API source's fingerprint and
therefore into the score-cache key; fields that only change *how fast* or *how persistently* we
ask (concurrency, limits, timeouts, retries, prices) do not, so tuning them never re-bills pairs.

No field holds a secret: ``api_key_env`` is the *name* of the environment variable read in code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, Optional

from pipeline.config.settings import SettingError, setting


class Dialect(Enum):
    """Wire formats the client speaks (see :mod:`pipeline.api.adapters`)."""

    siliconflow = "siliconflow"  # POST {base}/rerank, {base}/embeddings
    cohere = "cohere"  # POST {base}/v2/rerank, {base}/v2/embed
    jina = "jina"  # POST {base}/rerank, {base}/embeddings
    voyage = "voyage"  # POST {base}/rerank (data[], top_k), {base}/embeddings
    tei = "tei"  # text-embeddings-inference: POST {base}/rerank (texts, raw_scores) -> bare array
    vllm = "vllm"  # POST {base}/rerank, {base}/v1/embeddings
    vllm_score = "vllm_score"  # POST {base}/score (text_1, text_2) -> data[].score
    infinity = "infinity"  # POST {base}/rerank, {base}/embeddings


class Endpoint(Enum):
    """What one API call computes: relevance scores, or embeddings (pair score = cosine)."""

    rerank = "rerank"
    embeddings = "embeddings"


class TopN(Enum):
    """How the rerank request asks for all documents back.

    ``all`` sends ``top_n`` (``top_k`` for Voyage) equal to the batch size, so no API's default
    cut-off can drop a document; ``omit`` leaves the field out for servers that reject it.
    """

    all = "all"
    omit = "omit"


class ScoreType(Enum):
    probability = "probability"
    logit = "logit"
    cosine = "cosine"


@dataclass
class ApiConfig:
    """One reference API: where it is, how to talk to it, and how hard to push it."""

    dialect: Dialect = Dialect.siliconflow
    base_url: str = "https://api.siliconflow.cn/v1"
    # null = the dialect's default path for the endpoint (e.g. /rerank, /v1/rerank, /score)
    path: Optional[str] = None
    model: str = "Qwen/Qwen3-Reranker-0.6B"
    # hosted models publish no revision; recorded in the table metadata when you know one
    revision: Optional[str] = None
    # name of the environment variable holding the key; null = send no Authorization header
    api_key_env: Optional[str] = "SILICONFLOW_API_KEY"
    # false: send the key when the variable is set, no Authorization header when it is not
    api_key_required: bool = True
    endpoint: Endpoint = Endpoint.rerank

    # --- what is sent (part of the cache key) ---
    # SiliconFlow sends it as the `instruction` field (Qwen3 rerankers); other dialects only
    # through {instruction} in query_template / document_template
    instruction: Optional[str] = None
    # applied to the preprocessed text before sending; placeholders {query} {instruction} /
    # {document} {instruction}. null = send the text as is
    query_template: Optional[str] = None
    document_template: Optional[str] = None
    top_n: TopN = TopN.all
    # vLLM only, and required there: true = the server was started with a chat template
    # (--chat-template qwen3_reranker.jinja) and formats the prompt, so the client sends the bare
    # query and documents; false = the server applies none and the client formats the prompt
    # with query_template / document_template. Null for other dialects.
    server_template: Optional[bool] = None
    # TEI / infinity: return raw logits instead of sigmoid probabilities
    raw_scores: bool = False
    # embeddings: requested output size (Qwen3-Embedding truncates then re-normalises)
    dimensions: Optional[int] = setting(None, ge=1)
    # what a score means; null = derived (embeddings -> cosine, raw_scores -> logit, else probability)
    score_type: Optional[ScoreType] = None
    # extra JSON fields merged into every request body (e.g. {truncate: true} for TEI)
    extra_body: Dict[str, Any] = field(default_factory=dict)

    # --- batching and limits (not part of the cache key) ---
    max_documents_per_request: int = setting(64, ge=1)
    # also split a query group when its estimated tokens exceed this (null = no token cap)
    max_tokens_per_request: Optional[int] = setting(None, ge=1, why="null = no token cap")
    concurrency: int = setting(16, ge=1)
    # client-side limits; null = unlimited. SiliconFlow rerankers: 2,000 RPM, 500k TPM
    rpm: Optional[float] = setting(2000.0, gt=0, why="null = no limit")
    tpm: Optional[float] = setting(500000.0, gt=0, why="null = no limit")
    # pace at this fraction of rpm/tpm, so network jitter never pushes us over the server's limit
    rate_margin: float = setting(0.95, gt=0, le=1, why="a fraction of the limits")
    # added to every document's token estimate (prompt template tokens the provider bills)
    token_overhead_per_document: int = setting(0, ge=0)

    # --- timeouts and retries ---
    connect_timeout_s: float = setting(10.0, gt=0)
    timeout_s: float = setting(60.0, gt=0)
    # total attempts per request, including the first
    retry_attempts: int = setting(6, ge=1, why="attempts per request, the first included")
    # give up on a request when the next wait would end later than this after its first attempt
    retry_max_elapsed_s: float = setting(300.0, ge=0)
    backoff_initial_s: float = setting(0.5, ge=0)
    backoff_max_s: float = setting(30.0, ge=0)
    # malformed JSON / missing or duplicated indices are retried like a 5xx (truncated bodies
    # are usually transient); false = fail on the first one
    retry_invalid_responses: bool = True

    # --- cost (for the dry run and the usage summary) ---
    price_per_million_tokens: float = setting(0.0, ge=0)
    price_per_request: float = setting(0.0, ge=0)
    # Cohere bills search units (1 = one query with up to 100 documents), reported per response
    price_per_search_unit: float = setting(0.0, ge=0)


def check_api(api: ApiConfig) -> None:
    """The ``api`` section's cross-field checks."""
    if api.backoff_initial_s > api.backoff_max_s:
        raise SettingError(
            f"api.backoff_initial_s={api.backoff_initial_s:g} must not exceed api.backoff_max_s={api.backoff_max_s:g}"
        )
