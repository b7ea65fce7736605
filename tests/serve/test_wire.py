"""SiliconFlow's wire format on its own (``pipeline.wire``): what both servers accept, what they
refuse (status, SiliconFlow's code, the message a client reads), the exact response bodies, and
the client's side: the request bodies it sends and how it reads an answer back. The HTTP tests
(test_serve*.py, tests/reference/test_reference_server.py, tests/api/) check the same functions
behind a real server and the fake; these check every rule without a model, in milliseconds."""

from __future__ import annotations

import base64
import struct
from types import SimpleNamespace

import pytest

from pipeline.wire import (
    CHUNKING_MODELS,
    INVALID_REQUEST,
    UNKNOWN_MODEL,
    MalformedResponse,
    RequestError,
    Usage,
    check_auth,
    embeddings_request,
    embeddings_response,
    error_body,
    internal_error,
    models_response,
    parse_embeddings,
    parse_json,
    parse_rerank,
    read_embeddings,
    read_rerank,
    read_usage,
    rerank_body,
    rerank_request,
    rerank_response,
    rerank_results,
)

SERVED = "demo/tiny"
LIMITS = SimpleNamespace(served_model=SERVED, max_documents=3, max_text_chars=100)
RERANK_FIELDS = (
    "documents, model, query (required), instruction, max_chunks_per_doc, overlap_tokens, return_documents, top_n"
)
EMBED_FIELDS = "input, model (required), dimensions, encoding_format, user"


def refusal(call) -> RequestError:
    with pytest.raises(RequestError) as info:
        call()
    return info.value


def rerank(**fields):
    return {"model": SERVED, "query": "q", "documents": ["a", "b"], **fields}


def embed(**fields):
    return {"model": SERVED, "input": ["a", "b"], **fields}


def test_siliconflow_codes_and_the_error_body():
    """Clients branch on these codes (20015 a bad request, 20012 an unknown model)."""
    assert (INVALID_REQUEST, UNKNOWN_MODEL) == (20015, 20012)
    exc = RequestError(413, 20015, "too big")
    assert (exc.status, exc.code, str(exc)) == (413, 20015, "too big")
    assert error_body(exc) == {"code": 20015, "message": "too big", "data": None}


def test_the_chunking_models_are_the_ones_siliconflow_documents():
    assert CHUNKING_MODELS == (
        "BAAI/bge-reranker-v2-m3",
        "Pro/BAAI/bge-reranker-v2-m3",
        "netease-youdao/bce-reranker-base_v1",
    )


def test_parse_json_returns_the_value_or_the_apis_400():
    assert parse_json(b'{"a": [1, 2]}') == {"a": [1, 2]}
    for raw in (b"{not json", b"", b"\xff\xfe"):
        exc = refusal(lambda raw=raw: parse_json(raw))
        assert (exc.status, exc.code, str(exc)) == (400, 20015, "request body is not valid JSON")


def test_a_full_rerank_request_comes_back_with_its_values():
    body = rerank(
        documents=["a", "b", "c"],
        top_n=2,
        return_documents=True,
        instruction="Find code",
        max_chunks_per_doc=4,
        overlap_tokens=0,
    )
    assert parse_rerank(body, LIMITS) == {
        "query": "q",
        "documents": ["a", "b", "c"],
        "top_n": 2,
        "return_documents": True,
        "instruction": "Find code",
        "max_chunks_per_doc": 4,
        "overlap_tokens": 0,
        "extensions": {},
    }


def test_rerank_defaults_fill_in_what_the_request_leaves_out():
    """top_n defaults to every document and is cut to their number; max_chunks_per_doc 0 means
    "no limit" (None), overlap_tokens 0 stays 0 (no overlap)."""
    assert parse_rerank(rerank(), LIMITS) == {
        "query": "q",
        "documents": ["a", "b"],
        "top_n": 2,
        "return_documents": False,
        "instruction": None,
        "max_chunks_per_doc": None,
        "overlap_tokens": None,
        "extensions": {},
    }
    parsed = parse_rerank(rerank(top_n=10, max_chunks_per_doc=0, overlap_tokens=7), LIMITS)
    assert (parsed["top_n"], parsed["max_chunks_per_doc"], parsed["overlap_tokens"]) == (2, None, 7)
    assert parse_rerank(rerank(top_n=1, return_documents=False), LIMITS)["top_n"] == 1
    assert len(parse_rerank(rerank(documents=["a"] * 3), LIMITS)["documents"]) == 3  # the limit itself is fine


