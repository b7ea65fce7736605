"""SiliconFlow's wire format, both directions: the one place its paths, field names, defaults,
limits, response shapes and error bodies are written.

* the client (the SiliconFlow dialect of ``pipeline.api.adapters``) builds requests with
  :func:`rerank_request` / :func:`embeddings_request` and reads answers with :func:`read_rerank`,
  :func:`read_embeddings` and :func:`read_usage`;
* the servers, ``python -m pipeline serve`` and the loopback reference (``pipeline.reference.server``),
  validate requests with :func:`parse_rerank` / :func:`parse_embeddings` and answer with
  :func:`rerank_response`, :func:`embeddings_response`, :func:`models_response` and :func:`error_body`;
* the test fake (``pipeline.testing.fake_api``) validates and answers SiliconFlow requests with
  the same functions and adds only what is fake: faults, latency, the hosted service's per-model rules.

So a client that works against one works against the others and against SiliconFlow itself.
Standard library only.

* ``POST /v1/rerank``: request ``model``, ``query``, ``documents``, ``top_n``,
  ``return_documents``, ``instruction`` (+ ``max_chunks_per_doc``, ``overlap_tokens``); response
  ``id``, ``results`` sorted by score with ``index`` and ``relevance_score``, token usage.
* ``POST /v1/embeddings``: request ``model``, ``input`` (a string or a list of strings),
  ``encoding_format`` (``float`` or ``base64``), ``dimensions``; response OpenAI-style ``data`` items with
  ``index`` and ``embedding``, ``usage``.
* errors: ``{"code": int, "message": str, "data": null}`` with a 4xx/5xx status.

Results are always mapped back to the request by their ``index``, never by position: the API
sorts them by score. :func:`scores_by_index` and :func:`vectors_by_index` are the one check that
every requested input got exactly one finite result (the other dialects' adapters use them too);
a body that breaks the format is a :class:`MalformedResponse`.
"""

from __future__ import annotations

import hmac
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# ---------------------------------------------------------------------------------------------
# paths, fields, codes

#: the version prefix of every route; a client's base URL ends with it (https://api.siliconflow.cn/v1)
API_PREFIX = "/v1"
RERANK_PATH = "/rerank"
EMBEDDINGS_PATH = "/embeddings"
MODELS_PATH = "/models"

#: request fields SiliconFlow's rerank endpoint accepts
RERANK_REQUIRED = {"model", "query", "documents"}
RERANK_OPTIONAL = {"top_n", "return_documents", "instruction", "max_chunks_per_doc", "overlap_tokens"}
EMBED_REQUIRED = {"model", "input"}
EMBED_OPTIONAL = {"encoding_format", "dimensions", "user"}
#: SiliconFlow's embeddings `encoding_format` values (https://api-docs.siliconflow.cn/docs/api/embeddings-post)
ENCODINGS = ("float", "base64")

#: where the answers sit: ``results[].relevance_score`` (rerank), ``data[].embedding`` (embeddings)
RESULTS = "results"
SCORE = "relevance_score"
DATA = "data"

#: the two places SiliconFlow has put a rerank answer's token usage: top-level ``tokens`` and
#: the Cohere-like ``meta``
USAGE_SHAPES = ("tokens", "meta")

#: the rerankers SiliconFlow documents `max_chunks_per_doc` / `overlap_tokens` for (a long document
#: split into chunks, scored by its best one); other models accept and ignore the fields
#: (https://docs.siliconflow.cn/cn/api-reference/rerank/create-rerank)
CHUNKING_MODELS = ("BAAI/bge-reranker-v2-m3", "Pro/BAAI/bge-reranker-v2-m3", "netease-youdao/bce-reranker-base_v1")

#: SiliconFlow's error codes
INVALID_REQUEST = 20015
UNKNOWN_MODEL = 20012
INTERNAL_ERROR = 50000


class Limits(Protocol):
    """What a server checks a request against (``ReferenceConfig`` and ``ServeConfig`` both fit)."""

    served_model: str
    max_documents: int
    max_text_chars: int


