"""Wire-format adapters: request bodies per dialect and strict index-based result mapping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.api.adapters import ADAPTERS, parse_usage, scores_by_index, vectors_by_index
from pipeline.api.errors import ResponseFormatError
from pipeline.config.api import ApiConfig, Dialect, Endpoint, TopN


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=30), st.randoms())
def test_results_in_any_order_map_back_by_index(scores, rnd):
    items = [{"index": i, "relevance_score": s} for i, s in enumerate(scores)]
    rnd.shuffle(items)
    assert scores_by_index(items, len(scores), "relevance_score", "results") == scores


@pytest.mark.parametrize(
    "items, message",
    [
        ([{"index": 0, "s": 0.1}], "no result for document index(es) 1"),
        ([{"index": 0, "s": 0.1}, {"index": 0, "s": 0.2}], "duplicated index 0"),
        ([{"index": 0, "s": 0.1}, {"index": 2, "s": 0.2}], "index 2 out of range for 2"),
        ([{"index": 0, "s": 0.1}, {"index": -1, "s": 0.2}], "out of range"),
        ([{"index": 0, "s": 0.1}, {"index": True, "s": 0.2}], "non-integer 'index'"),
        ([{"index": 0, "s": 0.1}, {"index": 1.0, "s": 0.2}], "non-integer 'index'"),
        ([{"index": 0, "s": 0.1}, {"s": 0.2}], "non-integer 'index' (None)"),
        ([{"index": 0, "s": 0.1}, {"index": 1}], "missing 's'"),
        ([{"index": 0, "s": 0.1}, {"index": 1, "s": float("nan")}], "not finite"),
        ([{"index": 0, "s": 0.1}, {"index": 1, "s": float("inf")}], "not finite"),
        ([{"index": 0, "s": 0.1}, {"index": 1, "s": "0.3"}], "not a number"),
        ([{"index": 0, "s": 0.1}, [1, 0.2]], "expected an object"),
        ({"index": 0}, "expected a list"),
    ],
)
def test_every_document_needs_exactly_one_finite_score(items, message):
    with pytest.raises(ResponseFormatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        scores_by_index(items, 2, "s", "results")


def test_embeddings_map_by_index_and_check_dimensions():
    items = [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]
    assert vectors_by_index(items, 2, "data", 2) == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ResponseFormatError, match="dimensions=3, got 2"):
        vectors_by_index(items, 2, "data", 3)
    with pytest.raises(ResponseFormatError, match=r"embeddings of different widths \[1, 2\]"):
        vectors_by_index([items[0], {"index": 0, "embedding": [1.0]}], 2, "data", None)
    with pytest.raises(ResponseFormatError, match="no embedding"):
        vectors_by_index(items[:1], 2, "data", None)


@pytest.mark.parametrize(
    "body, tokens, units",
    [
        ({"tokens": {"input_tokens": 12, "output_tokens": 0}}, 12, None),  # SiliconFlow (docs)
        ({"meta": {"tokens": {"input_tokens": 7, "output_tokens": 1}}}, 8, None),  # SiliconFlow (meta)
        ({"meta": {"billed_units": {"input_tokens": 5, "search_units": 0}}}, 5, 0),
        ({"usage": {"total_tokens": 30}}, 30, None),  # Jina / Voyage / vLLM / infinity
        ({"usage": {"prompt_tokens": 9}}, 9, None),
        ({"meta": {"billed_units": {"search_units": 1}}}, None, 1),  # Cohere
        ([{"index": 0, "score": 1.0}], None, None),  # TEI: no usage
        ({"results": []}, None, None),
    ],
)
def test_usage_shapes(body, tokens, units):
    usage = parse_usage(body)
    assert usage.tokens == tokens and usage.search_units == units


def _body(dialect, **kw):
    cfg = ApiConfig(dialect=dialect, model="m", api_key_env=None, **kw)
    return ADAPTERS[dialect].build_rerank(cfg, "q", ["a", "b"])


def test_request_bodies_per_dialect():
    assert _body(Dialect.siliconflow, instruction="judge") == {
        "model": "m",
        "query": "q",
        "documents": ["a", "b"],
        "top_n": 2,
        "return_documents": False,
        "instruction": "judge",
    }
    assert _body(Dialect.cohere) == {"model": "m", "query": "q", "documents": ["a", "b"], "top_n": 2}
    assert _body(Dialect.voyage)["top_k"] == 2 and "top_n" not in _body(Dialect.voyage)
    assert _body(Dialect.tei, raw_scores=True) == {
        "query": "q",
        "texts": ["a", "b"],
        "raw_scores": True,
        "return_text": False,
    }
    assert _body(Dialect.vllm_score) == {"model": "m", "text_1": "q", "text_2": ["a", "b"]}
    assert _body(Dialect.infinity, raw_scores=True)["raw_scores"] is True
    assert "top_n" not in _body(Dialect.jina, top_n=TopN.omit)
    assert "top_n" not in _body(Dialect.siliconflow, top_n=TopN.omit)


def test_default_paths():
    paths = {d: ADAPTERS[d].path(ApiConfig(dialect=d)) for d in Dialect}
    assert paths[Dialect.siliconflow] == "/rerank"
    assert paths[Dialect.cohere] == "/v2/rerank"
    assert paths[Dialect.vllm] == "/rerank"  # canonical; /v1/rerank is a deprecated alias
    assert paths[Dialect.vllm_score] == "/score"
    assert ADAPTERS[Dialect.siliconflow].path(ApiConfig(endpoint=Endpoint.embeddings)) == "/embeddings"
    assert ADAPTERS[Dialect.tei].path(ApiConfig(dialect=Dialect.tei, path="/custom")) == "/custom"
    with pytest.raises(ValueError, match="no embeddings endpoint"):
        ADAPTERS[Dialect.cohere].path(ApiConfig(dialect=Dialect.cohere, endpoint=Endpoint.embeddings))


def test_finite_check_uses_math():
    assert math.isfinite(scores_by_index([{"index": 0, "s": 1}], 1, "s", "r")[0])


@pytest.mark.parametrize(
    "dialect, body",
    [
        (Dialect.cohere, {"model": "m", "query": "q", "documents": ["a", "b"], "top_n": 2}),  # v2: no such field
        (Dialect.jina, {"model": "m", "query": "q", "documents": ["a", "b"], "top_n": 2, "return_documents": False}),
        (Dialect.voyage, {"model": "m", "query": "q", "documents": ["a", "b"], "top_k": 2, "return_documents": False}),
        (Dialect.vllm, {"model": "m", "query": "q", "documents": ["a", "b"], "top_n": 2}),
        (
            Dialect.infinity,
            {
                "model": "m",
                "query": "q",
                "documents": ["a", "b"],
                "top_n": 2,
                "return_documents": False,
                "raw_scores": False,
            },
        ),
    ],
)
def test_each_cohere_like_dialect_sends_exactly_its_own_body(dialect, body):
    """The Cohere-like bodies (SiliconFlow's own is pipeline.wire's): ``return_documents: false``
    where the dialect has the field (documents echoed back would only cost bandwidth), never where
    it has not (Cohere v2 and vLLM refuse or ignore unknown fields)."""
    cfg = ApiConfig(dialect=dialect, model="m", top_n=TopN.all, raw_scores=False)
    sent = ADAPTERS[dialect].build_rerank(cfg, "q", ["a", "b"])
    assert sent == body and [type(v) for v in sent.values()] == [type(v) for v in body.values()]


@pytest.mark.parametrize(
    "dialect, answer",
    [
        (Dialect.cohere, {"results": [{"index": 1, "relevance_score": 0.2}, {"index": 0, "relevance_score": 0.9}]}),
        (Dialect.voyage, {"data": [{"index": 1, "relevance_score": 0.2}, {"index": 0, "relevance_score": 0.9}]}),
        (Dialect.vllm_score, {"data": [{"index": 1, "score": 0.2}, {"index": 0, "score": 0.9}]}),
    ],
)
def test_each_dialect_reads_its_own_results_key_and_names_it_when_wrong(dialect, answer):
    read = ADAPTERS[dialect].read_scores
    assert read(answer, 2) == [0.9, 0.2]
    key = next(iter(answer))
    broken = {key: answer[key][:1]}
    with pytest.raises(Exception, match=r"results.*no result for document index\(es\) 0"):
        read(broken, 2)


def test_the_adapter_names_what_it_was_reading_in_its_error():
    with pytest.raises(ResponseFormatError, match=r"^embeddings-ish:|embeddings-ish\b"):
        scores_by_index([{"index": 0, "relevance_score": 0.1}], 2, "relevance_score", "embeddings-ish")