@pytest.mark.parametrize(("body", "status", "code", "message"), [
    ([1, 2], 400, 20015, "request body must be a JSON object"),
    ("text", 400, 20015, "request body must be a JSON object"),
    ({"model": SERVED, "query": "q"}, 400, 20015, f"invalid request: missing ['documents']; fields: {RERANK_FIELDS}"),
    ({"query": "q"}, 400, 20015, f"invalid request: missing ['documents', 'model']; fields: {RERANK_FIELDS}"),
    (rerank(texts=[], colour=1), 400, 20015, f"invalid request: unknown field(s) ['colour', 'texts']; fields: {RERANK_FIELDS}"),
    ({"query": "q", "documents": [], "user": "u"}, 400, 20015,
     f"invalid request: missing ['model']; unknown field(s) ['user']; fields: {RERANK_FIELDS}"),
    (rerank(model="Qwen/Qwen3-Reranker-8B"), 400, 20012,
     "Model does not exist: 'Qwen/Qwen3-Reranker-8B' (this server serves 'demo/tiny')"),
    (rerank(model="m" * 150), 400, 20012, f"Model does not exist: {'m' * 100!r} (this server serves 'demo/tiny')"),
    (rerank(model=None), 400, 20012, "Model does not exist: 'None' (this server serves 'demo/tiny')"),
    (rerank(query=" \n"), 400, 20015, "query must be a non-empty string"),
    (rerank(query=""), 400, 20015, "query must be a non-empty string"),
    (rerank(query=["q"]), 400, 20015, "query must be a non-empty string"),
    (rerank(documents=[]), 400, 20015, "documents must be a non-empty list of strings"),
    (rerank(documents="ab"), 400, 20015, "documents must be a non-empty list of strings"),
    (rerank(documents=["a", 2]), 400, 20015, "documents must be a non-empty list of strings"),
    (rerank(documents=[1, "a"]), 400, 20015, "documents must be a non-empty list of strings"),
    (rerank(documents=["a"] * 4), 413, 20015, "too many documents: 4 > 3"),
    (rerank(top_n=0), 400, 20015, "top_n must be a positive integer"),
    (rerank(top_n=-1), 400, 20015, "top_n must be a positive integer"),
    (rerank(top_n=True), 400, 20015, "top_n must be a positive integer"),
    (rerank(top_n=1.0), 400, 20015, "top_n must be a positive integer"),
    (rerank(top_n="2"), 400, 20015, "top_n must be a positive integer"),
    (rerank(return_documents=1), 400, 20015, "return_documents must be a boolean"),
    (rerank(return_documents="true"), 400, 20015, "return_documents must be a boolean"),
    (rerank(instruction=""), 400, 20015, "instruction must be a string of length >= 1"),
    (rerank(instruction=5), 400, 20015, "instruction must be a string of length >= 1"),
    (rerank(max_chunks_per_doc=-1), 400, 20015, "max_chunks_per_doc must be a non-negative integer"),
    (rerank(max_chunks_per_doc=True), 400, 20015, "max_chunks_per_doc must be a non-negative integer"),
    (rerank(max_chunks_per_doc=2.0), 400, 20015, "max_chunks_per_doc must be a non-negative integer"),
    (rerank(overlap_tokens=-1), 400, 20015, "overlap_tokens must be a non-negative integer"),
    (rerank(overlap_tokens=False), 400, 20015, "overlap_tokens must be a non-negative integer"),
    (rerank(overlap_tokens="8"), 400, 20015, "overlap_tokens must be a non-negative integer"),
])  # fmt: skip
def test_bad_rerank_requests_are_refused_with_status_code_and_message(body, status, code, message):
    exc = refusal(lambda: parse_rerank(body, LIMITS))
    assert (exc.status, exc.code, str(exc)) == (status, code, message)


def test_rerank_results_are_sorted_by_score_ties_by_index_and_cut_to_top_n():
    request = {"documents": ["d0", "d1", "d2", "d3"], "top_n": 3, "return_documents": False}
    body = rerank_response(request, [0.2, 0.9, 0.2, 0.5], tokens=17)
    assert body["results"] == [
        {"index": 1, "relevance_score": 0.9},
        {"index": 3, "relevance_score": 0.5},
        {"index": 0, "relevance_score": 0.2},
    ]
    usage = {"input_tokens": 17, "output_tokens": 0}
    assert body["tokens"] == usage
    assert body["meta"] == {
        "tokens": usage,
        "billed_units": {"input_tokens": 17, "output_tokens": 0, "search_units": 0, "classifications": 0},
    }
    assert set(body) == {"id", "results", "tokens", "meta"}
    assert len(body["id"]) == 32 and int(body["id"], 16) >= 0  # a uuid4 hex, new for every response
    assert rerank_response(request, [0.2, 0.9, 0.2, 0.5], tokens=17)["id"] != body["id"]


