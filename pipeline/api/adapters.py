"""Wire formats: one small adapter per dialect, behind the one client.

An adapter knows three things about its API: the default path of each endpoint, how to build a
request body from (query, documents), and where the scores sit in the response. Everything else
(HTTP, auth, retries, limits, validation of the result set) is shared, so a new dialect is a few
lines in :data:`ADAPTERS`.

Results are always mapped back to documents by their ``index`` field, never by position: rerank
APIs return results sorted by score. :func:`scores_by_index` is the one place that checks that
every requested document got exactly one finite score; anything else is a
:class:`~pipeline.api.errors.ResponseFormatError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.config.api import ApiConfig, Dialect, Endpoint, TopN
from pipeline.api.errors import ResponseFormatError


@dataclass(frozen=True)
class Usage:
    """What the provider says a response cost (``None`` where it does not say)."""

    tokens: int | None = None
    search_units: int | None = None


# ---------------------------------------------------------------------------------------------
# response validation shared by every dialect


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ResponseFormatError(f"{where}: score {value!r} is not a number")
    value = float(value)
    if not math.isfinite(value):
        raise ResponseFormatError(f"{where}: score {value!r} is not finite")
    return value


def _by_index(items: Any, n: int, what: str, kind: str, value: Callable[[dict, str], Any]) -> list[Any]:
    # kind: "result for document" / "embedding for input", as the messages say it
    """Place each result at its ``index``: the one check that every requested input got exactly
    one result. ``value(item, where)`` extracts (and validates) one result's payload."""
    if not isinstance(items, list):
        raise ResponseFormatError(f"{what}: expected a list of {kind.split()[0]}s, got {type(items).__name__}")
    placed: list[Any] = [None] * n
    for pos, item in enumerate(items):
        where = f"{what}[{pos}]"
        if not isinstance(item, dict):
            raise ResponseFormatError(f"{where}: expected an object, got {type(item).__name__}")
        index = item.get("index")
        if isinstance(index, bool) or not isinstance(index, int):
            raise ResponseFormatError(f"{where}: missing or non-integer 'index' ({index!r})")
        if not 0 <= index < n:
            raise ResponseFormatError(f"{where}: index {index} out of range for {n} input(s)")
        if placed[index] is not None:
            raise ResponseFormatError(f"{where}: duplicated index {index}")
        placed[index] = value(item, where)
    missing = [i for i, v in enumerate(placed) if v is None]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise ResponseFormatError(f"{what}: no {kind} index(es) {shown} of {n}")
    return placed


def scores_by_index(items: Any, n: int, score_key: str, what: str) -> list[float]:
    """Map ``[{index, <score_key>}, ...]`` back to a list of ``n`` scores in request order.

    Raises :class:`ResponseFormatError` on a missing, duplicated, out-of-range or non-integer
    index, a missing or non-finite score, or a result count different from ``n``.
    """

    def score(item: dict, where: str) -> float:
        if score_key not in item:
            raise ResponseFormatError(f"{where}: missing '{score_key}'")
        return _finite(item[score_key], f"{where}.{score_key}")

    return _by_index(items, n, what, "result for document", score)


