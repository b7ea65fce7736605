"""The API client against the loopback fake server: every dialect, every fault, every limit."""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import pytest

from pipeline.api.client import ApiClient, ApiConfigError
from pipeline.api.errors import FatalApiError, ResponseFormatError, RetriesExhausted
from pipeline.config.api import ApiConfig, Dialect, Endpoint, ScoreType
from pipeline.testing.fake_api import expected_embedding, expected_score, max_overlap
from tests.support.servers import CANARY_KEY, KEY_ENV

QUERY = "什么是 softmax 的导数？"
DOCS = ["∂s_i/∂z_j = s_i(δ_ij − s_j)", "def softmax(z): ...", "天气不错", "HTTP/2 multiplexing", "x"]


def cfg_for(server, dialect: Dialect = Dialect.siliconflow, **kw) -> ApiConfig:
    base = dict(
        dialect=dialect,
        base_url=server.base_url(dialect.value),
        model="test-model",
        api_key_env=KEY_ENV,
        rpm=None,
        tpm=None,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        timeout_s=2.0,
        server_template=False if dialect in (Dialect.vllm, Dialect.vllm_score) else None,
    )
    base.update(kw)
    return ApiConfig(**base)


def score(cfg: ApiConfig, query: str = QUERY, docs=DOCS, **client_kw):
    async def go():
        async with ApiClient(cfg, **client_kw) as client:
            return await client.score(query, docs), client

    return asyncio.run(go())


@pytest.mark.parametrize("dialect", list(Dialect))
def test_every_dialect_maps_scores_back_by_index(server, dialect):
    result, client = score(cfg_for(server, dialect))
    np.testing.assert_allclose(result.scores, [expected_score(QUERY, d) for d in DOCS], rtol=0, atol=1e-12)
    assert client.score_type == "probability"
    (record,) = server.records
    assert record.status == 200  # the server validates required/allowed fields per dialect
    assert client.stats.requests == 1 and client.stats.retries == 0
    top = record.body.get("top_n", record.body.get("top_k"))
    assert top in (None, len(DOCS))  # every document requested back


@pytest.mark.parametrize("dialect", [Dialect.tei, Dialect.infinity])
def test_raw_scores_are_logits(server, dialect):
    result, client = score(cfg_for(server, dialect, raw_scores=True))
    np.testing.assert_allclose(result.scores, [expected_score(QUERY, d, raw=True) for d in DOCS], atol=1e-9)
    assert client.score_type == "logit"
    assert server.records[0].body["raw_scores"] is True


@pytest.mark.parametrize("dialect", [d for d in Dialect if d is not Dialect.cohere])
def test_embeddings_give_cosine_scores(server, dialect):
    dims = 64 if dialect is Dialect.siliconflow else 16  # SiliconFlow: 64 is on Qwen3-Embedding's list
    cfg = cfg_for(
        server,
        dialect,
        endpoint=Endpoint.embeddings,
        dimensions=dims,
        model="Qwen/Qwen3-Embedding-0.6B",
        instruction="Given a query",
        query_template="Instruct: {instruction}\nQuery:{query}",
    )
    result, client = score(cfg)
    q = expected_embedding(f"Instruct: Given a query\nQuery:{QUERY}", dims)
    want = [float(expected_embedding(d, dims) @ q) for d in DOCS]
    np.testing.assert_allclose(result.scores, want, atol=1e-9)
    assert client.score_type == ScoreType.cosine.value
    body = server.records[0].body
    assert body.get("dimensions", body.get("output_dimension")) == dims
    assert len(body["input"]) == len(DOCS) + 1


def test_embed_returns_vectors_in_input_order(server):
    cfg = cfg_for(server, Dialect.vllm, endpoint=Endpoint.embeddings, dimensions=8)

    async def go():
        async with ApiClient(cfg) as client:
            return await client.embed(["a", "b", "c"])

    vectors, usage = asyncio.run(go())
    np.testing.assert_allclose(vectors, [expected_embedding(t, 8) for t in "abc"], atol=1e-12)
    assert usage.tokens is not None


