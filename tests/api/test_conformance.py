"""Wire conformance: the fakes are as strict as the real servers (each schema cites its source in
pipeline/testing/fake_api.py), and the client passes them. Each test here names a mismatch a
permissive fake let through: Jina's `embedding_type`, vLLM's canonical paths, its template mode
and `document` field, TEI's usage header, Cohere's search units, SiliconFlow's constraints, and
TPM pacing that learns from the usage a server reports."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import numpy as np
import pytest

from pipeline.api.client import ApiClient, ApiConfigError, validate_api_config
from pipeline.api.collector import cost_of, estimate_plan, plan_requests
from pipeline.config.api import ApiConfig, Dialect, Endpoint
from pipeline.testing.fake_api import expected_embedding, expected_score
from tests.api.test_client import DOCS, QUERY, cfg_for, score


def embed(cfg: ApiConfig, texts):
    async def go():
        async with ApiClient(cfg) as client:
            return await client.embed(texts), client

    return asyncio.run(go())


def test_the_fake_rejects_what_the_real_servers_reject(server):
    """The fake itself, spoken to directly: the fields and values the providers' references refuse."""
    url = f"http://127.0.0.1:{server.port}"
    bad = [
        ("/jina/v1/embeddings", {"model": "jina-embeddings-v3", "input": ["a"], "encoding_format": "float"}),
        ("/siliconflow/v1/embeddings", {"model": "Qwen/Qwen3-Embedding-0.6B", "input": ["a"], "dimensions": 100}),
        (
            "/siliconflow/v1/rerank",
            {"model": "Qwen/Qwen3-Reranker-0.6B", "query": "q", "documents": ["d"], "instruction": ""},
        ),
        (
            "/siliconflow/v1/rerank",
            {"model": "BAAI/bge-reranker-v2-m3", "query": "q", "documents": ["d"], "instruction": "x"},
        ),
        (  # `serve`'s opt-in extension is not SiliconFlow's: the stand-in for the hosted API refuses it
            "/siliconflow/v1/rerank",
            {"model": "Qwen/Qwen3-Reranker-0.6B", "query": "q", "documents": ["d"], "return_interval": True},
        ),
    ]
    headers = {"Authorization": f"Bearer {server.state.api_key}"}
    for path, body in bad:
        response = httpx.post(url + path, json=body, headers=headers)
        assert response.status_code == 400, path
        if path.startswith("/siliconflow/"):  # SiliconFlow's error body (pipeline.wire), as the real API answers
            assert set(response.json()) == {"code", "message", "data"} and response.json()["code"] == 20015, path


def test_jina_embeddings_send_embedding_type_not_encoding_format(server):
    cfg = cfg_for(server, Dialect.jina, endpoint=Endpoint.embeddings, model="jina-embeddings-v3", dimensions=16)
    (vectors, _), _ = embed(cfg, ["a", "b"])
    np.testing.assert_allclose(vectors, [expected_embedding(t, 16) for t in "ab"], atol=1e-12)
    body = server.records[-1].body
    assert body["embedding_type"] == "float" and "encoding_format" not in body


@pytest.mark.parametrize("dialect, path", [(Dialect.vllm, "/vllm/rerank"), (Dialect.vllm_score, "/vllm/score")])
def test_vllm_is_addressed_by_its_canonical_paths(server, dialect, path):
    result, _ = score(cfg_for(server, dialect))
    (record,) = server.records
    assert not record.deprecated_path and record.status == 200
    np.testing.assert_allclose(result.scores, [expected_score(QUERY, d) for d in DOCS], atol=1e-12)


def test_vllm_rerank_results_carry_the_document_and_still_map_by_index(server):
    result, _ = score(cfg_for(server, Dialect.vllm))
    np.testing.assert_allclose(result.scores, [expected_score(QUERY, d) for d in DOCS], atol=1e-12)


VLLM_TEMPLATES = dict(
    instruction="Judge", query_template="<|im_start|><I>{instruction}<Q>{query}", document_template="<D>{document}</D>"
)


