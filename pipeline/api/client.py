"""The one async client for every reference API dialect.

``ApiClient`` owns an ``httpx.AsyncClient`` (connections reused across requests, pool sized to
``api.concurrency``), a semaphore bounding requests in flight, the RPM/TPM pacer and the retry
policy. Callers ask for scores of one query against a batch of documents
(:meth:`ApiClient.score`); the dialect adapter turns that into the wire format and back.

The API key is read from the environment variable named by ``api.api_key_env`` when the client
is built and lives only in the ``Authorization`` header of the underlying httpx client. Every
message this module builds from server output passes through :func:`~pipeline.api.errors.redact`
first, so even a server that echoes the key back cannot put it into an exception or a log line.
"""

from __future__ import annotations

from pipeline.core.errors import PipelineError
from pipeline.core.extras import require

require("the API client (pipeline.api)", "api")

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np

from pipeline.api.adapters import Adapter, Usage, adapter_for, parse_usage
from pipeline.api.errors import (
    ApiError,
    FatalApiError,
    ResponseFormatError,
    RetriesExhausted,
    RetryableError,
    redact,
)
from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from pipeline.api.tokens import estimate_embedding_tokens, estimate_rerank_tokens
from pipeline.config.api import ApiConfig, Dialect, Endpoint, ScoreType

if TYPE_CHECKING:
    from pipeline.api.spend import SpendGuard

log = logging.getLogger("pipeline.api")
T = TypeVar("T")

_SNIPPET = 300


class ApiConfigError(PipelineError, ValueError):
    """The ``api`` config cannot work as given; the message names the key."""


def resolve_api_key(cfg: ApiConfig) -> str | None:
    """The key from the environment variable named by ``api.api_key_env`` (None: no auth)."""
    name = cfg.api_key_env
    if not name:
        return None
    value = os.environ.get(name, "").strip()
    if not value and not cfg.api_key_required:
        return None
    if not value:
        raise ApiConfigError(
            f"environment variable {name} is not set: export {name}=<your API key> before running "
            f"(api.api_key_env names the variable; keys are never read from config files or the "
            f"command line). For a server without authentication set api.api_key_env=null."
        )
    return value