def test_a_servers_extension_fields_are_accepted_only_where_named_and_come_back_unchecked():
    """SiliconFlow (and so the reference server and the fake, which pass no extensions) refuses
    `return_interval`; `serve` names it and validates the value itself."""
    body = rerank(return_interval=0.8)
    exc = refusal(lambda: parse_rerank(body, LIMITS))
    assert (exc.status, exc.code) == (400, 20015) and "unknown field(s) ['return_interval']" in str(exc)
    exc = refusal(lambda: parse_rerank(body, None))
    assert "unknown field(s) ['return_interval']" in str(exc)
    assert parse_rerank(body, LIMITS, frozenset({"return_interval"}))["extensions"] == {"return_interval": 0.8}
    assert parse_rerank(rerank(), LIMITS, frozenset({"return_interval"}))["extensions"] == {}
    exc = refusal(lambda: parse_rerank(rerank(colour=1), LIMITS, frozenset({"return_interval"})))
    assert "unknown field(s) ['colour']" in str(exc) and "return_interval" in str(exc)  # listed among the fields


def test_extra_result_fields_are_merged_by_index_not_position():
    request = {"documents": ["d0", "d1", "d2"], "top_n": 2, "return_documents": False}
    extra = [{"interval": {"lower": i}} for i in range(3)]
    assert rerank_response(request, [0.1, 0.3, 0.2], tokens=0, extra=extra)["results"] == [
        {"index": 1, "relevance_score": 0.3, "interval": {"lower": 1}},
        {"index": 2, "relevance_score": 0.2, "interval": {"lower": 2}},
    ]


def test_rerank_results_carry_their_document_when_asked():
    request = {"documents": ["d0", "d1"], "top_n": 2, "return_documents": True}
    assert rerank_response(request, [0.1, 0.3], tokens=0)["results"] == [
        {"index": 1, "relevance_score": 0.3, "document": {"text": "d1"}},
        {"index": 0, "relevance_score": 0.1, "document": {"text": "d0"}},
    ]


def test_an_embeddings_request_comes_back_with_its_values():
    assert parse_embeddings(embed(), LIMITS, 8) == {"input": ["a", "b"], "encoding_format": "float"}
    assert parse_embeddings(embed(input="one"), LIMITS, 8) == {"input": ["one"], "encoding_format": "float"}
    full = embed(input=["a"] * 3, encoding_format="base64", dimensions=8, user="u")
    assert parse_embeddings(full, LIMITS, 8) == {"input": ["a"] * 3, "encoding_format": "base64"}
    assert parse_embeddings(embed(encoding_format="float", dimensions=None), LIMITS, 8)["encoding_format"] == "float"


@pytest.mark.parametrize(("body", "dims", "status", "code", "message"), [
    (["x"], 8, 400, 20015, "request body must be a JSON object"),
    ({"input": "x"}, 8, 400, 20015, f"invalid request: missing ['model']; fields: {EMBED_FIELDS}"),
    ({"model": SERVED}, 8, 400, 20015, f"invalid request: missing ['input']; fields: {EMBED_FIELDS}"),
    (embed(documents=[]), 8, 400, 20015, f"invalid request: unknown field(s) ['documents']; fields: {EMBED_FIELDS}"),
    (embed(model="other"), 8, 400, 20012, "Model does not exist: 'other' (this server serves 'demo/tiny')"),
    (embed(input=""), 8, 400, 20015, "input must be a non-empty string or a non-empty list of non-empty strings"),
    (embed(input=[]), 8, 400, 20015, "input must be a non-empty string or a non-empty list of non-empty strings"),
    (embed(input=["ok", ""]), 8, 400, 20015, "input must be a non-empty string or a non-empty list of non-empty strings"),
    (embed(input=["ok", 3]), 8, 400, 20015, "input must be a non-empty string or a non-empty list of non-empty strings"),
    (embed(input=[3, "ok"]), 8, 400, 20015, "input must be a non-empty string or a non-empty list of non-empty strings"),
    (embed(input=7), 8, 400, 20015, "input must be a non-empty string or a non-empty list of non-empty strings"),
    (embed(input=["a"] * 4), 8, 413, 20015, "too many inputs: 4 > 3"),
    (embed(encoding_format="binary"), 8, 400, 20015, "encoding_format 'binary' is not supported; use 'float' or 'base64'"),
    (embed(encoding_format="FLOAT"), 8, 400, 20015, "encoding_format 'FLOAT' is not supported; use 'float' or 'base64'"),
    (embed(encoding_format="b" * 30), 8, 400, 20015,
     f"encoding_format {'b' * 20!r} is not supported; use 'float' or 'base64'"),
    (embed(dimensions=7), 8, 400, 20015,
     "dimensions=7 but this server returns 8-d vectors (the size the calibration was collected with)"),
    (embed(dimensions=True), 1, 400, 20015,  # True == 1: a boolean is still not a size
     "dimensions=True but this server returns 1-d vectors (the size the calibration was collected with)"),
    (embed(dimensions=8.0), 8, 400, 20015,
     "dimensions=8.0 but this server returns 8-d vectors (the size the calibration was collected with)"),
    (embed(dimensions="8" * 30), 8, 400, 20015,
     f"dimensions={'8' * 20} but this server returns 8-d vectors (the size the calibration was collected with)"),
])  # fmt: skip
def test_bad_embeddings_requests_are_refused_with_status_code_and_message(body, dims, status, code, message):
    exc = refusal(lambda: parse_embeddings(body, LIMITS, dims))
    assert (exc.status, exc.code, str(exc)) == (status, code, message)


