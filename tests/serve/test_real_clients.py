"""Real SDK clients against `serve`, each unchanged but for its base URL and key: the official
``openai`` client (embeddings with its default encoding, which is base64, and with ``dimensions``),
LangChain's ``SiliconFlowEmbeddings`` (through the openai client), LlamaIndex's
``SiliconFlowEmbedding`` and ``SiliconFlowRerank`` (which always sends ``max_chunks_per_doc=1024``
and ``overlap_tokens=80``). Every vector equals the local model's, every score the artifact's
calibrator applied to the local scorer (1e-6). The clients are pinned in the ``test`` extra."""

from __future__ import annotations

import numpy as np
import pytest

from tests.serve.test_serve import DOCS, KEY, QUERY, SERVED, Served, expected_scores, fitted, local_scorer  # noqa: F401  (module fixtures reused here)
from tests.serve.test_serve_chunking import bge_like  # noqa: F401
from tests.serve.test_serve_embeddings import SERVED as EMBEDDING_MODEL
from tests.serve.test_serve_embeddings import TEXTS, embedding  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def embedding_service(embedding):  # noqa: F811
    with Served(embedding[0], api_key=KEY) as service:
        yield service


@pytest.fixture(scope="module")
def rerank_service(fitted):  # noqa: F811
    with Served(fitted, api_key=KEY) as service:
        yield service


def test_the_official_openai_client_with_its_default_base64_encoding(embedding_service, embedding):  # noqa: F811
    import openai

    client = openai.OpenAI(base_url=embedding_service.url + "/v1", api_key=KEY, max_retries=0)
    response = client.embeddings.create(model=EMBEDDING_MODEL, input=TEXTS)  # encoding_format not given: base64
    got = np.array([d.embedding for d in response.data])
    np.testing.assert_allclose(got, embedding[1].embed(TEXTS), rtol=0, atol=1e-6)
    assert response.usage.total_tokens > 0


def test_the_official_openai_client_with_dimensions_and_float(embedding_service, embedding):  # noqa: F811
    import openai

    dims = embedding[1].dimensions
    client = openai.OpenAI(base_url=embedding_service.url + "/v1", api_key=KEY, max_retries=0)
    response = client.embeddings.create(
        model=EMBEDDING_MODEL, input=TEXTS[:2], dimensions=dims, encoding_format="float"
    )
    np.testing.assert_allclose([d.embedding for d in response.data], embedding[1].embed(TEXTS[:2]), rtol=0, atol=1e-6)
    with pytest.raises(openai.BadRequestError, match="dimensions"):  # another size is refused, never truncated
        client.embeddings.create(model=EMBEDDING_MODEL, input=TEXTS[:1], dimensions=dims - 1)


def test_langchain_siliconflow_embeddings(embedding_service, embedding):  # noqa: F811
    from langchain_siliconflow import SiliconFlowEmbeddings

    lc = SiliconFlowEmbeddings(model=EMBEDDING_MODEL, siliconflow_api_key=KEY, base_url=embedding_service.url + "/v1")
    np.testing.assert_allclose(lc.embed_documents(TEXTS), embedding[1].embed(TEXTS), rtol=0, atol=1e-6)
    np.testing.assert_allclose(lc.embed_query(TEXTS[0]), embedding[1].embed(TEXTS[:1])[0], rtol=0, atol=1e-6)


def test_llamaindex_siliconflow_embedding(embedding_service, embedding):  # noqa: F811
    from llama_index.embeddings.siliconflow import SiliconFlowEmbedding

    li = SiliconFlowEmbedding(model=EMBEDDING_MODEL, api_key=KEY, base_url=embedding_service.url + "/v1/embeddings")
    np.testing.assert_allclose(li.get_text_embedding_batch(TEXTS), embedding[1].embed(TEXTS), rtol=0, atol=1e-6)


def test_llamaindex_siliconflow_rerank_gets_the_calibrated_local_scores(rerank_service, fitted, local_scorer):  # noqa: F811
    """LlamaIndex always sends max_chunks_per_doc=1024 and overlap_tokens=80. SiliconFlow documents
    them for bge-reranker-v2-m3 and bce-reranker only; for a Qwen3 reranker they change nothing."""
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.siliconflow_rerank import SiliconFlowRerank

    rerank = SiliconFlowRerank(model=SERVED, api_key=KEY, base_url=rerank_service.url + "/v1/rerank", top_n=len(DOCS))
    nodes = [NodeWithScore(node=TextNode(text=d, id_=str(i))) for i, d in enumerate(DOCS)]
    ranked = rerank.postprocess_nodes(nodes, query_bundle=QueryBundle(QUERY))
    expected = expected_scores(fitted, local_scorer, QUERY, DOCS)
    got = {int(n.node.id_): n.score for n in ranked}
    assert sorted(got) == list(range(len(DOCS)))
    np.testing.assert_allclose([got[i] for i in range(len(DOCS))], expected, rtol=0, atol=1e-6)
    assert [n.score for n in ranked] == sorted(got.values(), reverse=True)


def test_llamaindex_siliconflow_rerank_chunks_where_siliconflow_documents_it(bge_like):  # noqa: F811
    """Against a bge-reranker-v2-m3 artifact the same client's max_chunks_per_doc=1024 and
    overlap_tokens=80 apply: each long document is scored by its best chunk."""
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.siliconflow_rerank import SiliconFlowRerank

    from pipeline.inference import load_calibrator
    from pipeline.scorers import QueryGroup
    from tests.serve.test_serve_chunking import BGE
    from tests.serve.test_serve_chunking import DOCS as LONG_DOCS
    from tests.serve.test_serve_chunking import QUERY as LONG_QUERY

    served, artifact, scorer = bge_like
    rerank = SiliconFlowRerank(model=BGE, api_key="any", base_url=served.url + "/v1/rerank", top_n=len(LONG_DOCS))
    nodes = [NodeWithScore(node=TextNode(text=d, id_=str(i))) for i, d in enumerate(LONG_DOCS)]
    got = {int(n.node.id_): n.score for n in rerank.postprocess_nodes(nodes, query_bundle=QueryBundle(LONG_QUERY))}
    expected = load_calibrator(artifact)(scorer.score_long([QueryGroup(LONG_QUERY, LONG_DOCS)], 1024, 80)[0])
    np.testing.assert_allclose([got[i] for i in range(len(LONG_DOCS))], expected, rtol=0, atol=1e-6)