def test_instruction_and_templates_are_sent(server):
    score(cfg_for(server, instruction="Judge relevance", model="Qwen/Qwen3-Reranker-0.6B"))
    assert server.records[-1].body["instruction"] == "Judge relevance"
    cfg = cfg_for(
        server,
        Dialect.vllm,
        instruction="Judge",
        query_template="<I>{instruction}<Q>{query}",
        document_template="<D>{document}</D>",
    )
    result, _ = score(cfg)
    body = server.records[-1].body
    assert body["query"] == f"<I>Judge<Q>{QUERY}" and body["documents"][0] == f"<D>{DOCS[0]}</D>"
    np.testing.assert_allclose(result.scores, [expected_score(body["query"], d) for d in body["documents"]])


@pytest.mark.parametrize("shape", ["tokens", "meta"])
def test_both_siliconflow_usage_shapes(server, shape):
    server.state.sf_usage_shape = shape
    result, client = score(cfg_for(server))
    assert result.usage.tokens and result.usage.tokens > 0
    assert client.stats.tokens_reported == result.usage.tokens


@pytest.mark.parametrize(
    "fault",
    [
        "408",
        "429",
        "500",
        "502",
        "503",
        "504",
        "timeout:3",
        "reset",
        "drop",
        "malformed",
        "truncated",
        "missing_index",
        "duplicate_index",
        "out_of_range_index",
        "nan_score",
    ],
)
def test_transient_faults_are_retried(server, fault):
    server.push_faults(fault)
    result, client = score(cfg_for(server, timeout_s=0.5))
    np.testing.assert_allclose(result.scores, [expected_score(QUERY, d) for d in DOCS])
    assert client.stats.retries == 1 and client.stats.requests == 2
    assert len(server.records) == 2


def test_retry_after_is_honoured_and_counted(server):
    server.push_faults("429:1")
    start = time.monotonic()
    _, client = score(cfg_for(server))
    assert time.monotonic() - start >= 0.95
    assert client.stats.rate_limited == 1
    server.reset()
    server.push_faults("429")  # no Retry-After: the (short) backoff applies
    start = time.monotonic()
    score(cfg_for(server))
    assert time.monotonic() - start < 0.5


def test_attempts_bound(server):
    server.state.fault_fn = lambda n, d, b: "503"
    with pytest.raises(RetriesExhausted, match=r"gave up after 3 attempt\(s\).*HTTP 503"):
        score(cfg_for(server, retry_attempts=3))
    assert len(server.records) == 3


def test_total_time_bound(server):
    server.state.fault_fn = lambda n, d, b: "429:5"
    start = time.monotonic()
    with pytest.raises(RetriesExhausted, match="retry_max_elapsed_s=1"):
        score(cfg_for(server, retry_max_elapsed_s=1.0))
    assert time.monotonic() - start < 1.0 and len(server.records) == 1


@pytest.mark.parametrize("fault", ["missing_index", "duplicate_index", "out_of_range_index", "truncated", "malformed"])
def test_persistent_bad_responses_fail_clearly(server, fault):
    server.state.fault_fn = lambda n, d, b: fault
    words = {
        "missing_index": "no result for document",
        "duplicate_index": "duplicated index",
        "out_of_range_index": "out of range",
        "truncated": "not valid JSON",
        "malformed": "not valid JSON",
    }
    with pytest.raises(RetriesExhausted, match=words[fault]):
        score(cfg_for(server, retry_attempts=2))
    server.reset()
    server.push_faults(fault)
    with pytest.raises(ResponseFormatError, match=words[fault]):
        score(cfg_for(server, retry_invalid_responses=False))
    assert len(server.records) == 1


@pytest.mark.parametrize(
    "status, words",
    [
        ("400", "400 Bad Request"),
        ("401", f"environment variable {KEY_ENV}"),
        ("403", "real-name verification"),
        ("404", "404 Not Found"),
    ],
)
def test_client_errors_are_not_retried(server, status, words):
    server.push_faults(status)
    with pytest.raises(FatalApiError, match=words) as info:
        score(cfg_for(server))
    assert len(server.records) == 1
    assert CANARY_KEY not in str(info.value)