def test_vllm_template_mode_has_no_silent_default():
    cfg = ApiConfig(dialect=Dialect.vllm, base_url="http://127.0.0.1:8000", api_key_env=None)
    with pytest.raises(
        ApiConfigError,
        match=r"api.server_template must say how the vLLM server was started: true if "
        r"it runs with --chat-template",
    ):
        validate_api_config(cfg)
    with pytest.raises(ApiConfigError, match="applies to the vllm dialects only"):
        validate_api_config(ApiConfig(dialect=Dialect.tei, server_template=True, api_key_env=None))


def test_vllm_server_template_true_sends_bare_texts_false_formats_them(server):
    score(cfg_for(server, Dialect.vllm, server_template=True, **{**VLLM_TEMPLATES, "instruction": None}))
    sent = server.records[-1].body
    assert sent["query"] == QUERY and sent["documents"] == DOCS  # the server formats the prompt
    score(cfg_for(server, Dialect.vllm, server_template=False, **VLLM_TEMPLATES))
    sent = server.records[-1].body
    assert sent["query"] == f"<|im_start|><I>Judge<Q>{QUERY}" and sent["documents"][0] == f"<D>{DOCS[0]}</D>"


def test_a_prompt_wrapped_twice_is_flagged_from_the_answers(server):
    from pipeline.collect import prompt_mode_warnings

    server.state.vllm_server_template = True  # the server formats too: the client's prompt is wrapped twice
    cfg = cfg_for(server, Dialect.vllm, server_template=False, **VLLM_TEMPLATES)
    _, client = score(cfg)
    (warning,) = prompt_mode_warnings(cfg, client.stats)
    assert "1 of 1 API responses gave every document the same score" in warning
    assert "was the server started with --chat-template? Then set api.server_template=true" in warning
    server.reset()
    _, client = score(cfg)
    assert prompt_mode_warnings(cfg, client.stats) == []


def test_tei_usage_is_read_from_the_x_compute_tokens_header(server):
    result, client = score(cfg_for(server, Dialect.tei))
    assert result.usage.tokens is not None and result.usage.tokens > 0
    assert client.stats.responses_without_usage == 0 and client.stats.tokens_reported == result.usage.tokens


