"""The pipeline as users run it, through DVC, on the reduced profile (``profile=quick``: 48
calibration queries, a briefly trained demo model), in a throwaway git repository holding this
working tree: ``dvc repro`` from dataset to artifact offline, a no-op second run, a clean
``dvc status``, ``check``, switching the local model between revisions (collect -> fit only, no
reference request), ``dvc exp run -S`` overrides that reach the artifact and ``dvc exp show``,
and no secret in any file. The repository and its trained model are built once per session."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.support.dvc import NAME, REPO, SENTINEL, ran

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _committed_state(request):
    """Every test in this module starts from the committed state (those that only read it too)."""
    if "repo" in request.fixturenames:
        request.getfixturevalue("repo").restore()
    yield


def test_repro_runs_dataset_to_artifact_offline_and_leaves_a_clean_status(repo):
    assert {"train", "resolve", "collect", "fit"} <= ran(repo.first)
    assert "raw local" in repo.first.stdout and "calibrated local" in repo.first.stdout  # the before/after table
    meta = repo.sidecar()
    assert meta["dataset"]["queries"] == 48 and repo.first_usage["reference"]["requests"] > 0
    assert meta["sources"]["reference"]["reference_server"]["template"] == "vllm"
    manifest = repo.json(f"artifacts/calibrators/{NAME}/manifest.json")
    assert manifest["sources"][0]["model"] == "models/demo-reranker/v1" and manifest["metrics"]["held_out"] is True
    summary = repo.json(f"reports/{NAME}/summary.json")
    assert set(summary) == {"raw_local", "calibrated_local"} and set(summary["raw_local"]) == {
        "pearson",
        "spearman",
        "ndcg",
        "mae",
    }
    assert (repo.root / f"reports/{NAME}/calibration.csv").is_file() and (
        repo.root / f"reports/{NAME}/rank_agreement.csv"
    ).is_file()
    status = repo.run("dvc", "status").stdout
    assert status.split() == ["resolve:", "always", "changed"], status


def test_second_repro_runs_nothing_but_resolve(repo):
    again = repo.run("dvc", "repro").stdout
    assert ran_names(again) == {"resolve"}
    for stage in ("dataset", "train", "collect", "fit"):
        assert f"Stage '{stage}' didn't change, skipping" in again


def ran_names(stdout: str) -> set[str]:
    return {line.split("'")[1] for line in stdout.splitlines() if line.startswith("Running stage '")}


def test_check_exits_0_when_unchanged_and_1_when_the_local_model_moved(repo):
    ok = repo.run("pipeline", "check", "--params", "params.yaml", ok=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("check: OK")
    moved = repo.run("pipeline", "check", "--params", "params.yaml", "local.model=models/demo-reranker/v2", ok=False)
    assert (
        moved.returncode == 1
        and "DRIFT: local: model models/demo-reranker/v1 -> models/demo-reranker/v2" in moved.stdout
    )


def test_serve_answers_like_the_api_with_the_demo_artifact_and_model(repo, monkeypatch):
    """`python -m pipeline serve` on what `dvc repro` built: a SiliconFlow rerank request gets the
    artifact's calibrator applied to the demo model's scores (the table's local column)."""
    import httpx

    from pipeline.config.api import ApiConfig, Dialect
    from pipeline.inference import load_calibrator
    from pipeline.scorers.api import ApiScorer
    from pipeline.scorers.base import QueryGroup
    from tests.serve.cli import serve_process

    table = pd.read_csv(repo.root / f"data/{NAME}/paired_scores.csv")
    query_id = table["query_id"].iloc[0]
    rows = table[table["query_id"] == query_id]
    group = next(
        g
        for g in map(json.loads, (repo.root / "data/demo/calibration.jsonl").read_text().splitlines())
        if g["query_id"] == query_id
    )
    texts = {d["doc_id"]: d["text"] for d in group["documents"]}
    artifact = repo.root / f"artifacts/calibrators/{NAME}"
    served = repo.json(f"artifacts/calibrators/{NAME}/manifest.json")["target"]["model"]
    documents = [texts[d] for d in rows["doc_id"]]
    monkeypatch.setenv("SERVE_DEMO_TOKEN", "any: the demo service runs without serve.api_key_env")
    with serve_process(["--params", "params.yaml"], repo.root, repo.env) as (_, url):
        response = httpx.post(url + "/v1/rerank", json={"model": served, "query": group["query"],
                                                        "documents": documents}, timeout=60)  # fmt: skip
        config = ApiConfig(
            dialect=Dialect.siliconflow,
            base_url=url + "/v1",
            model=served,
            api_key_env="SERVE_DEMO_TOKEN",
            instruction=None,
            rpm=None,
            tpm=None,
        )
        with ApiScorer(config) as client:  # the project's own client, as collect uses it
            (by_client,) = client.score([QueryGroup(group["query"], documents)])
    assert response.status_code == 200, response.text
    got = {r["index"]: r["relevance_score"] for r in response.json()["results"]}
    expected = load_calibrator(artifact)(rows["local"].to_numpy())
    assert np.max(np.abs(np.array([got[i] for i in range(len(rows))]) - expected)) <= 1e-6
    assert np.max(np.abs(by_client - expected)) <= 1e-6


def test_switching_the_local_revision_recollects_local_scores_only(repo):
    before = pd.read_csv(repo.root / f"data/{NAME}/paired_scores.csv")
    shutil.rmtree(repo.root / "cache")  # as in a fresh clone: the committed table is the only copy of the scores
    v2 = repo.run("dvc", "exp", "run", "-S", "local.model=models/demo-reranker/v2")
    assert ran(v2) == {"resolve", "collect", "fit"}, v2.stdout
    assert "seeded the score cache with" in v2.stdout
    usage = repo.usage()
    assert usage["reference"]["scored"] == 0 and "requests" not in usage["reference"]  # 0 requests
    assert usage["local"]["scored"] == 48 * 10 and usage["local_minilm"]["scored"] == 0
    assert repo.sidecar()["sources"]["local"]["model"] == "models/demo-reranker/v2"
    v1 = repo.run("dvc", "exp", "run", "-S", "local.model=models/demo-reranker/v1")
    assert ran(v1) == {"resolve", "collect", "fit"}, v1.stdout
    usage = repo.usage()
    assert usage["local"]["scored"] == 0 and usage["reference"]["scored"] == 0  # all from the cache
    pd.testing.assert_frame_equal(pd.read_csv(repo.root / f"data/{NAME}/paired_scores.csv"), before)


def test_exp_run_overrides_reach_the_artifact_and_exp_show(repo):
    poly = repo.run("dvc", "exp", "run", "-S", "calibrator=poly", "-S", "calibrator.degree=3")
    assert ran(poly) == {"resolve", "fit"}, poly.stdout
    manifest = repo.json(f"artifacts/calibrators/{NAME}/manifest.json")
    assert manifest["settings"]["calibrator"] == "poly" and manifest["calibrator"]["family"] == "poly"
    instruction = "Find the passage that answers the question"
    repo.run("dvc", "exp", "run", "-S", f"local.instruction='{instruction}'")
    manifest = repo.json(f"artifacts/calibrators/{NAME}/manifest.json")
    assert manifest["sources"][0]["fingerprint"]["instruction"] == instruction
    shown = json.loads(repo.run("dvc", "exp", "show", "--json").stdout)
    texts = json.dumps(shown)
    assert f"reports/{NAME}/summary.json" in texts and "calibrated_local" in texts and "poly" in texts


def test_a_bad_exp_run_value_fails_in_one_line_before_anything_is_touched(repo):
    """-S values are checked before DVC writes params.yaml (hydra_plugins/): a range error, an
    unknown key in either spelling and an unknown group choice each exit non-zero in one line,
    and no tracked file changes (no stage ran, so none had its outputs removed)."""
    before = repo.status()
    for override, needle in (
        ("evaluate.n_bootstrap=-5", "evaluate.n_bootstrap=-5 is out of range"),
        ("evaluate.n_split=3", "unknown config key 'evaluate.n_split' (did you mean 'evaluate.n_splits'?)"),
        ("+evaluate.n_split=3", "unknown config key 'evaluate.n_split'"),
        ("calibrator=cubic", "Could not find 'calibrator/cubic'"),
    ):
        proc = repo.run("dvc", "exp", "run", "-S", override, ok=False)
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        assert proc.returncode != 0 and len(lines) == 1, lines
        assert lines[0].startswith("ERROR: ") and needle in lines[0], lines[0]
        assert "+" not in lines[0].split(needle)[-1]  # never a suggestion to append the key
        assert repo.status() == before, override


def test_a_failing_stage_leaves_its_committed_outputs_in_place(repo):
    """A stage that fails after DVC started it (here: resolve, on a local model that is not there)
    removes nothing: committed outputs are `persist: true` and every stage writes atomically."""
    before = repo.status()
    params = (repo.root / "params.yaml").read_text()
    try:
        (repo.root / "params.yaml").write_text(
            params.replace("model: models/demo-reranker/v1", "model: models/demo-reranker/nowhere", 1)
        )
        proc = repo.run("dvc", "repro", ok=False)
    finally:
        (repo.root / "params.yaml").write_text(params)
    assert (
        proc.returncode != 0
        and "local.model='models/demo-reranker/nowhere': no such directory" in proc.stdout + proc.stderr
    )
    assert repo.status() == before


def test_the_documented_exp_show_columns_command_keeps_the_metric_columns(repo):
    import re
    import shlex

    readme = (REPO / "docs" / "demo-pipeline.md").read_text(encoding="utf-8")  # where the command is documented
    line = next(line for line in readme.splitlines() if line.startswith("dvc exp show --drop"))
    args = shlex.split(line.split("#")[0])
    shown = repo.run("dvc", *args[1:], "--csv").stdout.splitlines()[0].split(",")
    for column in ("ndcg10_v1", "raw_local.pearson", "calibrated_local.spearman", "raw_local.mae", "calibrator.family"):
        assert column in shown, shown
    assert not any(re.fullmatch(r"(local|api|collect)\..*", c) for c in shown)  # the rest is dropped


def test_no_secret_in_any_file_or_log(repo):
    assert any(repo.logs)
    for text in repo.logs:
        assert SENTINEL not in text
    hits = []
    for path in repo.root.rglob("*"):
        if path.is_file() and SENTINEL.encode() in path.read_bytes():
            hits.append(str(path.relative_to(repo.root)))
    assert not hits, hits