# ---------------------------------------------------------------------------------------------
# errors: what a server answers a refused request with


class RequestError(Exception):
    """A request the API answers with a 4xx (or 5xx): ``status``, SiliconFlow-style ``code``, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def error_body(exc: RequestError) -> dict[str, Any]:
    return {"code": exc.code, "message": str(exc), "data": None}


def internal_error(exc: BaseException) -> RequestError:
    """A bug or a model failure: a 500 in the API's shape that names the exception's type only
    (never its text, which may hold a request's content)."""
    return RequestError(500, INTERNAL_ERROR, f"internal error: {type(exc).__name__}")


def check_auth(authorization: str, api_key: str | None) -> None:
    """Bearer auth: a 401 ``Invalid token`` unless the ``Authorization`` header carries the key
    (compared in constant time; the key is never echoed). No key: every request passes."""
    if api_key is None:
        return
    if not hmac.compare_digest(authorization.encode(), f"Bearer {api_key}".encode()):
        raise RequestError(401, 401, "Invalid token")


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, or the API's 400."""
    import json

    try:
        return json.loads(raw)
    except ValueError:
        raise RequestError(400, INVALID_REQUEST, "request body is not valid JSON") from None


# ---------------------------------------------------------------------------------------------
# requests: the client builds them, the servers validate them


def rerank_request(
    model: str,
    query: str,
    documents: Sequence[str],
    *,
    top_n: int | None = None,
    return_documents: bool | None = None,
    instruction: str | None = None,
) -> dict[str, Any]:
    """A rerank request body; a field left at None is not sent (the server's default applies)."""
    body: dict[str, Any] = {"model": model, "query": query, "documents": list(documents)}
    if top_n is not None:
        body["top_n"] = top_n
    if return_documents is not None:
        body["return_documents"] = return_documents
    if instruction is not None:
        body["instruction"] = instruction
    return body


def embeddings_request(
    model: str, texts: Sequence[str], *, dimensions: int | None = None, encoding_format: str = "float"
) -> dict[str, Any]:
    """An embeddings request body (OpenAI's, which SiliconFlow speaks); ``dimensions`` None is not sent."""
    body: dict[str, Any] = {"model": model, "input": list(texts), "encoding_format": encoding_format}
    if dimensions is not None:
        body["dimensions"] = dimensions
    return body


def _check_model(body: dict[str, Any], limits: Limits) -> None:
    if body["model"] != limits.served_model:
        raise RequestError(
            400,
            UNKNOWN_MODEL,
            f"Model does not exist: {str(body['model'])[:100]!r} (this server serves {limits.served_model!r})",
        )


def _check_fields(body: Any, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError(400, INVALID_REQUEST, "request body must be a JSON object")
    missing = sorted(required - set(body))
    unknown = sorted(set(body) - required - optional)
    if missing or unknown:
        problems = ([f"missing {missing}"] if missing else []) + ([f"unknown field(s) {unknown}"] if unknown else [])
        raise RequestError(
            400,
            INVALID_REQUEST,
            f"invalid request: {'; '.join(problems)}; fields: "
            f"{', '.join(sorted(required))} (required), {', '.join(sorted(optional))}",
        )
    return body


def parse_rerank(body: Any, limits: Limits | None, extensions: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Validate a rerank request as SiliconFlow does; returns the fields with defaults filled in.

    ``limits`` None leaves out the checks of a server that serves one model (its name, its
    document limit): the fake, standing in for the hosted service, serves any model name.
    ``extensions`` names request fields a server accepts on top of SiliconFlow's (``serve``'s
    opt-in ``return_interval``); they come back unchecked under ``"extensions"``, for the server
    to validate. Everyone else passes none and refuses them as unknown, as SiliconFlow does."""
    body = _check_fields(body, RERANK_REQUIRED, RERANK_OPTIONAL | extensions)
    if limits is not None:
        _check_model(body, limits)
    query, documents = body["query"], body["documents"]
    if not isinstance(query, str) or not query.strip():
        raise RequestError(400, INVALID_REQUEST, "query must be a non-empty string")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        raise RequestError(400, INVALID_REQUEST, "documents must be a non-empty list of strings")
    if limits is not None and len(documents) > limits.max_documents:
        raise RequestError(413, INVALID_REQUEST, f"too many documents: {len(documents)} > {limits.max_documents}")
    # no per-text limit: a text longer than the model takes is truncated (or chunked, below), as
    # the API does; 413 is for the request body's size alone
    top_n = body.get("top_n", len(documents))
    if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
        raise RequestError(400, INVALID_REQUEST, "top_n must be a positive integer")
    return_documents = body.get("return_documents", False)
    if not isinstance(return_documents, bool):
        raise RequestError(400, INVALID_REQUEST, "return_documents must be a boolean")
    instruction = body.get("instruction")
    if instruction is not None and (not isinstance(instruction, str) or not instruction):
        raise RequestError(400, INVALID_REQUEST, "instruction must be a string of length >= 1")
    for key in ("max_chunks_per_doc", "overlap_tokens"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise RequestError(400, INVALID_REQUEST, f"{key} must be a non-negative integer")
    return {
        "query": query,
        "documents": documents,
        "top_n": min(top_n, len(documents)),
        "return_documents": return_documents,
        "instruction": instruction,
        "max_chunks_per_doc": body.get("max_chunks_per_doc") or None,
        "overlap_tokens": body.get("overlap_tokens"),
        "extensions": {key: body[key] for key in sorted(extensions) if key in body},
    }


def parse_embeddings(body: Any, limits: Limits | None, dimensions: int | None = None) -> dict[str, Any]:
    """Validate an embeddings request. ``dimensions`` is the size this server returns: a request
    asking for another size is refused, never silently truncated or padded. ``limits`` None
    leaves out the checks of a server that serves one model (name, input limit, vector size)."""
    body = _check_fields(body, EMBED_REQUIRED, EMBED_OPTIONAL)
    if limits is not None:
        _check_model(body, limits)
    texts = body["input"]
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise RequestError(
            400, INVALID_REQUEST, "input must be a non-empty string or a non-empty list of non-empty strings"
        )
    if limits is not None and len(texts) > limits.max_documents:
        raise RequestError(413, INVALID_REQUEST, f"too many inputs: {len(texts)} > {limits.max_documents}")
    encoding = body.get("encoding_format", "float")
    if encoding not in ENCODINGS:
        raise RequestError(
            400, INVALID_REQUEST, f"encoding_format {str(encoding)[:20]!r} is not supported; use 'float' or 'base64'"
        )
    asked = body.get("dimensions")
    if (
        limits is not None
        and asked is not None
        and (isinstance(asked, bool) or not isinstance(asked, int) or asked != dimensions)
    ):
        raise RequestError(
            400,
            INVALID_REQUEST,
            f"dimensions={str(asked)[:20]} but this server returns {dimensions}-d "
            "vectors (the size the calibration was collected with)",
        )
    return {"input": texts, "encoding_format": encoding}


# ---------------------------------------------------------------------------------------------
# responses: the servers build them


def rerank_results(
    scores: Sequence[float],
    top_n: int,
    documents: Sequence[str] | None = None,
    extra: Sequence[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """``results``: sorted by score (ties by index, never in request order), cut to ``top_n``;
    each carries its ``document`` when ``documents`` is given (``return_documents``), and the
    fields of ``extra[index]`` when given (a server's extension, e.g. ``serve``'s ``interval``)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:top_n]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, SCORE: scores[i]}
        if documents is not None:
            item["document"] = {"text": documents[i]}
        if extra is not None:
            item.update(extra[i])
        results.append(item)
    return results


