"""The API source's fingerprint (the score-cache key) changes with everything that changes what the
API returns for a pair, and with nothing that only changes how fast or how persistently we ask."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.api.collector import api_fingerprint
from pipeline.config.api import ApiConfig, Dialect, Endpoint
from pipeline.scorers.base import fingerprint_hash

BASE = ApiConfig(
    dialect=Dialect.vllm,
    base_url="http://127.0.0.1:9/v1",
    model="m",
    api_key_env=None,
    query_template="<q>{query}</q>",
    document_template="<d>{document}</d>",
    server_template=False,
)


def key(cfg: ApiConfig) -> str:
    return fingerprint_hash(api_fingerprint(cfg))


@pytest.mark.parametrize(
    "change",
    [
        {"query_template": "Q: {query}"},
        {"document_template": "D: {document}"},
        {"instruction": "Judge code relevance", "query_template": "{instruction} <q>{query}</q>"},
        {"model": "other"},
        {"revision": "abc123"},
        {"base_url": "http://127.0.0.1:9/v2"},
        {"path": "/score"},
        {"raw_scores": True},
        {"extra_body": {"truncate": True}},
        {"endpoint": Endpoint.embeddings},
        {"server_template": True},
    ],
)
def test_what_is_sent_is_in_the_cache_key(change):
    assert key(replace(BASE, **change)) != key(BASE), change


def test_dimensions_alone_change_the_cache_key():
    """Each change on its own: an endpoint change that also changed dimensions could not show
    whether dimensions is in the key."""
    embeddings = replace(BASE, endpoint=Endpoint.embeddings)
    assert key(replace(embeddings, dimensions=16)) != key(embeddings)
    assert key(replace(embeddings, dimensions=16)) != key(replace(embeddings, dimensions=32))


@pytest.mark.parametrize(
    "change",
    [
        {"concurrency": 2},
        {"rpm": 10.0},
        {"tpm": 1000.0},
        {"timeout_s": 1.0},
        {"retry_attempts": 2},
        {"max_documents_per_request": 4},
        {"price_per_million_tokens": 3.0},
        {"api_key_env": "OTHER_KEY"},
        {"price_per_search_unit": 0.002},
    ],
)
def test_limits_prices_and_the_key_variable_are_not(change):
    assert key(replace(BASE, **change)) == key(BASE), change


def test_with_the_server_formatting_the_prompt_the_unsent_templates_are_not_in_the_key():
    from pipeline.scorers.prompts import DEFAULT_INSTRUCTION

    served = replace(BASE, server_template=True)
    assert key(replace(served, query_template="Q: {query}", instruction=DEFAULT_INSTRUCTION)) == key(served)
    assert api_fingerprint(served)["query_template"] is None


def test_apis_without_server_template_keep_their_fingerprint():
    """Adding the vLLM setting must not re-bill every other API's cached pairs."""
    fp = api_fingerprint(ApiConfig(dialect=Dialect.siliconflow, api_key_env=None))
    assert "server_template" not in fp


def test_the_fingerprint_is_pinned():
    """The fingerprint's exact content is the cache key of every API score already paid for: a
    renamed field or a changed value silently re-bills every cached pair, so it is spelled out."""
    common = {
        "kind": "api",
        "api_source_version": 1,
        "revision": None,
        "raw_scores": False,
        "dimensions": None,
        "score_type": "probability",
        "extra_body": {},
    }
    assert api_fingerprint(BASE) == {
        **common,
        "dialect": "vllm",
        "base_url": "http://127.0.0.1:9/v1",
        "path": "/rerank",
        "model": "m",
        "endpoint": "rerank",
        "instruction": None,
        "query_template": "<q>{query}</q>",
        "document_template": "<d>{document}</d>",
        "server_template": False,
    }
    served = replace(BASE, server_template=True)
    assert api_fingerprint(served) == {
        **common,
        "dialect": "vllm",
        "base_url": "http://127.0.0.1:9/v1",
        "path": "/rerank",
        "model": "m",
        "endpoint": "rerank",
        "instruction": None,
        "query_template": None,
        "document_template": None,
        "server_template": True,
    }
    # the key and query string never enter the fingerprint; the instruction SiliconFlow sends does
    siliconflow = ApiConfig(
        dialect=Dialect.siliconflow,
        api_key_env=None,
        base_url="https://u:secret@api.x.cn/v1/?k=1",
        instruction="judge",
        extra_body={"truncate": True},
        revision="r1",
    )
    assert api_fingerprint(siliconflow) == {
        **common,
        "dialect": "siliconflow",
        "base_url": "https://api.x.cn/v1",
        "path": "/rerank",
        "model": "Qwen/Qwen3-Reranker-0.6B",
        "revision": "r1",
        "endpoint": "rerank",
        "instruction": "judge",
        "query_template": None,
        "document_template": None,
        "extra_body": {"truncate": True},
    }
    tei = ApiConfig(
        dialect=Dialect.tei, api_key_env=None, endpoint=Endpoint.embeddings, dimensions=8, raw_scores=True, model="e"
    )
    assert api_fingerprint(tei) == {
        **common,
        "dialect": "tei",
        "base_url": "https://api.siliconflow.cn/v1",
        "path": "/v1/embeddings",
        "model": "e",
        "endpoint": "embeddings",
        "instruction": None,
        "query_template": None,
        "document_template": None,
        "raw_scores": True,
        "dimensions": 8,
        "score_type": "cosine",
    }


def test_a_config_that_cannot_work_has_no_fingerprint():
    """The dry run and collect both start from the fingerprint: an invalid config fails there,
    before anything is planned or paid for."""
    from pipeline.api.client import ApiConfigError

    with pytest.raises(ApiConfigError, match="server_template must say"):
        api_fingerprint(replace(BASE, server_template=None))
