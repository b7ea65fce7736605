"""A local column from an HTTP engine (``local.engine``): the vLLM stand-in test.

The stand-in is the fake API server with a real model behind its vLLM routes
(:class:`pipeline.testing.plain_reranker.PlainPairReranker`): it tokenises the received text pair
as vLLM does, with plain transformers code and no template of its own, and scores it with the
same weights. It never calls the project's scorer. The column collected through it must equal
the in-process column (``local.template=vllm``) to 1e-5.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.collect import CollectError, collect
from pipeline.config.compose import compose_config
from pipeline.config.local import EngineConfig
from pipeline.scorers import LocalScorerConfig, build_scorer
from pipeline.scorers.base import QueryGroup
from pipeline.scorers.engine import EngineError
from pipeline.testing.fake_api import FakeApiServer
from pipeline.testing.plain_embedder import PlainEmbedder
from pipeline.testing.plain_reranker import PlainPairReranker

pytestmark = pytest.mark.slow

SERVED = {"id": "Qwen/Qwen3-Reranker-0.6B", "root": "/models/qwen3-reranker-0.6b"}
INSTRUCTION = "Judge {relevance} for: code & prose"  # braces and symbols go through untouched


@pytest.fixture(scope="module")
def stand_in(reranker_dir):
    model = PlainPairReranker(str(reranker_dir))
    with FakeApiServer(pair_scorer=model, served_model=SERVED) as server:
        server.model = model
        yield server


@pytest.fixture(autouse=True)
def _fresh(stand_in):
    # a collect that failed returns while its other requests are still being scored: wait for the
    # server to be idle, or their pairs land in the next test's count (random order found it)
    deadline = time.monotonic() + 30
    while stand_in.state.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    # the faults too, not only the records: a fault pushed but not consumed would hit the next test
    stand_in.state.faults.clear()
    stand_in.state.clear_records()
    stand_in.model.pairs_seen.clear()
    stand_in.state.served_model = SERVED
    yield


def dataset(tmp_path: Path) -> Path:
    rows = []
    for q in range(4):
        docs = [
            {"doc_id": f"d{j}", "text": text}
            for j, text in enumerate(
                [
                    f"a document about query {q}",
                    "  leading and trailing spaces  ",
                    "北京是中国的首都。",
                    "yes or no?",
                    f"def f(x):\n    return x ** {q}\n",
                ][: 3 + q % 3]
            )
        ]
        rows.append({"query_id": f"q{q}", "query": f"what is query {q}? 重力", "documents": docs})
    path = tmp_path / "ds.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def cfg_for(tmp_path: Path, reranker_dir: Path, name: str, *extra: str):
    return compose_config(
        [
            f"collect.dataset={dataset(tmp_path)}",
            f"collect.output={tmp_path / name}.csv",
            f"collect.cache={tmp_path / name}.sqlite",
            "collect.run_api=false",
            "collect.progress=false",
            "~local@collect.extra_local.local_minilm",
            f"local.model={reranker_dir}",
            "local.device=cpu",
            "local.template=vllm",
            f"local.instruction='{INSTRUCTION}'",
            *extra,
        ]
    )


@pytest.mark.parametrize("dialect", ["vllm_score", "vllm"])
def test_the_engine_column_equals_the_in_process_column(stand_in, reranker_dir, tmp_path, dialect):
    here = collect(cfg_for(tmp_path, reranker_dir, "here"))
    engine = collect(
        cfg_for(
            tmp_path,
            reranker_dir,
            "engine",
            f"local.engine.base_url={stand_in.base_url(dialect)}",
            f"local.engine.dialect={dialect}",
        )
    )
    a, b = pd.read_csv(here.output), pd.read_csv(engine.output)
    assert len(a) == len(b) == 15 and a["local"].nunique() > 5
    assert np.max(np.abs(a["local"].to_numpy() - b["local"].to_numpy())) <= 1e-5
    # the stand-in scored every pair itself, from text the client formatted (no template of its own)
    seen = stand_in.model.pairs_seen
    assert len(seen) == 15
    assert all(
        t1.startswith("<|im_start|>system\n") and f"<Instruct>: {INSTRUCTION}\n<Query>: " in t1 for t1, _ in seen
    )
    assert all(t2.startswith("<Document>: ") and t2.endswith("<think>\n\n</think>\n\n") for _, t2 in seen)
    assert {r.dialect for r in stand_in.records} == {dialect}

    fp_here = here.meta["sources"]["local"]["fingerprint"]
    fp = engine.meta["sources"]["local"]["fingerprint"]
    for key in ("kind", "model", "template", "instruction", "score_type", "text"):
        assert fp[key] == fp_here[key], key
    assert fp["engine"]["reported"] == {"id": SERVED["id"], "root": SERVED["root"], "max_model_len": 40960}
    assert fp["engine"]["served_model"] == SERVED["id"] and "device_type" not in fp
    assert engine.meta["sources"]["local"]["engine"]["dialect"] == dialect

    stand_in.state.clear_records()  # the engine's scores are cached like any column's
    again = collect(
        cfg_for(
            tmp_path,
            reranker_dir,
            "engine",
            f"local.engine.base_url={stand_in.base_url(dialect)}",
            f"local.engine.dialect={dialect}",
        )
    )
    assert again.run["usage"]["local"]["cached"] == 15 and not [r for r in stand_in.records if r.endpoint == "rerank"]


def test_an_engine_that_serves_other_weights_gets_another_cache_key(stand_in, reranker_dir, tmp_path):
    lcfg = LocalScorerConfig(
        model=str(reranker_dir), template="vllm", engine=EngineConfig(base_url=stand_in.base_url("vllm"))
    )
    first = build_scorer(lcfg).fingerprint_hash()
    stand_in.state.served_model = {**SERVED, "root": "/models/qwen3-reranker-0.6b-v2"}
    assert build_scorer(lcfg).fingerprint_hash() != first


def test_the_embedding_engine_column_equals_the_in_process_column(embedding_dir, tmp_path):
    task = "Given a web search query, retrieve relevant passages"
    plain = PlainEmbedder(None, model_dir=str(embedding_dir), pooling="last")
    groups = [
        QueryGroup("what is gravity?", ["gravity attracts bodies", "北京是中国的首都。", "def f(x): return x"]),
        QueryGroup("mars", ["the red planet", "saturn has rings"]),
    ]
    lcfg = LocalScorerConfig(kind="embedding", model=str(embedding_dir), task=task, device="cpu")
    with FakeApiServer(embedder=lambda texts: plain.embed(texts)[0], served_model={"id": "tiny-embedding"}) as server:
        engine = build_scorer(
            LocalScorerConfig(
                kind="embedding",
                model=str(embedding_dir),
                task=task,
                engine=EngineConfig(base_url=server.base_url("vllm"), dialect="vllm"),
            )
        )
        remote = engine.score(groups)
        sent = [r.body["input"] for r in server.records if r.endpoint == "embeddings"]
    here = build_scorer(lcfg).score(groups)
    for a, b in zip(here, remote):
        assert np.max(np.abs(a - b)) <= 1e-5
    # groups go out concurrently: find each text by content, never by arrival order
    texts = [t for body in sent for t in body]
    assert f"Instruct: {task}\nQuery:what is gravity?" in texts and "what is gravity?" not in texts
    assert f"Instruct: {task}\nQuery:mars" in texts
    assert {"gravity attracts bodies", "the red planet", "saturn has rings"} <= set(texts)  # documents bare
    assert engine.fingerprint()["task"] == task and engine.score_type == "cosine"


def test_refusals_name_the_key(stand_in, reranker_dir, tmp_path):
    base = dict(model=str(reranker_dir), engine=EngineConfig(base_url=stand_in.base_url("vllm")))
    with pytest.raises(EngineError, match="local.template=vllm"):  # official tokenises the prompt as one string
        build_scorer(LocalScorerConfig(**base, template="official"))
    infinity = dict(
        model=str(reranker_dir), engine=EngineConfig(base_url=stand_in.base_url("infinity"), dialect="infinity")
    )
    with pytest.raises(EngineError, match="strips every text it receives.*Set local.strip_prompt=true"):
        build_scorer(LocalScorerConfig(**infinity, template="vllm"))  # its closing newlines would be stripped
    with pytest.raises(RuntimeError, match="only the tei and infinity"):
        build_scorer(LocalScorerConfig(**base, kind="cross_encoder", template="none", activation="none"))
    with pytest.raises(RuntimeError, match="not an engine dialect"):
        build_scorer(
            LocalScorerConfig(
                model=str(reranker_dir),
                template="vllm",
                engine=EngineConfig(base_url=stand_in.base_url("vllm"), dialect="siliconflow"),
            )
        )
    stand_in.state.served_model = None  # an engine that does not say what it serves: 404
    with pytest.raises(RuntimeError, match="is the engine running"):
        build_scorer(LocalScorerConfig(**base, template="vllm"))


def test_an_engine_that_is_down_stops_collect_with_one_line(reranker_dir, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CollectError, match=rf"GET http://127.0.0.1:{port}/v1/models failed .*is the engine running"):
        collect(cfg_for(tmp_path, reranker_dir, "down", f"local.engine.base_url=http://127.0.0.1:{port}"))


def test_resolve_reports_what_the_engine_serves(stand_in, reranker_dir, tmp_path):
    from pipeline.collect.versions import resolve_versions

    cfg = cfg_for(
        tmp_path,
        reranker_dir,
        "resolve",
        f"local.engine.base_url={stand_in.base_url('vllm')}",
        "collect.run_api=true",
        "reference.enabled=false",
        "api.api_key_env=null",
    )
    before = resolve_versions(cfg)["local"]["local"]
    assert before["revision_source"] == "engine" and before["reported"]["root"] == SERVED["root"]
    stand_in.state.served_model = {**SERVED, "root": "/models/qwen3-reranker-0.6b-v2"}  # the engine moved
    assert resolve_versions(cfg)["local"]["local"] != before  # so `dvc repro` re-collects


def test_an_engine_that_fails_mid_run_is_one_line_in_engine_terms(stand_in, reranker_dir, tmp_path, capsys):
    from pipeline.stages import run_stage

    cfg = cfg_for(tmp_path, reranker_dir, "fails", f"local.engine.base_url={stand_in.base_url('vllm')}")
    stand_in.push_faults("400")  # a pair the engine refuses (vLLM: longer than max_model_len)
    assert run_stage("collect", cfg) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert "the engine at" in lines[0] and "local.engine.served_model" in lines[0] and "api.model" not in lines[0]


def test_the_summary_counts_the_engines_requests(stand_in, reranker_dir, tmp_path, capsys):
    result = collect(cfg_for(tmp_path, reranker_dir, "counted", f"local.engine.base_url={stand_in.base_url('vllm')}"))
    usage = result.run["usage"]["local"]
    assert usage["requests"] == 4 and usage["succeeded"] == 4 and usage["retries"] == 0  # one per query group
    assert usage["documents"] == 15


def test_a_base_url_ending_in_v1_gets_a_hint(stand_in, reranker_dir):
    lcfg = LocalScorerConfig(
        model=str(reranker_dir), template="vllm", engine=EngineConfig(base_url=stand_in.base_url("vllm") + "/v1")
    )
    with pytest.raises(RuntimeError, match="drop the trailing /v1"):
        build_scorer(lcfg)