def sanitize_url(url: str) -> str:
    """``url`` without user info, query string or fragment (safe to record in metadata)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


def resolved_score_type(cfg: ApiConfig) -> str:
    if cfg.score_type is not None:
        return cfg.score_type.value
    if cfg.endpoint is Endpoint.embeddings:
        return ScoreType.cosine.value
    return ScoreType.logit.value if cfg.raw_scores else ScoreType.probability.value


def _check_template(template: str | None, key: str, allowed: tuple[str, ...]) -> None:
    if template is None:
        return
    try:
        template.format(**{name: "" for name in allowed})
    except (KeyError, IndexError, ValueError) as exc:
        raise ApiConfigError(
            f"api.{key}={template!r}: placeholders allowed are {', '.join('{' + a + '}' for a in allowed)} "
            f"(write literal braces as {{{{ }}}}): {exc!r}"
        ) from None


#: SiliconFlow's accepted `dimensions` per Qwen3-Embedding model (other values get a 400). The
#: provider's two reference pages disagree; this follows the newer API reference
#: (https://api-docs.siliconflow.cn/docs/api/embeddings-post, which adds 1536 and 2560), not the
#: older https://docs.siliconflow.cn/cn/api-reference/embeddings/create-embeddings
SILICONFLOW_DIMENSIONS = {
    "Qwen/Qwen3-Embedding-0.6B": (64, 128, 256, 512, 768, 1024),
    "Qwen/Qwen3-Embedding-4B": (64, 128, 256, 512, 768, 1024, 1536, 2048, 2560),
    "Qwen/Qwen3-Embedding-8B": (64, 128, 256, 512, 768, 1024, 1536, 2048, 2560, 4096),
}
VLLM_DIALECTS = (Dialect.vllm, Dialect.vllm_score)


def _check_vllm_template_mode(cfg: ApiConfig) -> None:
    from pipeline.runtime.qwen3_prompt import DEFAULT_INSTRUCTION  # the model card's, what the server's template says

    if cfg.dialect not in VLLM_DIALECTS:
        if cfg.server_template is not None:
            raise ApiConfigError(
                f"api.server_template applies to the vllm dialects only; set it to null for "
                f"api.dialect={cfg.dialect.value}"
            )
        return
    if cfg.server_template and cfg.endpoint is Endpoint.rerank and cfg.instruction not in (None, DEFAULT_INSTRUCTION):
        raise ApiConfigError(
            f"api.instruction={cfg.instruction!r} with api.server_template=true: the vLLM server's chat template "
            "supplies the instruction (qwen3_reranker.jinja: the model card's default) and the client sends bare "
            "texts, so this one would never reach the model; set api.instruction=null, or api.server_template=false "
            "to format the prompt, instruction included, in the client"
        )
    if cfg.server_template is None and cfg.endpoint is Endpoint.rerank:
        raise ApiConfigError(
            "api.server_template must say how the vLLM server was started: true if it runs with "
            "--chat-template (e.g. qwen3_reranker.jinja) and formats the prompt itself, so the client sends bare "
            "texts; false if it applies no template and the client formats the prompt with api.query_template / "
            "api.document_template. Either mistake gives silently wrong scores (see conf/api/vllm.yaml)"
        )


def _check_siliconflow(cfg: ApiConfig) -> None:
    """SiliconFlow's documented request constraints, checked before any request is paid for
    (https://docs.siliconflow.cn/cn/api-reference/rerank/create-rerank)."""
    if cfg.dialect is not Dialect.siliconflow:
        return
    if cfg.endpoint is Endpoint.rerank and cfg.instruction is not None:
        if not cfg.instruction:
            raise ApiConfigError(
                "api.instruction is empty: SiliconFlow requires at least 1 character; "
                "use api.instruction=null to leave it to the server"
            )
        if "qwen3-reranker" not in cfg.model.lower():
            raise ApiConfigError(
                f"api.instruction is supported only by SiliconFlow's Qwen3 rerankers, not "
                f"{cfg.model!r}; set api.instruction=null"
            )
    if cfg.endpoint is Endpoint.embeddings and cfg.dimensions is not None:
        allowed = SILICONFLOW_DIMENSIONS.get(cfg.model)
        if allowed is not None and cfg.dimensions not in allowed:
            raise ApiConfigError(
                f"api.dimensions={cfg.dimensions} is not accepted for {cfg.model} by SiliconFlow; "
                f"choose one of {', '.join(map(str, allowed))}"
            )


def validate_api_config(cfg: ApiConfig) -> Adapter:
    """Fail before the first request on settings that cannot work; return the adapter."""
    adapter = adapter_for(cfg)
    _check_vllm_template_mode(cfg)
    _check_siliconflow(cfg)
    if cfg.endpoint is Endpoint.embeddings and adapter.build_embed is None:
        raise ApiConfigError(f"api.endpoint=embeddings is not supported for api.dialect={cfg.dialect.value}")
    minimum = 2 if cfg.endpoint is Endpoint.embeddings else 1
    if cfg.max_documents_per_request < minimum:
        raise ApiConfigError(f"api.max_documents_per_request must be >= {minimum}, got {cfg.max_documents_per_request}")
    if cfg.concurrency < 1:
        raise ApiConfigError(f"api.concurrency must be >= 1, got {cfg.concurrency}")
    if cfg.timeout_s <= 0 or cfg.connect_timeout_s <= 0:
        raise ApiConfigError("api.timeout_s and api.connect_timeout_s must be > 0")
    _check_template(cfg.query_template, "query_template", ("query", "instruction"))
    _check_template(cfg.document_template, "document_template", ("document", "instruction"))
    if cfg.instruction is not None and not cfg.server_template:
        in_template = any("{instruction}" in (t or "") for t in (cfg.query_template, cfg.document_template))
        sends_field = adapter.instruction_field and cfg.endpoint is Endpoint.rerank
        if not (in_template or sends_field):
            raise ApiConfigError(
                f"api.instruction is set but api.dialect={cfg.dialect.value} ({cfg.endpoint.value}) has no "
                f"instruction field: put {{instruction}} into api.query_template, or set api.instruction=null"
            )
    if not cfg.base_url.startswith(("http://", "https://")):
        raise ApiConfigError(f"api.base_url must start with http:// or https://, got {sanitize_url(cfg.base_url)!r}")
    return adapter


def client_formats_prompt(cfg: ApiConfig) -> bool:
    """False when the server applies the prompt template (``api.server_template=true``): the
    client then sends bare texts, and neither the templates nor the instruction are sent."""
    return not cfg.server_template


def format_query(cfg: ApiConfig, query: str) -> str:
    """The query as sent: ``api.query_template`` applied to the preprocessed query."""
    template = cfg.query_template if client_formats_prompt(cfg) else None
    return template.format(query=query, instruction=cfg.instruction or "") if template else query


def format_document(cfg: ApiConfig, document: str) -> str:
    template = cfg.document_template if client_formats_prompt(cfg) else None
    return template.format(document=document, instruction=cfg.instruction or "") if template else document


def estimate_request_tokens(cfg: ApiConfig, query: str, documents: Sequence[str]) -> int:
    """Token estimate of one :meth:`ApiClient.score` call on these preprocessed texts."""
    q = format_query(cfg, query)
    docs = [format_document(cfg, d) for d in documents]
    if cfg.endpoint is Endpoint.embeddings:
        return estimate_embedding_tokens([q, *docs])
    return estimate_rerank_tokens(q, docs, cfg.token_overhead_per_document)


@dataclass
class ClientStats:
    """Live counters, read by the progress bar and written to the usage summary."""

    requests: int = 0  # HTTP attempts sent
    succeeded: int = 0
    retries: int = 0
    rate_limited: int = 0  # 429 responses
    server_errors: int = 0  # 5xx / 408
    timeouts: int = 0
    connection_errors: int = 0
    invalid_responses: int = 0
    documents: int = 0  # documents scored by successful requests
    tokens_reported: int = 0  # from responses that report usage
    tokens_estimated: int = 0  # estimates of every successful request
    responses_without_usage: int = 0
    tokens_unreported_estimate: int = 0  # estimates of the responses that report none
    search_units: int = 0
    #: responses whose scores all sit within 1e-4 of each other (4+ documents): the sign of a
    #: prompt wrapped twice, or of none where the model needs one
    clustered_responses: int = 0

    @property
    def tokens(self) -> int:
        """Best figure for tokens billed: reported where known, estimated elsewhere."""
        return self.tokens_reported + self.tokens_unreported_estimate

    def as_dict(self) -> dict[str, int]:
        out = asdict(self)
        out["tokens"] = self.tokens
        return out


@dataclass
class ScoreResult:
    scores: np.ndarray  # float64, one per document, in request order
    usage: Usage
    estimated_tokens: int


class ApiClient:
    """Async client for one configured reference API. Use as ``async with ApiClient(cfg) as c``.

    Parameters
    ----------
    cfg : ApiConfig
    api_key : str, optional
        Overrides the environment lookup (tests); ``None`` reads ``api.api_key_env``.
    transport : httpx.AsyncBaseTransport, optional
        For tests; the default is httpx's pooled HTTP transport.
    on_retry : callable, optional
        Called with the error after each failed attempt that will be retried (progress display).
    spend : SpendGuard, optional
        A budget (:mod:`pipeline.api.spend`): each attempt reserves its pairs and estimated cost
        before it is sent (refused with ``BudgetExhausted`` when that would cross the limit) and
        is settled at the reported usage.
    """

    def __init__(
        self,
        cfg: ApiConfig,
        *,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        on_retry: Callable[[ApiError], None] | None = None,
        spend: SpendGuard | None = None,
    ) -> None:
        self.cfg = cfg
        self.spend = spend
        self.adapter = validate_api_config(cfg)
        self._key = api_key if api_key is not None else resolve_api_key(cfg)
        self.url = cfg.base_url.rstrip("/") + "/" + self.adapter.path(cfg).lstrip("/")
        self.where = f"{cfg.dialect.value} {sanitize_url(self.url)}"
        self.policy = policy or RetryPolicy(
            attempts=cfg.retry_attempts,
            max_elapsed_s=cfg.retry_max_elapsed_s,
            initial_s=cfg.backoff_initial_s,
            max_s=cfg.backoff_max_s,
        )
        self.limiter = limiter or RateLimiter(cfg.rpm, cfg.tpm, cfg.rate_margin)
        self.stats = ClientStats()
        self._reported_tokens = 0  # of responses that report usage, and their estimates:
        self._estimated_for_reported = 0  # the running ratio that scales what pacing claims
        self.on_retry = on_retry
        self.score_type = resolved_score_type(cfg)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._sem: asyncio.Semaphore | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> ApiClient:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "score-calibration-pipeline",
        }
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        n = self.cfg.concurrency
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(self.cfg.timeout_s, connect=self.cfg.connect_timeout_s),
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            transport=self._transport,
            follow_redirects=False,
        )
        self._sem = asyncio.Semaphore(n)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- text formatting ---------------------------------------------------------------------

    def format_query(self, query: str) -> str:
        return format_query(self.cfg, query)

    def format_document(self, document: str) -> str:
        return format_document(self.cfg, document)

    # -- public calls ------------------------------------------------------------------------

    async def score(self, query: str, documents: Sequence[str]) -> ScoreResult:
        """Scores of ``documents`` for ``query`` in document order (one request).

        Rerank endpoints return the API's relevance scores; the embeddings endpoint embeds the
        query and the documents in one request and returns cosine similarities.
        """
        if not documents:
            return ScoreResult(np.zeros(0), Usage(), 0)
        q = self.format_query(query)
        docs = [self.format_document(d) for d in documents]
        if self.cfg.endpoint is Endpoint.embeddings:
            vectors, usage, est = await self._embed([q, *docs])
            return ScoreResult(_cosine(vectors[0], vectors[1:], self.where), usage, est)
        body = self.adapter.build_rerank(self.cfg, q, docs)
        body.update(self.cfg.extra_body)
        est = estimate_rerank_tokens(q, docs, self.cfg.token_overhead_per_document)
        n = len(docs)
        scores, usage = await self._call(body, est, n, lambda b: self.adapter.parse_rerank(b, n))
        values = np.asarray(scores, dtype=np.float64)
        if n >= 4 and float(np.ptp(values)) < 1e-4:
            self.stats.clustered_responses += 1
        return ScoreResult(values, usage, est)

    async def embed(self, texts: Sequence[str]) -> tuple[np.ndarray, Usage]:
        """Embeddings of ``texts`` as sent (no templates), shape (n, dims), in input order."""
        if self.adapter.build_embed is None:
            raise ApiConfigError(f"api.dialect={self.cfg.dialect.value} has no embeddings endpoint in this client")
        vectors, usage, _ = await self._embed(list(texts))
        return vectors, usage

    async def _embed(self, texts: list[str]) -> tuple[np.ndarray, Usage, int]:
        assert self.adapter.build_embed is not None
        body = self.adapter.build_embed(self.cfg, texts)
        body.update(self.cfg.extra_body)
        est = estimate_embedding_tokens(texts)
        n, dims = len(texts), self.cfg.dimensions
        vectors, usage = await self._call(body, est, n - 1, lambda b: self.adapter.parse_embeddings(b, n, dims))
        return np.asarray(vectors, dtype=np.float64), usage, est

    # -- pacing that learns from reported usage ----------------------------------------------

    #: the learned reported/estimated ratio is clamped to this range, then raised by the bias, so
    #: pacing stays on the safe side while the ratio settles (the schedule is corrected to the
    #: reported figure once each response arrives, so the bias costs nothing in the long run)
    RATIO_FLOOR, RATIO_CEILING, RATIO_BIAS = 0.05, 10.0, 1.25

    def paced_tokens(self, est_tokens: int) -> int:
        """Tokens a request claims from the TPM schedule before it is sent: the estimate scaled by
        what the server has reported so far (estimates are biased high on purpose; a server that
        reports 1/18 of them would otherwise be paced at a fraction of its real limit)."""
        if not self._estimated_for_reported:
            return est_tokens
        ratio = self._reported_tokens / self._estimated_for_reported
        ratio = min(max(ratio, self.RATIO_FLOOR), self.RATIO_CEILING) * self.RATIO_BIAS
        return max(1, int(math.ceil(est_tokens * min(ratio, self.RATIO_CEILING))))

    # -- the retry loop ----------------------------------------------------------------------

    async def _call(
        self, body: dict[str, Any], est_tokens: int, n_docs: int, parse: Callable[[Any], T]
    ) -> tuple[T, Usage]:
        if self._http is None or self._sem is None:
            raise RuntimeError("ApiClient used outside 'async with'")
        first = time.monotonic()
        failures = 0
        while True:
            async with self._sem:
                claimed = self.paced_tokens(est_tokens)
                await self.limiter.acquire(claimed)
                # booked last, right before it leaves: a wait for the rate limit holds no budget
                ticket = self.spend.reserve(n_docs, est_tokens) if self.spend is not None else None
                self.stats.requests += 1
                try:
                    value, usage = await self._attempt(body, parse)
                except BaseException as exc:
                    if ticket is not None:
                        self.spend.fail(ticket)
                    if isinstance(exc, RetryableError):
                        error: ApiError = exc
                    elif isinstance(exc, ResponseFormatError):
                        self.stats.invalid_responses += 1
                        if not self.cfg.retry_invalid_responses:
                            raise
                        error = exc
                    else:
                        raise
                else:
                    if ticket is not None:
                        tokens = usage.tokens if usage.tokens is not None else est_tokens
                        self.spend.settle(ticket, n_docs, tokens, usage.search_units)
                    self._record_success(usage, est_tokens, claimed, n_docs)
                    return value, usage
            failures += 1
            elapsed = time.monotonic() - first
            retry_after = getattr(error, "retry_after", None)
            delay = self.policy.next_delay(failures, elapsed, retry_after)
            if delay is None:
                why = (
                    f"after {failures} attempt(s)"
                    if failures >= self.policy.attempts
                    else f"within api.retry_max_elapsed_s={self.policy.max_elapsed_s:g}s"
                )
                raise RetriesExhausted(f"{self.where}: gave up {why} ({elapsed:.1f}s); last error: {error}") from None
            if retry_after is not None:
                self.limiter.pause_until(time.monotonic() + delay)
            self.stats.retries += 1
            log.debug("retry %d in %.2fs: %s", failures, delay, error)
            if self.on_retry is not None:
                self.on_retry(error)
            await asyncio.sleep(delay)

    def _record_success(self, usage: Usage, est_tokens: int, claimed: int, n_docs: int) -> None:
        s = self.stats
        s.succeeded += 1
        s.documents += n_docs
        s.tokens_estimated += est_tokens
        if usage.tokens is not None:
            s.tokens_reported += usage.tokens
            self._reported_tokens += usage.tokens
            self._estimated_for_reported += est_tokens
            self.limiter.adjust(usage.tokens - claimed)
        else:
            s.responses_without_usage += 1
            s.tokens_unreported_estimate += est_tokens
        if usage.search_units is not None:
            s.search_units += usage.search_units

    def _redact(self, text: str) -> str:
        return redact(text, self._key)

    def _snippet(self, content: bytes) -> str:
        text = content[:_SNIPPET].decode("utf-8", errors="replace")
        return self._redact(text) + ("..." if len(content) > _SNIPPET else "")

    async def _attempt(self, body: dict[str, Any], parse: Callable[[Any], T]) -> tuple[T, Usage]:
        assert self._http is not None
        try:
            response = await self._http.post(self.url, json=body)
        except httpx.TimeoutException as exc:
            self.stats.timeouts += 1
            raise RetryableError(f"{self.where}: {type(exc).__name__} (api.timeout_s={self.cfg.timeout_s:g})") from None
        except httpx.TransportError as exc:
            self.stats.connection_errors += 1
            raise RetryableError(
                f"{self.where}: connection error: {type(exc).__name__}: {self._redact(str(exc))}"
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            try:
                payload = json.loads(response.content)
            except ValueError as exc:
                msg = getattr(exc, "msg", str(exc))
                raise ResponseFormatError(
                    f"{self.where}: response is not valid JSON ({msg}; {len(response.content)} bytes, "
                    f"starts {self._snippet(response.content)!r})"
                ) from None
            try:
                value = parse(payload)
            except ResponseFormatError as exc:
                raise ResponseFormatError(f"{self.where}: {self._redact(str(exc))}") from None
            usage = parse_usage(payload)
            header = self.adapter.usage_header
            if usage.tokens is None and header and response.headers.get(header, "").strip().isdigit():
                usage = Usage(tokens=int(response.headers[header]), search_units=usage.search_units)
            return value, usage
        detail = self._snippet(response.content)
        if status == 429:
            self.stats.rate_limited += 1
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            hint = f", Retry-After {retry_after:g}s" if retry_after is not None else ""
            raise RetryableError(f"{self.where}: 429 rate limited{hint}: {detail}", status=429, retry_after=retry_after)
        if status in RETRYABLE_STATUSES:
            self.stats.server_errors += 1
            raise RetryableError(
                f"{self.where}: HTTP {status}: {detail}",
                status=status,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
            )
        raise FatalApiError(self._fatal_message(status, detail), status=status)

    def _fatal_message(self, status: int, detail: str) -> str:
        cfg = self.cfg
        if status == 401:
            if cfg.api_key_env:
                how = (
                    f"the API key in environment variable {cfg.api_key_env} was rejected; check that "
                    f"{cfg.api_key_env} holds a valid key for {sanitize_url(cfg.base_url)}"
                )
            else:
                how = (
                    "the server requires a key but api.api_key_env is null; set api.api_key_env to the "
                    "name of the environment variable holding it"
                )
            return f"{self.where}: 401 Unauthorized: {how}. Server said: {detail}"
        if status == 403:
            extra = ""
            if cfg.dialect is Dialect.siliconflow:
                extra = (
                    " SiliconFlow returns 403 until the account has completed real-name verification "
                    "(实名认证) in the SiliconFlow console, and for models the account may not use; "
                    "complete the verification or pick another api.model."
                )
            return f"{self.where}: 403 Forbidden for model {cfg.model!r}.{extra} Server said: {detail}"
        if status == 404:
            return (
                f"{self.where}: 404 Not Found: check api.base_url / api.path for dialect "
                f"{cfg.dialect.value} and that model {cfg.model!r} exists there. Server said: {detail}"
            )
        if status == 400:
            return (
                f"{self.where}: 400 Bad Request (not retried; check api.model, the dialect's fields, "
                f"document length limits, api.extra_body). Server said: {detail}"
            )
        return f"{self.where}: HTTP {status} (not retried). Server said: {detail}"


def _cosine(query: np.ndarray, docs: np.ndarray, where: str) -> np.ndarray:
    qn = np.linalg.norm(query)
    dn = np.linalg.norm(docs, axis=1)
    if qn == 0 or np.any(dn == 0):
        raise ResponseFormatError(f"{where}: zero-length embedding in response")
    return (docs @ query) / (dn * qn)