def rerank_body(
    results: list[dict[str, Any]], tokens: int, *, id: str | None = None, usage_at: Sequence[str] = USAGE_SHAPES
) -> dict[str, Any]:
    """A rerank answer around ``results``: a fresh ``id`` unless given, the token usage at each of
    ``usage_at`` (:data:`USAGE_SHAPES`)."""
    usage = {"input_tokens": tokens, "output_tokens": 0}
    body: dict[str, Any] = {"id": uuid.uuid4().hex if id is None else id, RESULTS: results}
    if "tokens" in usage_at:
        body["tokens"] = usage
    if "meta" in usage_at:
        body["meta"] = {"tokens": usage, "billed_units": {**usage, "search_units": 0, "classifications": 0}}
    return body


def rerank_response(
    request: dict[str, Any], scores: Sequence[float], tokens: int, extra: Sequence[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """SiliconFlow's response to a parsed request (:func:`parse_rerank`): results sorted by score,
    cut to top_n; the token usage both at the top level and under ``meta`` (SiliconFlow has
    answered with each). ``extra``: per-document fields of a server's extension, by index."""
    documents = request["documents"] if request["return_documents"] else None
    return rerank_body(rerank_results(scores, request["top_n"], documents, extra), tokens)


def embedding_items(vectors: Sequence[Sequence[float]], encoding_format: str = "float") -> list[dict[str, Any]]:
    """``data``, in input order. ``base64`` is the little-endian float32 bytes of each vector,
    base64-encoded: what the official ``openai`` client asks for unless told otherwise (it decodes
    them itself), and what SiliconFlow answers."""
    if encoding_format == "base64":
        import base64
        import struct

        encoded = [
            base64.b64encode(struct.pack(f"<{len(v)}f", *(float(x) for x in v))).decode("ascii") for v in vectors
        ]
        return [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)]
    return [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]} for i, v in enumerate(vectors)]