def test_wrong_key_names_the_variable_and_never_leaks(server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    server.state.echo_auth_in_errors = True  # a server that echoes the Authorization header
    monkeypatch.setenv(KEY_ENV, "sk-wrong-" + CANARY_KEY)
    with pytest.raises(FatalApiError) as info:
        score(cfg_for(server))
    message = str(info.value)
    assert "401" in message and KEY_ENV in message and "***" in message
    assert CANARY_KEY not in message and CANARY_KEY not in caplog.text
    assert CANARY_KEY not in repr(info.value.__cause__) and info.value.__cause__ is None


def test_missing_key_variable(server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ApiConfigError, match=f"environment variable {KEY_ENV} is not set"):
        ApiClient(cfg_for(server))


def test_no_key_needed_when_env_is_null(server):
    server.state.api_key = None
    try:
        result, _ = score(cfg_for(server, Dialect.tei, api_key_env=None))
        assert "authorization" not in {k.lower() for k in server.records[0].body}
        assert len(result.scores) == len(DOCS)
    finally:
        server.state.api_key = CANARY_KEY


def test_concurrency_is_bounded_and_connections_are_reused(server):
    server.state.latency_s = 0.05

    async def go():
        async with ApiClient(cfg_for(server, concurrency=4)) as client:
            await asyncio.gather(*(client.score(f"q{i}", ["a", "b"]) for i in range(24)))

    asyncio.run(go())
    assert 2 <= max_overlap(server.records) <= 4
    assert len({r.peer for r in server.records}) <= 4  # keep-alive: no connection per request


def test_client_side_rpm_keeps_server_from_429(server):
    server.state.rate_limit = 5
    server.state.rate_window_s = 1.0

    async def go():
        async with ApiClient(cfg_for(server, rpm=270, rate_margin=1.0, concurrency=8)) as client:
            await asyncio.gather(*(client.score(f"q{i}", ["a"]) for i in range(10)))

    start = time.monotonic()
    asyncio.run(go())
    elapsed = time.monotonic() - start
    assert {r.status for r in server.records} == {200}
    assert elapsed >= 9 * 60 / 270 - 0.05  # paced: 4.5 requests/s


@pytest.mark.parametrize(
    "kw, words",
    [
        (dict(dialect=Dialect.tei, instruction="x"), "no instruction field"),
        (dict(query_template="{query} {nope}"), "placeholders allowed"),
        (dict(dialect=Dialect.cohere, endpoint=Endpoint.embeddings), "not supported"),
        (dict(max_documents_per_request=0), "max_documents_per_request"),
        (dict(concurrency=0), "concurrency"),
        (dict(base_url="ftp://x"), "base_url"),
    ],
)
def test_config_errors_name_the_key(kw, words):
    with pytest.raises(ApiConfigError, match=words):
        ApiClient(ApiConfig(api_key_env=None, **kw))


def test_api_scorer_follows_the_scorer_contract(server):
    from pipeline.runtime.text import TextConfig
    from pipeline.scorers.api import ApiScorer
    from pipeline.scorers.base import QueryGroup

    scorer = ApiScorer(cfg_for(server, max_documents_per_request=2), TextConfig(collapse_whitespace=True))
    seen: list[int] = []
    out = scorer.score([QueryGroup("a  query", ["x", "y", "z"]), QueryGroup("b", ["w"])], seen.append)
    np.testing.assert_allclose(out[0], [expected_score("a query", d) for d in "xyz"])
    np.testing.assert_allclose(out[1], [expected_score("b", "w")])
    assert sum(seen) == 4 and len(server.records) == 3
    assert scorer.score_type == "probability" and scorer.fingerprint()["kind"] == "api"
    assert len(scorer.fingerprint_hash()) == 64
