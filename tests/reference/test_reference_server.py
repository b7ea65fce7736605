"""The loopback reference API: SiliconFlow's rerank wire format on 127.0.0.1, scores equal to the
project's scorer under the server's switches, SiliconFlow-style errors, optional bearer auth."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from pipeline.api.client import ApiClient
from pipeline.config.compose import compose_config
from pipeline.config.reference import ReferenceConfig
from pipeline.reference.server import ReferenceServer, reference_fingerprint
from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer

pytestmark = pytest.mark.slow

QUERY = "What is the capital of China?"
DOCS = [
    "The capital of China is Beijing.\n",
    "  Gravity attracts two bodies.",
    "北京是中国的首都。",
    "def f(x):\n    return x\n",
]
SERVED = "demo/tiny"


def settings(model, **kw) -> ReferenceConfig:
    base = dict(
        model=str(model),
        served_model=SERVED,
        template="vllm",
        strip=True,
        dtype="float32",
        instruction="Judge the relevance of the passage to the question",
    )
    base.update(kw)
    return ReferenceConfig(**base)


@pytest.fixture(scope="module")
def server(reranker_dir):
    with ReferenceServer(settings(reranker_dir), api_key="sk-test-key") as srv:
        yield srv


def post(server, body, key="sk-test-key", path="/v1/rerank"):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.base_url.removesuffix("/v1") + path, json=body, headers=headers, timeout=30)


def expected(
    reranker_dir, docs, query=QUERY, instruction="Judge the relevance of the passage to the question", strip=True
):
    cfg = LocalScorerConfig(model=str(reranker_dir), device="cpu", template="vllm", instruction=instruction)
    with build_scorer(cfg) as scorer:
        f = str.strip if strip else (lambda t: t)
        return scorer.score([QueryGroup(f(query), [f(d) for d in docs])])[0]


def test_rerank_answers_in_siliconflow_format_with_the_servers_scores(server, reranker_dir):
    r = post(server, {"model": SERVED, "query": QUERY, "documents": DOCS, "return_documents": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"id", "results", "tokens", "meta"} and body["tokens"]["input_tokens"] > 0
    assert body["meta"]["tokens"] == body["tokens"]
    results = body["results"]
    scores = [res["relevance_score"] for res in results]
    assert scores == sorted(scores, reverse=True)  # sorted by score, not in request order
    assert sorted(res["index"] for res in results) == list(range(len(DOCS)))
    assert all(res["document"]["text"] == DOCS[res["index"]] for res in results)
    by_index = np.array([res["relevance_score"] for res in sorted(results, key=lambda res: res["index"])])
    np.testing.assert_allclose(by_index, expected(reranker_dir, DOCS), atol=1e-6)
    # the switches are real: without stripping, whitespace changes the scores of the padded documents
    assert not np.allclose(by_index, expected(reranker_dir, DOCS, strip=False), atol=1e-6)


def test_request_instruction_overrides_the_default_and_top_n_cuts(server, reranker_dir):
    r = post(server, {"model": SERVED, "query": QUERY, "documents": DOCS, "top_n": 2, "instruction": "Find code"})
    results = r.json()["results"]
    assert len(results) == 2 and "document" not in results[0]
    want = expected(reranker_dir, DOCS, instruction="Find code")
    assert [res["index"] for res in results] == list(np.argsort(-want)[:2])
    np.testing.assert_allclose([res["relevance_score"] for res in results], np.sort(want)[::-1][:2], atol=1e-6)


@pytest.mark.parametrize(
    "body, status, code, text",
    [
        ({"model": SERVED, "query": QUERY}, 400, 20015, "missing ['documents']"),
        ({"model": SERVED, "query": QUERY, "documents": DOCS, "texts": []}, 400, 20015, "unknown field(s) ['texts']"),
        (
            {"model": SERVED, "query": QUERY, "documents": DOCS, "return_interval": True},
            400,
            20015,
            "unknown field(s) ['return_interval']",
        ),  # serve's extension only
        ({"model": "Qwen/Qwen3-Reranker-8B", "query": QUERY, "documents": DOCS}, 400, 20012, "Model does not exist"),
        ({"model": SERVED, "query": " ", "documents": DOCS}, 400, 20015, "query must be a non-empty string"),
        ({"model": SERVED, "query": QUERY, "documents": [1, 2]}, 400, 20015, "documents must be"),
        ({"model": SERVED, "query": QUERY, "documents": DOCS, "top_n": 0}, 400, 20015, "top_n"),
        ({"model": SERVED, "query": QUERY, "documents": DOCS, "instruction": ""}, 400, 20015, "instruction"),
        ({"model": SERVED, "query": QUERY, "documents": ["x"] * 300}, 413, 20015, "too many documents"),
    ],
)
def test_bad_requests_get_a_4xx_in_the_apis_error_shape(server, body, status, code, text):
    r = post(server, body)
    assert r.status_code == status
    assert r.json()["code"] == code and text in r.json()["message"] and r.json()["data"] is None


def test_auth_paths_and_json_errors(server):
    r = post(server, {"model": SERVED, "query": QUERY, "documents": DOCS}, key="wrong")
    assert r.status_code == 401 and "sk-test-key" not in r.text and "wrong" not in r.text
    assert post(server, {"model": SERVED, "query": QUERY, "documents": DOCS}, key=None).status_code == 401
    assert post(server, {}, path="/v1/embeddings").status_code == 404
    r = httpx.post(server.base_url + "/rerank", content=b"{not json", headers={"Authorization": "Bearer sk-test-key"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    models = httpx.get(server.base_url + "/models", headers={"Authorization": "Bearer sk-test-key"}).json()
    assert models["data"][0]["id"] == SERVED


def test_the_projects_client_reads_it_through_the_siliconflow_dialect(server, reranker_dir, monkeypatch):
    monkeypatch.setenv("REF_KEY", "sk-test-key")
    cfg = compose_config(
        [
            "api=demo-reference",
            f"api.model={SERVED}",
            f"api.base_url={server.base_url}",
            "api.api_key_env=REF_KEY",
            "api.api_key_required=true",
        ]
    ).api

    async def score():
        async with ApiClient(cfg) as client:
            return await client.score(QUERY, DOCS)

    result = asyncio.run(score())
    np.testing.assert_allclose(result.scores, expected(reranker_dir, DOCS), atol=1e-6)
    assert result.usage.tokens > 0


def test_redeploy_changes_answers_behind_the_same_url(reranker_dir, reranker_v2_dir):
    with ReferenceServer(settings(reranker_dir)) as srv:
        url = srv.base_url
        before = post(srv, {"model": SERVED, "query": QUERY, "documents": DOCS}, key=None).json()["results"]
        srv.redeploy(settings(reranker_v2_dir))
        after = post(srv, {"model": SERVED, "query": QUERY, "documents": DOCS}, key=None).json()["results"]
        assert srv.base_url == url and before != after
    with pytest.raises(httpx.ConnectError):  # stopped: the port is closed
        httpx.post(url + "/rerank", json={}, timeout=2)


def test_fingerprint_names_the_weights_revision_and_every_switch(reranker_dir, reranker_v2_dir):
    fp = reference_fingerprint(settings(reranker_dir))
    assert fp["revision"].startswith("sha256:") and fp["template"] == "vllm" and fp["strip"] is True
    assert reference_fingerprint(settings(reranker_v2_dir))["revision"] != fp["revision"]
    assert reference_fingerprint(settings(reranker_dir, dtype="bfloat16")) != fp


def test_collect_refuses_a_reference_it_cannot_run_in_one_line(tmp_path, capsys):
    from pipeline.__main__ import main

    common = [
        f"collect.output={tmp_path / 't.csv'}",
        f"collect.cache={tmp_path / 'c.sqlite'}",
        "collect.max_queries=2",
        "~local@collect.extra_local.local_minilm",
    ]
    assert main(["collect", *common, f"reference.model={tmp_path / 'nowhere'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: reference.model: local.model=") and err.rstrip().endswith("no such directory")
    assert main(["collect", *common, "api.model=Qwen/Qwen3-Reranker-4B"]) == 2
    assert (
        "error: reference.enabled: api.model='Qwen/Qwen3-Reranker-4B' but the loopback reference serves"
        in capsys.readouterr().err
    )
    assert main(["collect", *common, "api=vllm", "api.server_template=false"]) == 2
    assert (
        "api.dialect=vllm api.endpoint=rerank; use api=demo-reference, or reference.enabled=false"
        in capsys.readouterr().err
    )