def vectors_by_index(items: Any, n: int, what: str, dimensions: int | None) -> list[list[float]]:
    """Embeddings counterpart of :func:`scores_by_index` (``[{index, embedding}, ...]``)."""

    def vector(item: dict, where: str) -> list[float]:
        vec = item.get("embedding")
        if not isinstance(vec, list) or not vec:
            raise ResponseFormatError(f"{where}: 'embedding' is not a non-empty list of floats")
        return [_finite(v, f"{where}.embedding") for v in vec]

    vectors = _by_index(items, n, what, "embedding for input", vector)
    widths = {len(v) for v in vectors}
    if len(widths) > 1:
        raise ResponseFormatError(f"{what}: embeddings of different widths {sorted(widths)}")
    if dimensions is not None and widths != {dimensions}:
        raise ResponseFormatError(f"{what}: asked for dimensions={dimensions}, got {widths.pop()}")
    return vectors


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def parse_usage(body: Any) -> Usage:
    """Token usage from any of the shapes the supported APIs use.

    SiliconFlow: top-level ``tokens: {input_tokens, output_tokens}`` or the Cohere-like
    ``meta: {tokens: {...}, billed_units: {...}}``; Jina / Voyage / vLLM / infinity / OpenAI
    embeddings: ``usage: {total_tokens | prompt_tokens}``; Cohere: ``meta.billed_units.search_units``.
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


# ---------------------------------------------------------------------------------------------
# per-dialect request bodies and result locations


def _rerank_common(cfg: ApiConfig, query: str, documents: Sequence[str], *, top_key: str = "top_n",
                   return_documents: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {"model": cfg.model, "query": query, "documents": list(documents)}
    if cfg.top_n is TopN.all:
        body[top_key] = len(documents)
    if return_documents:
        body["return_documents"] = False
    return body


def _siliconflow_rerank(cfg: ApiConfig, query: str, documents: Sequence[str]) -> dict[str, Any]:
    body = _rerank_common(cfg, query, documents)
    if cfg.instruction is not None:
        body["instruction"] = cfg.instruction
    return body


def _cohere_rerank(cfg: ApiConfig, query: str, documents: Sequence[str]) -> dict[str, Any]:
    return _rerank_common(cfg, query, documents, return_documents=False)  # v2 has no such field


def _jina_rerank(cfg: ApiConfig, query: str, documents: Sequence[str]) -> dict[str, Any]:
    return _rerank_common(cfg, query, documents)


def _voyage_rerank(cfg: ApiConfig, query: str, documents: Sequence[str]) -> dict[str, Any]:
    return _rerank_common(cfg, query, documents, top_key="top_k")


def _tei_rerank(cfg: ApiConfig, query: str, documents: Sequence[str]) -> dict[str, Any]:
    return {"query": query, "texts": list(documents), "raw_scores": cfg.raw_scores, "return_text": False}


def _vllm_rerank(cfg: ApiConfig, query: str, documents: Sequence[str]) -> dict[str, Any]:
    return _rerank_common(cfg, query, documents, return_documents=False)


def _vllm_score(cfg: ApiConfig, query: str, documents: Sequence[str]) -> dict[str, Any]:
    return {"model": cfg.model, "text_1": query, "text_2": list(documents)}


def _infinity_rerank(cfg: ApiConfig, query: str, documents: Sequence[str]) -> dict[str, Any]:
    body = _rerank_common(cfg, query, documents)
    body["raw_scores"] = cfg.raw_scores
    return body


def _openai_embed(cfg: ApiConfig, texts: Sequence[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": cfg.model, "input": list(texts), "encoding_format": "float"}
    if cfg.dimensions is not None:
        body["dimensions"] = cfg.dimensions
    return body


def _jina_embed(cfg: ApiConfig, texts: Sequence[str]) -> dict[str, Any]:
    # Jina's own schema: `embedding_type` (not OpenAI's `encoding_format`, which it rejects
    # with 400 "extra fields not permitted"); https://api.jina.ai/openapi.json TextEmbeddingInput
    body: dict[str, Any] = {"model": cfg.model, "input": list(texts), "embedding_type": "float"}
    if cfg.dimensions is not None:
        body["dimensions"] = cfg.dimensions
    return body


def _voyage_embed(cfg: ApiConfig, texts: Sequence[str]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": cfg.model, "input": list(texts)}
    if cfg.dimensions is not None:
        body["output_dimension"] = cfg.dimensions
    return body


def _results(key: str) -> Callable[[Any], Any]:
    def locate(body: Any) -> Any:
        if not isinstance(body, dict):
            raise ResponseFormatError(f"expected a JSON object with '{key}', got {type(body).__name__}")
        if key not in body:
            raise ResponseFormatError(f"response has no '{key}' field (fields: {sorted(body)[:8]})")
        return body[key]

    return locate


def _bare_list(body: Any) -> Any:
    if not isinstance(body, list):
        raise ResponseFormatError(f"expected a bare JSON array of results, got {type(body).__name__}")
    return body


@dataclass(frozen=True)
class Adapter:
    """How one dialect spells a rerank and an embeddings call."""

    dialect: Dialect
    rerank_path: str
    build_rerank: Callable[[ApiConfig, str, Sequence[str]], dict[str, Any]]
    locate_results: Callable[[Any], Any]
    score_key: str
    #: the dialect carries ``api.instruction`` in its own body field (else only via templates)
    instruction_field: bool = False
    embeddings_path: str | None = None
    build_embed: Callable[[ApiConfig, Sequence[str]], dict[str, Any]] | None = None
    #: response header carrying the tokens used, for servers that report none in the body (TEI)
    usage_header: str | None = None

    def path(self, cfg: ApiConfig) -> str:
        if cfg.path:
            return cfg.path
        if cfg.endpoint is Endpoint.embeddings:
            if self.embeddings_path is None:
                raise ValueError(f"api.dialect={self.dialect.value} has no embeddings endpoint in this client")
            return self.embeddings_path
        return self.rerank_path

    def parse_rerank(self, body: Any, n: int) -> list[float]:
        return scores_by_index(self.locate_results(body), n, self.score_key, "results")

    def parse_embeddings(self, body: Any, n: int, dimensions: int | None) -> list[list[float]]:
        return vectors_by_index(_results("data")(body), n, "data", dimensions)


ADAPTERS: dict[Dialect, Adapter] = {
    Dialect.siliconflow: Adapter(Dialect.siliconflow, "/rerank", _siliconflow_rerank, _results("results"),
                                 "relevance_score", instruction_field=True,
                                 embeddings_path="/embeddings", build_embed=_openai_embed),
    Dialect.cohere: Adapter(Dialect.cohere, "/v2/rerank", _cohere_rerank, _results("results"), "relevance_score"),
    Dialect.jina: Adapter(Dialect.jina, "/rerank", _jina_rerank, _results("results"), "relevance_score",
                          embeddings_path="/embeddings", build_embed=_jina_embed),
    Dialect.voyage: Adapter(Dialect.voyage, "/rerank", _voyage_rerank, _results("data"), "relevance_score",
                            embeddings_path="/embeddings", build_embed=_voyage_embed),
    Dialect.tei: Adapter(Dialect.tei, "/rerank", _tei_rerank, _bare_list, "score",
                         embeddings_path="/v1/embeddings", build_embed=_openai_embed, usage_header="x-compute-tokens"),
    # vLLM: /rerank and /score are canonical; /v1/rerank and /v1/score are deprecated aliases
    Dialect.vllm: Adapter(Dialect.vllm, "/rerank", _vllm_rerank, _results("results"), "relevance_score",
                          embeddings_path="/v1/embeddings", build_embed=_openai_embed),
    Dialect.vllm_score: Adapter(Dialect.vllm_score, "/score", _vllm_score, _results("data"), "score",
                                embeddings_path="/v1/embeddings", build_embed=_openai_embed),
    Dialect.infinity: Adapter(Dialect.infinity, "/rerank", _infinity_rerank, _results("results"), "relevance_score",
                              embeddings_path="/embeddings", build_embed=_openai_embed),
}


def adapter_for(cfg: ApiConfig) -> Adapter:
    return ADAPTERS[cfg.dialect]