def test_float_embeddings_are_plain_float_lists_in_input_order():
    body = embeddings_response(SERVED, [[1, 2.5], [-3, 0]], tokens=9)
    assert body == {
        "object": "list",
        "model": SERVED,
        "usage": {"prompt_tokens": 9, "total_tokens": 9},
        "data": [
            {"object": "embedding", "index": 0, "embedding": [1.0, 2.5]},
            {"object": "embedding", "index": 1, "embedding": [-3.0, 0.0]},
        ],
    }
    assert all(type(x) is float for d in body["data"] for x in d["embedding"])  # JSON 1.0, never 1
    assert embeddings_response(SERVED, [[1, 2.5]], 9, "float")["data"] == body["data"][:1]


def test_base64_embeddings_are_little_endian_float32_bytes():
    body = embeddings_response(SERVED, [[1, 2.5], [-3, 0]], tokens=9, encoding_format="base64")
    assert body["data"] == [
        {"object": "embedding", "index": 0, "embedding": base64.b64encode(struct.pack("<2f", 1.0, 2.5)).decode()},
        {"object": "embedding", "index": 1, "embedding": base64.b64encode(struct.pack("<2f", -3.0, 0.0)).decode()},
    ]
    assert body["data"][0]["embedding"] == "AACAPwAAIEA="  # the bytes themselves: 1.0, 2.5 as <f4
    assert {k: body[k] for k in ("object", "model", "usage")} == {
        "object": "list",
        "model": SERVED,
        "usage": {"prompt_tokens": 9, "total_tokens": 9},
    }


# --- the hosted service's leniency (limits=None: what the fake validates with) ---------------


def test_without_limits_any_model_any_count_and_any_size_pass():
    """The fake stands in for a service that serves many models: no served-model, count or size
    check; every rule of the format itself still applies."""
    body = rerank(model="Qwen/Qwen3-Reranker-8B", documents=["a"] * 50)
    assert parse_rerank(body, None)["top_n"] == 50
    parsed = parse_embeddings(embed(model="other", input=["a"] * 50, dimensions=64), None)
    assert parsed == {"input": ["a"] * 50, "encoding_format": "float"}
    assert str(refusal(lambda: parse_rerank(rerank(model="x", top_n=0), None))) == "top_n must be a positive integer"
    assert str(refusal(lambda: parse_embeddings(embed(input=[""]), None))).startswith("input must be a non-empty")
    assert refusal(lambda: parse_rerank({"query": "q"}, None)).code == INVALID_REQUEST


# --- the other refusals both servers share ------------------------------------------------------


def test_bearer_auth_refuses_anything_but_the_key_and_never_echoes_it():
    check_auth("", None)
    check_auth("Bearer sk-1", "sk-1")
    for given in ("", "sk-1", "Bearer sk-2", "bearer sk-1", "Bearer sk-1 ", "Bearer sk-1x"):
        exc = refusal(lambda given=given: check_auth(given, "sk-1"))
        assert (exc.status, exc.code, str(exc)) == (401, 401, "Invalid token")


def test_an_internal_error_names_the_type_only():
    exc = internal_error(KeyError("the secret text of a request"))
    assert (exc.status, exc.code, str(exc)) == (500, 50000, "internal error: KeyError")


def test_models_lists_the_served_names():
    assert models_response("a", "b") == {
        "object": "list",
        "data": [{"id": "a", "object": "model"}, {"id": "b", "object": "model"}],
    }
    assert models_response() == {"object": "list", "data": []}


# --- rerank answers piece by piece (the fake builds them so, injecting its faults in between) --


