"""`serve` and long documents. SiliconFlow documents ``max_chunks_per_doc``/``overlap_tokens`` for
bge-reranker-v2-m3 and bce-reranker-base_v1 (the document scored by its best chunk): for those
models serve honours them (LlamaIndex's SiliconFlowRerank always sends 1024/80); a text longer than
the model takes is scored (truncated or chunked), never refused; 413 is for the body size only."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from pipeline.inference import load_calibrator
from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer
from tests.serve.artifacts import artifact_for
from tests.serve.test_serve import Served

pytestmark = pytest.mark.slow

BGE = "BAAI/bge-reranker-v2-m3"
QUERY = "how do rerankers score long documents"
LONG = " ".join(f"Sentence {i} about cross encoders, chunks, overlaps and the best chunk wins." for i in range(60))
DOCS = ["Rerankers read the query and the document together.", LONG]


@pytest.fixture(scope="module")
def bge_like(tmp_path_factory, models_dir):
    """A served artifact whose API model is bge-reranker-v2-m3, on a tiny BERT cross-encoder."""
    from pipeline.testing import tiny_models

    directory = tiny_models.build_tiny_bert_cross_encoder(models_dir / "serve-bert")
    cfg = LocalScorerConfig(kind="cross_encoder", model=str(directory), template="none", device="cpu", max_length=128)
    scorer = build_scorer(cfg)
    artifact = artifact_for(scorer, BGE, tmp_path_factory.mktemp("bge-artifact"), "bge", low=0, high=1)
    with Served(artifact, max_documents=8, max_text_chars=4000) as served:
        yield served, artifact, scorer
    scorer.close()


def rerank(served, **fields) -> dict[int, float]:
    response = httpx.post(
        served.url + "/v1/rerank", json={"model": BGE, "query": QUERY, "documents": DOCS, **fields}, timeout=60
    )
    assert response.status_code == 200, response.text
    return {r["index"]: r["relevance_score"] for r in response.json()["results"]}


def test_the_chunk_fields_are_honoured_for_the_models_siliconflow_chunks(bge_like):
    served, artifact, scorer = bge_like
    calibrate = load_calibrator(artifact)
    chunked = calibrate(scorer.score_long([QueryGroup(QUERY, DOCS)], 1024, 80)[0])
    got = rerank(served, max_chunks_per_doc=1024, overlap_tokens=80)  # what LlamaIndex sends
    np.testing.assert_allclose([got[0], got[1]], chunked, rtol=0, atol=1e-6)
    plain = calibrate(scorer.score([QueryGroup(QUERY, DOCS)])[0])
    without = rerank(served)  # no fields: as the calibration was collected (no chunking here)
    np.testing.assert_allclose([without[0], without[1]], plain, rtol=0, atol=1e-6)
    assert got[0] == pytest.approx(without[0], abs=1e-6)  # a document that fits is one chunk either way
    assert got[1] != pytest.approx(without[1], abs=1e-6)  # the long one is really chunked


def test_a_text_longer_than_the_limit_is_scored_not_refused(bge_like):
    served, artifact, scorer = bge_like
    long_text = "word " * 2000  # 10,000 characters > serve.max_text_chars=4000; the model truncates
    response = httpx.post(
        served.url + "/v1/rerank", json={"model": BGE, "query": QUERY, "documents": [long_text]}, timeout=60
    )
    assert response.status_code == 200, response.text
    expected = load_calibrator(artifact)(scorer.score([QueryGroup(QUERY, [long_text])])[0])
    assert response.json()["results"][0]["relevance_score"] == pytest.approx(float(expected[0]), abs=1e-6)


def test_an_instruction_is_refused_when_the_calibration_used_the_apis_default(bge_like):
    """The artifact records instruction null (the API's default was used): scores under any
    explicit instruction were never calibrated, so a request that sends one is a 400."""
    served, artifact, _ = bge_like
    assert load_calibrator(artifact).manifest["target"]["instruction"] is None
    response = httpx.post(
        served.url + "/v1/rerank",
        json={"model": BGE, "query": QUERY, "documents": DOCS[:1], "instruction": "Rank passages by usefulness"},
        timeout=60,
    )
    assert response.status_code == 400 and "instruction differs" in response.json()["message"]
