"""`serve` for an embedding model: /v1/embeddings returns the raw vectors (calibrators map pair
scores, not vectors), /v1/rerank the calibrated cosines; another vector size is refused."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from pipeline.inference import load_calibrator
from pipeline.scorers import LocalScorerConfig, build_scorer
from pipeline.scorers.base import QueryGroup
from tests.serve.artifacts import artifact_for
from tests.serve.test_serve import Served

pytestmark = pytest.mark.slow

SERVED = "Qwen/Qwen3-Embedding-0.6B"
TEXTS = ["penguins live in Antarctica", "the market closed higher", "bananas are yellow"]


@pytest.fixture(scope="module")
def embedding(tmp_path_factory, models_dir):
    from pipeline.testing import tiny_models

    directory = tiny_models.build_tiny_qwen3_embedding(models_dir / "serve-embedding")
    cfg = LocalScorerConfig(kind="embedding", model=str(directory), device="cpu", pooling="last",
                            task="Given a web search query, retrieve relevant passages")  # fmt: skip
    scorer = build_scorer(cfg)
    artifact = artifact_for(scorer, SERVED, tmp_path_factory.mktemp("emb-artifacts"), "emb", low=-1, high=1)
    yield artifact, scorer
    scorer.close()


@pytest.fixture(scope="module")
def served(embedding):
    with Served(embedding[0]) as s:
        yield s


def test_embeddings_are_the_raw_vectors_in_input_order(served, embedding):
    _, scorer = embedding
    response = httpx.post(served.url + "/v1/embeddings", json={"model": SERVED, "input": TEXTS})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    got = np.array([d["embedding"] for d in body["data"]])
    np.testing.assert_allclose(got, scorer.embed(TEXTS), rtol=0, atol=1e-6)
    assert body["usage"]["total_tokens"] > 0 and body["model"] == SERVED
    single = httpx.post(served.url + "/v1/embeddings", json={"model": SERVED, "input": TEXTS[0]}).json()
    np.testing.assert_allclose(single["data"][0]["embedding"], got[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize(("extra", "needle"), [
    ({"dimensions": 7}, "dimensions=7"),
    ({"encoding_format": "binary"}, "encoding_format"),
    ({"input": ["ok", ""]}, "non-empty"),
])  # fmt: skip
def test_another_size_or_format_is_refused_never_reshaped(served, extra, needle):
    body = {"model": SERVED, "input": TEXTS, **extra}
    response = httpx.post(served.url + "/v1/embeddings", json=body)
    assert response.status_code == 400 and needle in response.json()["message"]


def test_base64_is_each_vector_as_little_endian_float32(served, embedding):
    """What the official openai client asks for when its caller does not say (it decodes itself);
    SiliconFlow accepts float and base64."""
    import base64

    response = httpx.post(
        served.url + "/v1/embeddings", json={"model": SERVED, "input": TEXTS, "encoding_format": "base64"}
    )
    assert response.status_code == 200, response.text
    decoded = np.array([np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in response.json()["data"]])
    np.testing.assert_allclose(decoded, embedding[1].embed(TEXTS), rtol=0, atol=1e-6)


def test_the_native_size_may_be_asked_for_explicitly(served, embedding):
    dims = embedding[1].dimensions
    response = httpx.post(served.url + "/v1/embeddings", json={"model": SERVED, "input": TEXTS, "dimensions": dims})
    assert response.status_code == 200 and len(response.json()["data"][0]["embedding"]) == dims


def test_rerank_on_an_embedding_model_returns_calibrated_cosines(served, embedding):
    artifact, scorer = embedding
    response = httpx.post(served.url + "/v1/rerank", json={"model": SERVED, "query": "where are penguins",
                                                           "documents": TEXTS})  # fmt: skip
    assert response.status_code == 200, response.text
    raw = scorer.score([QueryGroup("where are penguins", TEXTS)])[0]
    expected = load_calibrator(artifact)(raw)
    got = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
    np.testing.assert_allclose([got[i] for i in range(3)], expected, rtol=0, atol=1e-6)


def test_requests_before_the_model_has_loaded_get_503_loading(tmp_path):
    from starlette.testclient import TestClient

    from pipeline.config.serve import ServeConfig
    from pipeline.serve.app import create_app
    from pipeline.serve.runtime import ServeRuntime

    runtime = ServeRuntime(ServeConfig(), Path(tmp_path))
    with TestClient(create_app(runtime)) as client:
        response = client.post("/v1/embeddings", json={"model": "m", "input": "x"})
    assert response.status_code == 503 and response.json()["message"].startswith("not ready (loading)")