def test_cohere_cost_comes_from_the_search_units_it_reports(server):
    cfg = cfg_for(server, Dialect.cohere, price_per_search_unit=0.002, max_documents_per_request=100)
    docs = [f"doc {i}" for i in range(150)]  # 2 requests of <= 100 documents: 2 search units

    async def go():
        async with ApiClient(cfg) as client:
            await client.score(QUERY, docs[:100])
            await client.score(QUERY, docs[100:])
            return client

    client = asyncio.run(go())
    assert client.stats.search_units == 2
    assert cost_of(cfg, client.stats) == pytest.approx(0.004)
    plan = plan_requests(cfg, [(QUERY, docs)], [list(range(150))])
    assert estimate_plan(cfg, plan).cost == pytest.approx(0.004)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"instruction": ""}, "api.instruction is empty: SiliconFlow requires at least 1 character"),
        (
            {"instruction": "Judge", "model": "BAAI/bge-reranker-v2-m3"},
            "supported only by SiliconFlow's Qwen3 rerankers",
        ),
        (
            {"endpoint": Endpoint.embeddings, "model": "Qwen/Qwen3-Embedding-0.6B", "dimensions": 2048},
            "api.dimensions=2048 is not accepted for Qwen/Qwen3-Embedding-0.6B by SiliconFlow; choose one of 64, 128, 256, 512, 768, 1024",
        ),
        ({"endpoint": Endpoint.embeddings, "model": "Qwen/Qwen3-Embedding-4B", "dimensions": 4096}, "1536, 2048, 2560"),
    ],
)
def test_siliconflow_constraints_fail_before_any_request(server, change, message):
    with pytest.raises(ApiConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        score(cfg_for(server, **{"model": "Qwen/Qwen3-Reranker-0.6B", **change}))
    assert server.records == []


def test_siliconflow_dimensions_on_the_list_are_sent(server):
    cfg = cfg_for(server, endpoint=Endpoint.embeddings, model="Qwen/Qwen3-Embedding-8B", dimensions=4096)
    (vectors, _), _ = embed(cfg, ["a"])
    assert vectors.shape == (1, 4096) and server.records[-1].status == 200


def test_an_off_list_dimension_is_one_line_and_exit_2_from_the_cli(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "collect",
            "api=siliconflow-embeddings",
            "api.dimensions=100",
            "local=minilm-bundled",
            f"collect.output={tmp_path / 't.csv'}",
            f"collect.cache={tmp_path / 'c'}",
            "reference.enabled=false",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "SILICONFLOW_API_KEY": "x", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert "api.dimensions=100 is not accepted for Qwen/Qwen3-Embedding-0.6B by SiliconFlow" in err[0]


def test_pacing_learns_the_ratio_of_reported_to_estimated_tokens(server):
    server.state.token_report_ratio = 1 / 18
    cfg = cfg_for(server, Dialect.siliconflow, tpm=1e6)

    async def go():
        async with ApiClient(cfg) as client:
            before = client.paced_tokens(1800)
            for _ in range(3):
                await client.score(QUERY, DOCS)
            return before, client

    before, client = asyncio.run(go())
    assert before == 1800  # nothing reported yet: the conservative estimate
    ratio = client.stats.tokens_reported / client.stats.tokens_estimated
    assert ratio < 0.2
    assert client.paced_tokens(1800) == int(np.ceil(1800 * max(ratio, 0.05) * 1.25))
    client._reported_tokens, client._estimated_for_reported = 1, 10_000  # a ratio under the floor
    assert client.paced_tokens(1800) == int(np.ceil(1800 * 0.05 * 1.25))
    client._reported_tokens = 10**9  # a server reporting far more than estimated: capped, not unbounded
    assert client.paced_tokens(10) == 100
    usage = json.loads(json.dumps(client.stats.as_dict()))  # the figures the usage summary shows
    assert usage["tokens_reported"] == client.stats.tokens_reported > 0
    assert usage["tokens"] == client.stats.tokens_reported + client.stats.tokens_unreported_estimate


@pytest.mark.parametrize(
    "model, dims",
    [("Qwen/Qwen3-Embedding-8B", 1536), ("Qwen/Qwen3-Embedding-8B", 2560), ("Qwen/Qwen3-Embedding-4B", 1536)],
)
def test_siliconflow_dimensions_of_the_newer_reference_are_sent(server, model, dims):
    """https://api-docs.siliconflow.cn/docs/api/embeddings-post lists 1536 (and 2560 for 8B); the
    older page did not, and the client refused them before sending."""
    cfg = cfg_for(server, Dialect.siliconflow, endpoint=Endpoint.embeddings, model=model, dimensions=dims)
    (vectors, _), _ = embed(cfg, ["a", "b"])
    assert vectors.shape == (2, dims) and server.records[-1].body["dimensions"] == dims


@pytest.mark.parametrize("dialect", [Dialect.vllm, Dialect.vllm_score])
def test_vllm_with_its_own_template_refuses_an_instruction_it_would_not_send(server, dialect):
    """With api.server_template=true the server's chat template supplies the instruction; a
    non-default api.instruction would be dropped while the table records it. Refused, one line."""
    from pipeline.scorers.prompts import DEFAULT_INSTRUCTION

    with pytest.raises(ApiConfigError, match="api.server_template=true: the vLLM server's chat template"):
        validate_api_config(cfg_for(server, dialect, server_template=True, instruction="Rank passages by usefulness"))
    for accepted in (None, DEFAULT_INSTRUCTION):  # nothing to send, or what the template says anyway
        validate_api_config(cfg_for(server, dialect, server_template=True, instruction=accepted))