def embeddings_body(model: str | None, items: list[dict[str, Any]], tokens: int) -> dict[str, Any]:
    """An embeddings answer (OpenAI's shape, SiliconFlow's too) around ``data`` items."""
    return {"object": "list", DATA: items, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def embeddings_response(
    model: str, vectors: Sequence[Sequence[float]], tokens: int, encoding_format: str = "float"
) -> dict[str, Any]:
    """OpenAI/SiliconFlow's embeddings body for ``vectors`` in input order (:func:`embedding_items`)."""
    return embeddings_body(model, embedding_items(vectors, encoding_format), tokens)


def models_response(*names: str) -> dict[str, Any]:
    """``GET /v1/models``: the served model names."""
    return {"object": "list", DATA: [{"id": name, "object": "model"} for name in names]}


# ---------------------------------------------------------------------------------------------
# responses: the client reads them


class MalformedResponse(ValueError):
    """A 200 answer whose body breaks the format; the message says where (``results[3].relevance_score``)."""


def response_field(body: Any, key: str) -> Any:
    """``body[key]`` of an answer that must be a JSON object holding it."""
    if not isinstance(body, dict):
        raise MalformedResponse(f"expected a JSON object with '{key}', got {type(body).__name__}")
    if key not in body:
        raise MalformedResponse(f"response has no '{key}' field (fields: {sorted(body)[:8]})")
    return body[key]


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedResponse(f"{where}: score {value!r} is not a number")
    value = float(value)
    if not math.isfinite(value):
        raise MalformedResponse(f"{where}: score {value!r} is not finite")
    return value


def _by_index(items: Any, n: int, what: str, kind: str, value: Callable[[dict, str], Any]) -> list[Any]:
    """Place each result at its ``index``: the one check that every requested input got exactly
    one result. ``value(item, where)`` extracts (and validates) one result's payload; ``kind``
    ("result for document" / "embedding for input") is how the messages name a result."""
    if not isinstance(items, list):
        raise MalformedResponse(f"{what}: expected a list of {kind.split()[0]}s, got {type(items).__name__}")
    placed: list[Any] = [None] * n
    for pos, item in enumerate(items):
        where = f"{what}[{pos}]"
        if not isinstance(item, dict):
            raise MalformedResponse(f"{where}: expected an object, got {type(item).__name__}")
        index = item.get("index")
        if isinstance(index, bool) or not isinstance(index, int):
            raise MalformedResponse(f"{where}: missing or non-integer 'index' ({index!r})")
        if not 0 <= index < n:
            raise MalformedResponse(f"{where}: index {index} out of range for {n} input(s)")
        if placed[index] is not None:
            raise MalformedResponse(f"{where}: duplicated index {index}")
        placed[index] = value(item, where)
    missing = [i for i, v in enumerate(placed) if v is None]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise MalformedResponse(f"{what}: no {kind} index(es) {shown} of {n}")
    return placed


def scores_by_index(items: Any, n: int, score_key: str, what: str) -> list[float]:
    """Map ``[{index, <score_key>}, ...]`` back to a list of ``n`` scores in request order.

    Raises :class:`MalformedResponse` on a missing, duplicated, out-of-range or non-integer
    index, a missing or non-finite score, or a result count different from ``n``.
    """

    def score(item: dict, where: str) -> float:
        if score_key not in item:
            raise MalformedResponse(f"{where}: missing '{score_key}'")
        return _finite(item[score_key], f"{where}.{score_key}")

    return _by_index(items, n, what, "result for document", score)


def vectors_by_index(items: Any, n: int, what: str, dimensions: int | None) -> list[list[float]]:
    """Embeddings counterpart of :func:`scores_by_index` (``[{index, embedding}, ...]``)."""

    def vector(item: dict, where: str) -> list[float]:
        vec = item.get("embedding")
        if not isinstance(vec, list) or not vec:
            raise MalformedResponse(f"{where}: 'embedding' is not a non-empty list of floats")
        return [_finite(v, f"{where}.embedding") for v in vec]

    vectors = _by_index(items, n, what, "embedding for input", vector)
    widths = {len(v) for v in vectors}
    if len(widths) > 1:
        raise MalformedResponse(f"{what}: embeddings of different widths {sorted(widths)}")
    if dimensions is not None and widths != {dimensions}:
        raise MalformedResponse(f"{what}: asked for dimensions={dimensions}, got {widths.pop()}")
    return vectors


def read_rerank(body: Any, n: int) -> list[float]:
    """The scores of a rerank answer to ``n`` documents, in request order."""
    return scores_by_index(response_field(body, RESULTS), n, SCORE, RESULTS)


def read_embeddings(body: Any, n: int, dimensions: int | None) -> list[list[float]]:
    """The vectors of an embeddings answer to ``n`` inputs, in input order (``float`` encoding),
    each ``dimensions`` wide when that is given."""
    return vectors_by_index(response_field(body, DATA), n, DATA, dimensions)


@dataclass(frozen=True)
class Usage:
    """What the provider says a response cost (``None`` where it does not say)."""

    tokens: int | None = None
    search_units: int | None = None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def read_usage(body: Any) -> Usage:
    """Token usage from any of the shapes SiliconFlow answers with, which are also the other
    supported APIs' shapes.

    SiliconFlow rerank: top-level ``tokens: {input_tokens, output_tokens}`` or the Cohere-like
    ``meta: {tokens: {...}, billed_units: {...}}``; SiliconFlow embeddings, Jina, Voyage, vLLM,
    infinity: ``usage: {total_tokens | prompt_tokens}``; Cohere: ``meta.billed_units.search_units``.
    """
    if not isinstance(body, dict):
        return Usage()
    tokens: int | None = None
    search_units: int | None = None
    usage = body.get("usage")
    if isinstance(usage, dict):
        tokens = _int(usage.get("total_tokens"))
        if tokens is None:
            tokens = _int(usage.get("prompt_tokens"))
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    for holder in (body.get("tokens"), meta.get("tokens"), meta.get("billed_units")):
        if tokens is None and isinstance(holder, dict):
            inp, out = _int(holder.get("input_tokens")), _int(holder.get("output_tokens"))
            if inp is not None or out is not None:
                tokens = (inp or 0) + (out or 0)
    billed = meta.get("billed_units")
    if isinstance(billed, dict):
        search_units = _int(billed.get("search_units"))
    return Usage(tokens=tokens, search_units=search_units)
