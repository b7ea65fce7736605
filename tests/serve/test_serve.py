"""`serve` as a drop-in for SiliconFlow's /v1/rerank: an artifact fitted by the real pipeline
(collect against the loopback reference with the `siliconflow` API config, then fit) served on
the same local model, called with plain httpx, with the project's API client and with collect
itself; scores equal `load_calibrator(...)` applied to the local scorer's output."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest

from pipeline.__main__ import main
from pipeline.config.reference import ReferenceConfig
from pipeline.config.serve import ServeConfig
from pipeline.core.loopback import BackgroundServer
from pipeline.inference import load_calibrator
from pipeline.reference.server import ReferenceServer
from pipeline.scorers import LocalScorerConfig, build_scorer
from pipeline.scorers.base import QueryGroup
from pipeline.serve.app import create_app
from pipeline.serve.runtime import ServeRuntime

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SERVED = "demo/qwen3-reranker-tiny"
KEY_ENV = "SERVE_TEST_KEY"
KEY = "sk-serve-canary-0c1d2e3f4a5b6c7d"
QUERIES = 12
QUERY = "where do penguins live"
DOCS = [
    "Penguins live in the Southern Hemisphere.",
    "The stock market closed higher.",
    "  Emperor penguins breed in Antarctica. ",
    "Bananas are rich in potassium.",
]


def pipeline_args(tmp: Path, reranker: Path, base_url: str, out: str, **extra) -> list[str]:
    """collect/fit overrides: the tiny reranker locally, the `siliconflow` API config at base_url."""
    items = {
        "api": "siliconflow",
        "api.base_url": base_url,
        "api.model": SERVED,
        "api.api_key_env": KEY_ENV,
        "api.rpm": "null",
        "api.tpm": "null",
        "reference.enabled": "false",
        "local.model": reranker,
        "local.device": "cpu",
        "collect.max_queries": QUERIES,
        "collect.progress": "false",
        "collect.cache": tmp / f"{out}.sqlite",
        "collect.output": tmp / "data" / out / "paired_scores.csv",
        "collect.versions": tmp / "data" / out / "versions.json",
        "export.root": tmp / "artifacts",
        "report.dir": tmp / "reports" / out,
        "evaluate.n_bootstrap": 50,
        "report.plots": "false",
    }
    items.update(extra)
    return ["~local@collect.extra_local.local_minilm"] + [f"{k}={v}" for k, v in items.items()]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, reranker_dir):
    """The artifact `fit` exports after `collect` against a SiliconFlow-format reference API."""
    tmp = tmp_path_factory.mktemp("serve")
    os.environ[KEY_ENV] = KEY
    ref = ReferenceConfig(model=str(reranker_dir), served_model=SERVED, dtype="float32", template="vllm")
    with ReferenceServer(ref) as server:
        args = pipeline_args(tmp, reranker_dir, server.base_url, "fitted")
        assert main(["collect", *args]) == 0
    assert main(["fit", *args, "calibrator=sigmoid"]) == 0
    return tmp / "artifacts" / "fitted"


@pytest.fixture(scope="module")
def local_scorer(reranker_dir):
    with build_scorer(LocalScorerConfig(model=str(reranker_dir), device="cpu")) as scorer:
        yield scorer


def expected_scores(artifact: Path, scorer, query: str, docs: list[str]) -> np.ndarray:
    return load_calibrator(artifact)(scorer.score([QueryGroup(query, docs)])[0])


class Served:
    """A runtime + app on a loopback port, loaded before the first request."""

    def __init__(self, artifact: Path, api_key: str | None = None, **settings) -> None:
        self.runtime = ServeRuntime(ServeConfig(device="cpu", **settings), artifact, api_key=api_key)
        self.server = BackgroundServer(create_app(self.runtime), name="serve")

    def __enter__(self) -> Served:
        self.server.start()
        self.runtime.start_loading()
        self.runtime.wait_loaded(120)
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()
        self.runtime.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


@pytest.fixture(scope="module")
def served(fitted):
    with Served(fitted, api_key=KEY) as s:
        yield s


def post(served: Served, body: dict, path: str = "/v1/rerank", key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(served.url + path, json=body, headers=headers, timeout=60)


def test_plain_httpx_gets_calibrated_scores_sorted_with_index_and_usage(served, fitted, local_scorer):
    response = post(served, {"model": SERVED, "query": QUERY, "documents": DOCS, "top_n": 3, "return_documents": True})
    assert response.status_code == 200, response.text
    body = response.json()
    expected = expected_scores(fitted, local_scorer, QUERY, DOCS)
    results = body["results"]
    assert len(results) == 3
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    for r in results:
        assert abs(r["relevance_score"] - expected[r["index"]]) <= 1e-6
        assert r["document"]["text"] == DOCS[r["index"]]
    assert [r["index"] for r in results] == list(np.argsort(-expected, kind="stable")[:3])
    assert body["meta"]["tokens"]["input_tokens"] > 0 and body["tokens"] == body["meta"]["tokens"]
    # the calibrator changed something: these are not the raw local scores
    raw = local_scorer.score([QueryGroup(QUERY, DOCS)])[0]
    assert np.max(np.abs(np.asarray(expected) - raw)) > 1e-3


def test_the_projects_api_client_reads_the_service_as_siliconflow(served, fitted, local_scorer):
    from pipeline.config.api import ApiConfig, Dialect
    from pipeline.scorers.api import ApiScorer

    cfg = ApiConfig(dialect=Dialect.siliconflow, base_url=served.url + "/v1", model=SERVED, api_key_env=KEY_ENV,
                    instruction="Given a web search query, retrieve relevant passages that answer the query",
                    rpm=None, tpm=None)  # fmt: skip
    groups = [QueryGroup(QUERY, DOCS), QueryGroup("bananas", DOCS[::-1])]
    with ApiScorer(cfg) as api:
        got = api.score(groups)
    for group, scores in zip(groups, got):
        np.testing.assert_allclose(
            scores, expected_scores(fitted, local_scorer, group.query, list(group.documents)), rtol=0, atol=1e-6
        )


def test_collect_pointed_at_serve_returns_the_calibrated_scores(served, fitted, tmp_path, reranker_dir):
    """The round trip: the `siliconflow` config with only the base URL changed; the API column
    collect writes is the calibrated local column."""
    args = pipeline_args(tmp_path, reranker_dir, served.url + "/v1", "roundtrip")
    assert main(["collect", *args]) == 0
    import pandas as pd

    table = pd.read_csv(tmp_path / "data" / "roundtrip" / "paired_scores.csv")
    calibrated = load_calibrator(fitted)(table["local"].to_numpy())
    np.testing.assert_allclose(table["reference"].to_numpy(), calibrated, rtol=0, atol=1e-6)
    assert len(table) >= QUERIES


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"model": SERVED, "query": QUERY, "documents": ["d"] * 9}, 413, "too many documents"),
    ({"model": SERVED, "query": QUERY, "documents": ["x" * 70000] * 8}, 413, "request body of"),
    ({"model": "other/model", "query": QUERY, "documents": DOCS}, 400, "Model does not exist"),
    ({"model": SERVED, "query": QUERY, "documents": []}, 400, "documents must be"),
    ({"model": SERVED, "query": QUERY, "documents": DOCS, "colour": "red"}, 400, "unknown field(s) ['colour']"),
    ({"model": SERVED, "query": QUERY, "documents": DOCS, "top_n": 0}, 400, "top_n"),
    ({"model": SERVED, "query": QUERY, "documents": DOCS, "instruction": "Find recipes"}, 400, "instruction differs"),
])  # fmt: skip
def test_bad_requests_get_a_4xx_in_the_apis_error_shape(fitted, body, status, needle):
    with Served(fitted, max_documents=8, max_text_chars=4000) as served:
        response = post(served, body, key=None)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"code", "message", "data"} and needle in error["message"]


def test_malformed_json_unknown_paths_and_methods_answer_in_the_error_shape(served):
    raw = httpx.post(served.url + "/v1/rerank", content=b"{not json", headers={"Authorization": f"Bearer {KEY}"})
    assert raw.status_code == 400 and raw.json()["message"] == "request body is not valid JSON"
    missing = httpx.get(served.url + "/v2/rerank")
    assert missing.status_code == 404 and set(missing.json()) == {"code", "message", "data"}
    wrong = httpx.get(served.url + "/v1/rerank", headers={"Authorization": f"Bearer {KEY}"})
    assert wrong.status_code == 405 and set(wrong.json()) == {"code", "message", "data"}


def test_a_reranker_answers_embeddings_with_a_404_in_the_error_shape(served):
    response = post(served, {"model": SERVED, "input": "x"}, path="/v1/embeddings")
    assert response.status_code == 404 and "is a reranker" in response.json()["message"]


def test_the_bearer_token_is_required_and_never_echoed(served):
    for key in (None, "sk-wrong"):
        response = post(served, {"model": SERVED, "query": QUERY, "documents": DOCS}, key=key)
        assert response.status_code == 401 and response.json()["message"] == "Invalid token"
        assert KEY not in response.text
    assert httpx.get(served.url + "/health").json() == {"status": "ok"}  # probes need no token


def test_ready_reports_the_verified_artifact(served):
    response = httpx.get(served.url + "/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["ready"] is True and body["model"] == SERVED and body["calibrator"] == "sigmoid"
    assert body["sources"][0]["revision"].startswith("sha256:")
    assert body["serving"][0]["revision"] == body["sources"][0]["revision"]  # what is loaded, next to what was fitted


def test_another_revision_of_the_model_is_not_ready_and_says_why(fitted, reranker_v2_dir):
    with Served(fitted, model=str(reranker_v2_dir)) as served:
        ready = httpx.get(served.url + "/ready")
        refused = post(served, {"model": SERVED, "query": QUERY, "documents": DOCS}, key=None)
    assert ready.status_code == 503
    body = ready.json()
    assert body["ready"] is False and body["state"] == "not_ready"
    assert "local: revision: fitted 'sha256:" in body["reason"] and "re-fit" in body["reason"]
    assert refused.status_code == 503 and "revision" in refused.json()["message"]


def test_allow_mismatch_serves_with_the_difference_as_a_warning(fitted, reranker_v2_dir):
    with Served(fitted, model=str(reranker_v2_dir), allow_mismatch=True) as served:
        ready = httpx.get(served.url + "/ready").json()
        ok = post(served, {"model": SERVED, "query": QUERY, "documents": DOCS}, key=None)
    assert ready["ready"] is True and "revision" in ready["warnings"][0]
    assert ok.status_code == 200


def test_a_tampered_artifact_is_not_ready(fitted, tmp_path):
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(fitted, copy)
    spec = json.loads((copy / "calibrator.json").read_text())
    spec["calibrator"]["a"] = spec["calibrator"]["a"] * 2
    (copy / "calibrator.json").write_text(json.dumps(spec))
    with Served(copy) as served:
        body = httpx.get(served.url + "/ready").json()
    assert body["state"] == "not_ready" and "sha256" in body["reason"]


def test_concurrent_requests_share_one_model_call(fitted, local_scorer):
    """Pairs from more than one request reach a single model call."""
    with Served(fitted, batch_wait_ms=300, max_batch_pairs=64) as served:
        model = served.runtime.model
        calls: list[int] = []
        original = model.raw_scores

        def spy(groups):
            calls.append(len(groups))
            return original(groups)

        model.raw_scores = spy
        bodies = [{"model": SERVED, "query": f"{QUERY} {i}", "documents": DOCS[: 1 + i % 4]} for i in range(6)]
        results: list = [None] * len(bodies)

        def call(i: int) -> None:
            results[i] = post(served, bodies[i], key=None)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(r.status_code == 200 for r in results)
    assert max(calls) > 1, calls
    assert sum(calls) == len(bodies)
    for body, response in zip(bodies, results):  # each request still gets its own scores
        expected = expected_scores(fitted, local_scorer, body["query"], body["documents"])
        got = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
        np.testing.assert_allclose([got[i] for i in range(len(expected))], expected, rtol=0, atol=1e-6)


def test_the_cli_serves_on_the_printed_port_and_stops_cleanly(fitted):
    from tests.serve.cli import serve_process

    args = [f"serve.artifact={fitted}", "serve.device=cpu", f"serve.api_key_env={KEY_ENV}"]
    with serve_process(args, REPO, {**os.environ, KEY_ENV: KEY}) as (proc, url):
        response = httpx.post(
            url + "/v1/rerank",
            json={"model": SERVED, "query": QUERY, "documents": DOCS},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=60,
        )
        assert response.status_code == 200
    assert KEY not in proc.output


def test_the_cli_refuses_a_missing_token_variable_and_a_missing_artifact(tmp_path, capsys):
    assert main(["serve", f"serve.artifact={tmp_path}", "serve.api_key_env=SERVE_TEST_UNSET_VARIABLE"]) == 2
    assert "SERVE_TEST_UNSET_VARIABLE: the variable is not set" in capsys.readouterr().err
    assert main(["serve", f"serve.artifact={tmp_path / 'nowhere'}"]) == 2
    assert "no such artifact directory" in capsys.readouterr().err


def test_serve_settings_are_validated_by_the_schema(capsys):
    assert main(["serve", "serve.port=70000"]) == 2
    assert "serve.port" in capsys.readouterr().err


def test_a_directory_without_an_artifact_cannot_be_loaded(tmp_path):
    from pipeline.serve.service import ServeError, load_model

    with pytest.raises(ServeError, match=r"serve.artifact=.*manifest.json: missing"):
        load_model(replace(ServeConfig(), device="cpu"), tmp_path)


def test_a_column_scored_by_an_http_engine_is_refused_with_the_reason():
    from pipeline.config.serve import ServeConfig
    from pipeline.serve.service import ServeError, scorer_config

    source = {
        "column": "local",
        "kind": "local",
        "fingerprint": {
            "kind": "qwen3_reranker",
            "model": "Qwen/Qwen3-Reranker-0.6B",
            "template": "vllm",
            "engine": {
                "dialect": "vllm_score",
                "path": "/score",
                "served_model": "Qwen/Qwen3-Reranker-0.6B",
                "reported": {},
            },
        },
    }
    with pytest.raises(ServeError, match=r"scored by an HTTP engine \(vllm_score\).*local.engine.base_url=null"):
        scorer_config(source, ServeConfig())


def test_a_fused_artifact_whose_first_source_changed_revision_is_not_ready_and_names_it(
    tmp_path, reranker_dir, reranker_v2_dir
):
    """Two sources; after fitting, the first one's checkpoint is replaced in place by other weights
    (retrained into the same directory). serve must not calibrate the new scores: not ready, and the
    reason names that column, not the other."""
    import shutil

    from pipeline.calibration.calibrators import make_calibrator
    from pipeline.calibration.fusion import NonNegativeFusion, ScoreCalibrationModel
    from pipeline.fit.artifacts import write_artifact

    first, second = tmp_path / "first", tmp_path / "second"
    shutil.copytree(reranker_dir, first)
    shutil.copytree(reranker_dir, second)
    sources = []
    for column, directory in (("local", first), ("local_b", second)):
        with build_scorer(LocalScorerConfig(model=str(directory), device="cpu")) as scorer:
            fp = scorer.fingerprint()
        sources.append(
            {"column": column, "kind": "local", "model": fp["model"], "revision": fp["revision"], "fingerprint": fp}
        )
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(240, 2))
    model = ScoreCalibrationModel(make_calibrator("poly"), NonNegativeFusion(), ["local", "local_b"])
    model.fit(X, 0.3 * X[:, 0] + 0.5 * X[:, 1], groups=np.repeat(np.arange(40), 6))
    artifact = write_artifact(
        tmp_path / "artifacts",
        "fused",
        model,
        {"sources": sources, "target": {"column": "reference", "kind": "api", "model": SERVED, "instruction": None}},
    )
    shutil.copy2(reranker_v2_dir / "model.safetensors", first / "model.safetensors")  # retrained in place
    with Served(artifact) as served:
        ready = httpx.get(served.url + "/ready")
    body = ready.json()
    assert ready.status_code == 503 and body["state"] == "not_ready"
    assert "local: revision: fitted 'sha256:" in body["reason"] and "local_b:" not in body["reason"]
