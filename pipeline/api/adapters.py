"""Wire formats: one small adapter per dialect, behind the one client.

An adapter knows three things about its API: the default path of each endpoint, how to build a
request body from (query, documents), and where the scores sit in the response. Everything else
(HTTP, auth, retries, limits, validation of the result set) is shared, so a new dialect is a few
lines in :data:`ADAPTERS`.

SiliconFlow's format is written once, in :mod:`pipeline.wire` (its servers and the test fake use
it too); its adapter here only maps the ``api`` config onto it. So is the check every dialect's
answer passes: results are mapped back to documents by their ``index`` field, never by position
(rerank APIs return results sorted by score), and every requested document must get exactly one
finite score (:func:`scores_by_index`); anything else is a
:class:`~pipeline.api.errors.ResponseFormatError`, which the client retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from pipeline import wire
from pipeline.api.errors import ResponseFormatError
from pipeline.config.api import ApiConfig, Dialect, Endpoint, TopN
from pipeline.wire import Usage

__all__ = ["ADAPTERS", "Adapter", "Usage", "adapter_for", "parse_usage", "scores_by_index", "vectors_by_index"]


# ---------------------------------------------------------------------------------------------
# response validation shared by every dialect (pipeline.wire), raising the client's error


@contextmanager
def _format_errors() -> Iterator[None]:
    """:class:`pipeline.wire.MalformedResponse` as the client's :class:`ResponseFormatError`."""
    try:
        yield
    except wire.MalformedResponse as exc:
        raise ResponseFormatError(str(exc)) from None


def scores_by_index(items: Any, n: int, score_key: str, what: str) -> list[float]:
    """Map ``[{index, <score_key>}, ...]`` back to a list of ``n`` scores in request order
    (:func:`pipeline.wire.scores_by_index`).

    Raises :class:`ResponseFormatError` on a missing, duplicated, out-of-range or non-integer
    index, a missing or non-finite score, or a result count different from ``n``.
    """
    with _format_errors():
        return wire.scores_by_index(items, n, score_key, what)


def vectors_by_index(items: Any, n: int, what: str, dimensions: int | None) -> list[list[float]]:
    """Embeddings counterpart of :func:`scores_by_index` (``[{index, embedding}, ...]``)."""
    with _format_errors():
        return wire.vectors_by_index(items, n, what, dimensions)


def parse_usage(body: Any) -> Usage:
    """Token usage from any of the shapes the supported APIs use (:func:`pipeline.wire.read_usage`)."""
    return wire.read_usage(body)


# ---------------------------------------------------------------------------------------------
# per-dialect request bodies and result locations


def _rerank_common(
    cfg: ApiConfig, query: str, documents: Sequence[str], *, top_key: str = "top_n", return_documents: bool = True
) -> dict[str, Any]:
    # the Cohere-like rerank body most dialects share (SiliconFlow's own is pipeline.wire's)
    body: dict[str, Any] = {"model": cfg.model, "query": query, "documents": list(documents)}
    if cfg.top_n is TopN.all:
        body[top_key] = len(documents)
    if return_documents:
        body["return_documents"] = False
    return body


def _siliconflow_rerank(cfg: ApiConfig, query: str, documents: Sequence[str]) -> dict[str, Any]:
    top_n = len(documents) if cfg.top_n is TopN.all else None
    return wire.rerank_request(
        cfg.model, query, documents, top_n=top_n, return_documents=False, instruction=cfg.instruction
    )


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
    # OpenAI's embeddings body: SiliconFlow's (pipeline.wire), also spoken by TEI, vLLM and infinity
    return wire.embeddings_request(cfg.model, texts, dimensions=cfg.dimensions)


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


def _scores_in(key: str, score_key: str, body: Any, n: int) -> list[float]:
    """Reader of an answer ``{<key>: [{index, <score_key>}, ...]}``; each dialect binds its keys
    with :func:`functools.partial` (a function, not a closure made at import: the binding is
    looked up at call time, which is also what lets mutation testing reach it)."""
    return wire.scores_by_index(wire.response_field(body, key), n, score_key, "results")


def _bare_scores(body: Any, n: int) -> list[float]:
    """Reader of TEI's answer, a bare array of ``{index, score}``."""
    if not isinstance(body, list):
        raise wire.MalformedResponse(f"expected a bare JSON array of results, got {type(body).__name__}")
    return wire.scores_by_index(body, n, "score", "results")


@dataclass(frozen=True)
class Adapter:
    """How one dialect spells a rerank and an embeddings call."""

    dialect: Dialect
    rerank_path: str
    build_rerank: Callable[[ApiConfig, str, Sequence[str]], dict[str, Any]]
    #: (answer, number of documents) -> scores in request order; raises pipeline.wire.MalformedResponse
    read_scores: Callable[[Any, int], list[float]]
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
        with _format_errors():
            return self.read_scores(body, n)

    def parse_embeddings(self, body: Any, n: int, dimensions: int | None) -> list[list[float]]:
        # every dialect here answers embeddings in OpenAI's ``data`` shape, SiliconFlow's own
        with _format_errors():
            return wire.read_embeddings(body, n, dimensions)


_RESULTS = partial(_scores_in, "results", "relevance_score")

ADAPTERS: dict[Dialect, Adapter] = {
    Dialect.siliconflow: Adapter(
        Dialect.siliconflow,
        wire.RERANK_PATH,
        _siliconflow_rerank,
        wire.read_rerank,
        instruction_field=True,
        embeddings_path=wire.EMBEDDINGS_PATH,
        build_embed=_openai_embed,
    ),
    Dialect.cohere: Adapter(Dialect.cohere, "/v2/rerank", _cohere_rerank, _RESULTS),
    Dialect.jina: Adapter(
        Dialect.jina, "/rerank", _jina_rerank, _RESULTS, embeddings_path="/embeddings", build_embed=_jina_embed
    ),
    Dialect.voyage: Adapter(
        Dialect.voyage,
        "/rerank",
        _voyage_rerank,
        partial(_scores_in, "data", "relevance_score"),
        embeddings_path="/embeddings",
        build_embed=_voyage_embed,
    ),
    Dialect.tei: Adapter(
        Dialect.tei,
        "/rerank",
        _tei_rerank,
        _bare_scores,
        embeddings_path="/v1/embeddings",
        build_embed=_openai_embed,
        usage_header="x-compute-tokens",
    ),
    # vLLM: /rerank and /score are canonical; /v1/rerank and /v1/score are deprecated aliases
    Dialect.vllm: Adapter(
        Dialect.vllm, "/rerank", _vllm_rerank, _RESULTS, embeddings_path="/v1/embeddings", build_embed=_openai_embed
    ),
    Dialect.vllm_score: Adapter(
        Dialect.vllm_score,
        "/score",
        _vllm_score,
        partial(_scores_in, "data", "score"),
        embeddings_path="/v1/embeddings",
        build_embed=_openai_embed,
    ),
    Dialect.infinity: Adapter(
        Dialect.infinity,
        "/rerank",
        _infinity_rerank,
        _RESULTS,
        embeddings_path="/embeddings",
        build_embed=_openai_embed,
    ),
}


def adapter_for(cfg: ApiConfig) -> Adapter:
    return ADAPTERS[cfg.dialect]
