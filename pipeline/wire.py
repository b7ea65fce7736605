"""SiliconFlow's wire format on the serving side: request validation, response bodies, errors.

Two servers speak it: the demo's loopback reference API (``pipeline.reference.server``) and
``python -m pipeline serve`` (the local model with its calibrator, a drop-in for the hosted API).
Both validate requests here, so a client that works against one works against the other and
against SiliconFlow itself. Standard library only.

* ``POST /v1/rerank``: request ``model``, ``query``, ``documents``, ``top_n``,
  ``return_documents``, ``instruction`` (+ ``max_chunks_per_doc``, ``overlap_tokens``); response
  ``id``, ``results`` sorted by score with ``index`` and ``relevance_score``, token usage.
* ``POST /v1/embeddings``: request ``model``, ``input`` (a string or a list of strings),
  ``encoding_format`` (``float`` or ``base64``), ``dimensions``; response OpenAI-style ``data`` items with
  ``index`` and ``embedding``, ``usage``.
* errors: ``{"code": int, "message": str, "data": null}`` with a 4xx/5xx status.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

#: request fields SiliconFlow's rerank endpoint accepts
REQUIRED_FIELDS = {"model", "query", "documents"}
OPTIONAL_FIELDS = {"top_n", "return_documents", "instruction", "max_chunks_per_doc", "overlap_tokens"}
EMBED_REQUIRED = {"model", "input"}
EMBED_OPTIONAL = {"encoding_format", "dimensions", "user"}
#: SiliconFlow's embeddings `encoding_format` values (https://api-docs.siliconflow.cn/docs/api/embeddings-post)
ENCODINGS = ("float", "base64")

#: the rerankers SiliconFlow documents `max_chunks_per_doc` / `overlap_tokens` for (a long document
#: split into chunks, scored by its best one); other models accept and ignore the fields
#: (https://docs.siliconflow.cn/cn/api-reference/rerank/create-rerank)
CHUNKING_MODELS = ("BAAI/bge-reranker-v2-m3", "Pro/BAAI/bge-reranker-v2-m3", "netease-youdao/bce-reranker-base_v1")

#: SiliconFlow's error codes
INVALID_REQUEST = 20015
UNKNOWN_MODEL = 20012


class Limits(Protocol):
    """What a server checks a request against (``ReferenceConfig`` and ``ServeConfig`` both fit)."""

    served_model: str
    max_documents: int
    max_text_chars: int


class RequestError(Exception):
    """A request the API answers with a 4xx (or 5xx): ``status``, SiliconFlow-style ``code``, message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def parse_json(raw: bytes) -> Any:
    """A request body as JSON, or the API's 400."""
    import json

    try:
        return json.loads(raw)
    except ValueError:
        raise RequestError(400, INVALID_REQUEST, "request body is not valid JSON") from None


def error_body(exc: RequestError) -> dict[str, Any]:
    return {"code": exc.code, "message": str(exc), "data": None}


def _check_model(body: dict[str, Any], limits: Limits) -> None:
    if body["model"] != limits.served_model:
        raise RequestError(400, UNKNOWN_MODEL, f"Model does not exist: {str(body['model'])[:100]!r} "
                                               f"(this server serves {limits.served_model!r})")


def _check_fields(body: Any, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RequestError(400, INVALID_REQUEST, "request body must be a JSON object")
    missing = sorted(required - set(body))
    unknown = sorted(set(body) - required - optional)
    if missing or unknown:
        problems = ([f"missing {missing}"] if missing else []) + ([f"unknown field(s) {unknown}"] if unknown else [])
        raise RequestError(400, INVALID_REQUEST, f"invalid request: {'; '.join(problems)}; fields: "
                                                 f"{', '.join(sorted(required))} (required), {', '.join(sorted(optional))}")
    return body


def parse_rerank(body: Any, limits: Limits) -> dict[str, Any]:
    """Validate a rerank request as SiliconFlow does; returns the fields with defaults filled in."""
    body = _check_fields(body, REQUIRED_FIELDS, OPTIONAL_FIELDS)
    _check_model(body, limits)
    query, documents = body["query"], body["documents"]
    if not isinstance(query, str) or not query.strip():
        raise RequestError(400, INVALID_REQUEST, "query must be a non-empty string")
    if not isinstance(documents, list) or not documents or not all(isinstance(d, str) for d in documents):
        raise RequestError(400, INVALID_REQUEST, "documents must be a non-empty list of strings")
    if len(documents) > limits.max_documents:
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
    return {"query": query, "documents": documents, "top_n": min(top_n, len(documents)),
            "return_documents": return_documents, "instruction": instruction,
            "max_chunks_per_doc": body.get("max_chunks_per_doc") or None, "overlap_tokens": body.get("overlap_tokens")}


def rerank_response(request: dict[str, Any], scores: Sequence[float], tokens: int) -> dict[str, Any]:
    """SiliconFlow's response: results sorted by score (not in request order), cut to top_n; the
    token usage both at the top level and under ``meta`` (SiliconFlow has answered with each)."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[: request["top_n"]]
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
        if request["return_documents"]:
            item["document"] = {"text": request["documents"][i]}
        results.append(item)
    usage = {"input_tokens": tokens, "output_tokens": 0}
    return {"id": uuid.uuid4().hex, "results": results, "tokens": usage,
            "meta": {"tokens": usage, "billed_units": {**usage, "search_units": 0, "classifications": 0}}}


def parse_embeddings(body: Any, limits: Limits, dimensions: int | None) -> dict[str, Any]:
    """Validate an embeddings request. ``dimensions`` is the size this server returns: a request
    asking for another size is refused, never silently truncated or padded."""
    body = _check_fields(body, EMBED_REQUIRED, EMBED_OPTIONAL)
    _check_model(body, limits)
    texts = body["input"]
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise RequestError(400, INVALID_REQUEST, "input must be a non-empty string or a non-empty list of non-empty strings")
    if len(texts) > limits.max_documents:
        raise RequestError(413, INVALID_REQUEST, f"too many inputs: {len(texts)} > {limits.max_documents}")
    encoding = body.get("encoding_format", "float")
    if encoding not in ENCODINGS:
        raise RequestError(400, INVALID_REQUEST, f"encoding_format {str(encoding)[:20]!r} is not supported; use "
                                                 "'float' or 'base64'")
    asked = body.get("dimensions")
    if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int) or asked != dimensions):
        raise RequestError(400, INVALID_REQUEST, f"dimensions={str(asked)[:20]} but this server returns {dimensions}-d "
                                                 "vectors (the size the calibration was collected with)")
    return {"input": texts, "encoding_format": encoding}


def embeddings_response(model: str, vectors: Sequence[Sequence[float]], tokens: int,
                        encoding_format: str = "float") -> dict[str, Any]:
    """OpenAI/SiliconFlow's embeddings body. ``base64`` is the little-endian float32 bytes of each
    vector, base64-encoded: what the official ``openai`` client asks for unless told otherwise
    (it decodes them itself), and what SiliconFlow answers."""
    if encoding_format == "base64":
        import base64
        import struct

        encoded = [base64.b64encode(struct.pack(f"<{len(v)}f", *(float(x) for x in v))).decode("ascii") for v in vectors]
        data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(encoded)]
    else:
        data = [{"object": "embedding", "index": i, "embedding": [float(x) for x in v]} for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
