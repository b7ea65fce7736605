"""What a malformed response is reported as: the client puts these messages in front of the user
(and retries on them), so each one must say where in the body it went wrong -- ``results[3].
relevance_score``, ``data[0]`` -- and what was there. Also the request bodies not pinned by
test_adapters.py, and the usage shapes that add input and output tokens."""

from __future__ import annotations

import pytest

from pipeline.api.adapters import ADAPTERS, parse_usage, vectors_by_index
from pipeline.api.errors import ResponseFormatError
from pipeline.config.api import ApiConfig, Dialect, Endpoint

SILICONFLOW = ADAPTERS[Dialect.siliconflow]  # results[].relevance_score, data[].embedding
TEI = ADAPTERS[Dialect.tei]  # a bare array of {index, score}


def message(call) -> str:
    with pytest.raises(ResponseFormatError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize(
    "body, want",
    [
        ([{"index": 0}], "expected a JSON object with 'results', got list"),
        ("oops", "expected a JSON object with 'results', got str"),
        ({"data": []}, "response has no 'results' field (fields: ['data'])"),
        (
            {k: 0 for k in "jihgfedcba"},  # the first eight field names, sorted
            "response has no 'results' field (fields: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'])",
        ),
        ({"results": {"index": 0}}, "results: expected a list of results, got dict"),
        ({"results": [{"index": 0, "relevance_score": 1.0}, [1, 0.5]]}, "results[1]: expected an object, got list"),
        ({"results": [{"index": 0, "relevance_score": 1.0}, None]}, "results[1]: expected an object, got NoneType"),
        (
            {"results": [{"index": 1, "relevance_score": "high"}, {"index": 0, "relevance_score": 1.0}]},
            "results[0].relevance_score: score 'high' is not a number",
        ),
        (
            {"results": [{"index": 0, "relevance_score": 1.0}, {"index": 1, "relevance_score": float("nan")}]},
            "results[1].relevance_score: score nan is not finite",
        ),
        ({"results": [{"index": 0, "relevance_score": 1.0}, {"index": 1}]}, "results[1]: missing 'relevance_score'"),
        (
            {"results": [{"index": 0, "relevance_score": 1.0}, {"index": 0, "relevance_score": 1.0}]},
            "results[1]: duplicated index 0",
        ),
        ({"results": [{"index": 1, "relevance_score": 1.0}]}, "results: no result for document index(es) 0 of 2"),
    ],
)
def test_rerank_response_errors_say_where(body, want):
    assert message(lambda: SILICONFLOW.parse_rerank(body, 2)) == want


def test_a_bare_array_dialect_says_it_wanted_one():
    assert message(lambda: TEI.parse_rerank({"results": []}, 1)) == "expected a bare JSON array of results, got dict"
    assert (
        message(lambda: TEI.parse_rerank([{"index": 0, "score": "x"}], 1))
        == "results[0].score: score 'x' is not a number"
    )


@pytest.mark.parametrize(
    "dialect, key, score_key",
    [
        (Dialect.cohere, "results", "relevance_score"),
        (Dialect.jina, "results", "relevance_score"),
        (Dialect.vllm, "results", "relevance_score"),
        (Dialect.infinity, "results", "relevance_score"),
        (Dialect.voyage, "data", "relevance_score"),
        (Dialect.vllm_score, "data", "score"),
    ],
)
def test_every_dialect_names_the_result_that_broke(dialect, key, score_key):
    """The results list is called ``results`` in every message, wherever the dialect keeps it."""
    adapter = ADAPTERS[dialect]
    assert message(lambda: adapter.parse_rerank({key: [{"index": 0}]}, 1)) == f"results[0]: missing '{score_key}'"
    assert adapter.parse_rerank({key: [{"index": 1, score_key: 0.5}, {"index": 0, score_key: 2}]}, 2) == [2.0, 0.5]


@pytest.mark.parametrize(
    "n_missing, shown",
    [
        (1, "0"),
        (10, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"),  # up to ten are listed in full
        (11, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ..."),  # more are cut after ten
        (25, "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ..."),
    ],
)
def test_missing_results_are_listed_up_to_ten(n_missing, shown):
    n = n_missing + 1
    body = {"results": [{"index": n - 1, "relevance_score": 0.5}]}  # only the last document came back
    want = f"results: no result for document index(es) {shown} of {n}"
    assert message(lambda: SILICONFLOW.parse_rerank(body, n)) == want


@pytest.mark.parametrize(
    "body, want",
    [
        ([], "expected a JSON object with 'data', got list"),
        ({"results": []}, "response has no 'data' field (fields: ['results'])"),
        (
            {k: 0 for k in "jihgfedcba"},
            "response has no 'data' field (fields: ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'])",
        ),
        ({"data": {"index": 0}}, "data: expected a list of embeddings, got dict"),
        ({"data": [{"index": 0, "embedding": []}]}, "data[0]: 'embedding' is not a non-empty list of floats"),
        ({"data": [{"index": 0, "embedding": None}]}, "data[0]: 'embedding' is not a non-empty list of floats"),
        ({"data": [{"index": 0, "embedding": "0.1,0.2"}]}, "data[0]: 'embedding' is not a non-empty list of floats"),
        ({"data": [{"index": 0, "embedding": [0.1, "x"]}]}, "data[0].embedding: score 'x' is not a number"),
        ({"data": [{"index": 0, "embedding": [0.1, float("inf")]}]}, "data[0].embedding: score inf is not finite"),
        ({"data": [{"index": 0, "embedding": [0.1, 0.2]}]}, "data: asked for dimensions=3, got 2"),
        ({"data": [{"index": 1, "embedding": [0.1, 0.2, 0.3]}]}, "data: no embedding for input index(es) 0 of 2"),
    ],
)
def test_embedding_response_errors_say_where(body, want):
    n = 2 if "no embedding" in want else 1
    assert message(lambda: SILICONFLOW.parse_embeddings(body, n, 3)) == want


def test_parse_embeddings_returns_vectors_in_input_order():
    body = {"data": [{"index": 1, "embedding": [0.0, 1.0]}, {"index": 0, "embedding": [1.0, 0.0]}]}
    assert SILICONFLOW.parse_embeddings(body, 2, None) == [[1.0, 0.0], [0.0, 1.0]]
    assert SILICONFLOW.parse_embeddings(body, 2, 2) == [[1.0, 0.0], [0.0, 1.0]]


def test_vectors_by_index_names_its_caller():
    assert (
        message(lambda: vectors_by_index("x", 1, "embeddings", None))
        == "embeddings: expected a list of embeddings, got str"
    )


@pytest.mark.parametrize(
    "tokens, want",
    [
        ({"input_tokens": 7}, 7),
        ({"output_tokens": 3}, 3),  # a missing side counts as none, not as one
        ({"input_tokens": 0, "output_tokens": 5}, 5),
        ({"input_tokens": 4, "output_tokens": 0}, 4),
        ({"input_tokens": 4, "output_tokens": 2}, 6),
    ],
)
def test_input_and_output_tokens_add_up(tokens, want):
    assert parse_usage({"tokens": tokens}).tokens == want


def _body(dialect, **kw):
    cfg = ApiConfig(dialect=dialect, model="m", api_key_env=None, **kw)
    return ADAPTERS[dialect].build_rerank(cfg, "q", ["a", "b"])


def test_vllm_rerank_body_has_no_return_documents_field():
    assert _body(Dialect.vllm, server_template=True) == {
        "model": "m",
        "query": "q",
        "documents": ["a", "b"],
        "top_n": 2,
    }


@pytest.mark.parametrize(
    "dialect", [Dialect.siliconflow, Dialect.tei, Dialect.vllm, Dialect.vllm_score, Dialect.infinity]
)
def test_openai_style_embedding_bodies_ask_for_floats(dialect):
    cfg = ApiConfig(dialect=dialect, model="m", api_key_env=None, endpoint=Endpoint.embeddings)
    want = {"model": "m", "input": ["a", "b"], "encoding_format": "float"}
    assert ADAPTERS[dialect].build_embed(cfg, ["a", "b"]) == want
    with_dims = ApiConfig(dialect=dialect, model="m", api_key_env=None, endpoint=Endpoint.embeddings, dimensions=64)
    assert ADAPTERS[dialect].build_embed(with_dims, ["a"])["dimensions"] == 64