def test_rerank_results_sort_cut_and_carry_documents():
    assert rerank_results([0.2, 0.9, 0.2], 2) == [
        {"index": 1, "relevance_score": 0.9},
        {"index": 0, "relevance_score": 0.2},
    ]
    assert rerank_results([0.2, 0.9], 5, ["d0", "d1"]) == [
        {"index": 1, "relevance_score": 0.9, "document": {"text": "d1"}},
        {"index": 0, "relevance_score": 0.2, "document": {"text": "d0"}},
    ]


@pytest.mark.parametrize(
    "usage_at, keys",
    [
        (("tokens", "meta"), ["id", "results", "tokens", "meta"]),
        (("meta", "tokens"), ["id", "results", "tokens", "meta"]),  # the order of the body is fixed
        (("tokens",), ["id", "results", "tokens"]),
        (("meta",), ["id", "results", "meta"]),
    ],
)
def test_the_usage_goes_where_asked_and_the_id_is_kept(usage_at, keys):
    body = rerank_body([], 5, id="sf-1", usage_at=usage_at)
    assert list(body) == keys and body["id"] == "sf-1" and body["results"] == []
    assert read_usage(body) == Usage(tokens=5, search_units=0 if "meta" in usage_at else None)


# --- the client's side ---------------------------------------------------------------------------


def test_request_bodies_send_only_what_is_set():
    assert rerank_request("m", "q", ("a", "b")) == {"model": "m", "query": "q", "documents": ["a", "b"]}
    full = rerank_request("m", "q", ["a"], top_n=1, return_documents=False, instruction="Judge")
    assert list(full) == ["model", "query", "documents", "top_n", "return_documents", "instruction"]
    assert full == {
        "model": "m",
        "query": "q",
        "documents": ["a"],
        "top_n": 1,
        "return_documents": False,
        "instruction": "Judge",
    }
    assert embeddings_request("m", ("a",)) == {"model": "m", "input": ["a"], "encoding_format": "float"}
    assert embeddings_request("m", ["a"], dimensions=64, encoding_format="base64") == {
        "model": "m",
        "input": ["a"],
        "encoding_format": "base64",
        "dimensions": 64,
    }
    # a falsy value that is set is sent: refusing it is the server's word, not the builder's
    assert rerank_request("m", "q", ["a"], top_n=0, instruction="")["instruction"] == ""
    assert embeddings_request("m", ["a"], dimensions=0)["dimensions"] == 0


def test_what_the_client_sends_the_server_accepts_and_the_answer_reads_back():
    documents = ["d0", "d1", "d2"]
    request = parse_rerank(
        rerank_request(SERVED, "q", documents, top_n=3, return_documents=True, instruction="Judge"), LIMITS
    )
    scores = [0.25, -1.5, 3.0]
    answer = rerank_response(request, scores, tokens=11)
    assert read_rerank(answer, 3) == scores
    assert read_usage(answer) == Usage(tokens=11, search_units=0)
    parsed = parse_embeddings(embeddings_request(SERVED, ["a", "b"], dimensions=2), LIMITS, 2)
    vectors = [[1.0, 0.5], [-2.0, 0.0]]
    answer = embeddings_response(SERVED, vectors, 4, parsed["encoding_format"])
    assert read_embeddings(answer, 2, 2) == vectors
    assert read_usage(answer) == Usage(tokens=4)


@pytest.mark.parametrize(
    "body, n, message",
    [
        ({"data": []}, 1, "response has no 'results' field (fields: ['data'])"),
        ([], 1, "expected a JSON object with 'results', got list"),
        ({"results": [{"index": 0, "relevance_score": 1.0}]}, 2, "results: no result for document index(es) 1 of 2"),
        ({"results": [{"index": 0, "score": 1.0}]}, 1, "results[0]: missing 'relevance_score'"),
        (
            {"results": [{"index": 0, "relevance_score": None}]},
            1,
            "results[0].relevance_score: score None is not a number",
        ),
    ],
)
def test_a_malformed_rerank_answer_says_where(body, n, message):
    with pytest.raises(MalformedResponse) as info:
        read_rerank(body, n)
    assert str(info.value) == message


def test_a_malformed_embeddings_answer_says_where():
    with pytest.raises(MalformedResponse, match=r"^data: asked for dimensions=3, got 2$"):
        read_embeddings({"data": [{"index": 0, "embedding": [0.1, 0.2]}]}, 1, 3)
    with pytest.raises(MalformedResponse, match=r"^response has no 'data' field \(fields: \['results'\]\)$"):
        read_embeddings({"results": []}, 1, None)
