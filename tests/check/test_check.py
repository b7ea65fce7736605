"""`python -m pipeline check`: 0 when nothing changed, 1 when a fingerprint changed (local model
switched to the next revision), 1 when the fingerprints are the same but the reference now answers
differently, 2 when it cannot run; always one line and a JSON report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.__main__ import main
from pipeline.config.reference import ReferenceConfig
from pipeline.reference.server import ReferenceServer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
QUERIES = 16


def overrides(tmp: Path, reranker: Path, **extra) -> list[str]:
    items = {
        "local.model": reranker,
        "local.device": "cpu",
        "reference.model": reranker,
        "collect.max_queries": QUERIES,
        "check.queries": QUERIES,
        "collect.progress": "false",
        "collect.cache": tmp / "cache.sqlite",
        "collect.output": tmp / "data" / "t" / "paired_scores.csv",
        "collect.versions": tmp / "data" / "t" / "versions.json",
        "export.root": tmp / "artifacts",
        "report.dir": tmp / "reports",
        "evaluate.n_bootstrap": 200,
    }
    items.update(extra)
    return ["~local@collect.extra_local.local_minilm"] + [f"{k}={v}" for k, v in items.items()]


def run(stage: str, args: list[str], capsys) -> tuple[int, str]:
    code = main([stage, *args])
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, reranker_dir):
    """collect + fit with the loopback reference enabled (started and stopped by collect)."""
    tmp = tmp_path_factory.mktemp("check")
    args = overrides(tmp, reranker_dir)
    assert main(["collect", *args]) == 0
    assert main(["fit", *args]) == 0
    return tmp, args


def test_unchanged_deployment_exits_0(fitted, capsys):
    tmp, args = fitted
    code, out = run("check", args, capsys)
    assert code == 0, out
    line = next(line for line in out.splitlines() if line.startswith("check:"))
    assert line.startswith("check: OK: fingerprints unchanged; pearson ")
    report = json.loads((tmp / "reports" / "check.json").read_text())
    assert report["status"] == "ok" and report["sample"]["queries"] == QUERIES
    assert report["fingerprints"]["local"]["fitted"] == report["fingerprints"]["local"]["now"]
    assert set(report["agreement"]) == {"pearson", "spearman"}
    decisions = report["decisions"]
    assert [d["threshold"] for d in decisions] == [0.1, 0.3, 0.5, 0.7, 0.9]  # the artifact's thresholds
    for d in decisions:
        assert set(d["sample"]) == {"accuracy", "precision", "recall", "identical"}
        assert d["fitted"] is not None and "accuracy" in d["fitted"]
        assert d["raw_at_transferred"]["accuracy"]["value"] is not None
        # the calibrated decision and the raw cut at the transferred threshold nearly agree
        assert abs(d["sample"]["accuracy"]["value"] - d["raw_at_transferred"]["accuracy"]["value"]) < 0.1


def test_local_model_switched_to_the_next_revision_exits_1(fitted, reranker_v2_dir, capsys):
    tmp, args = fitted
    code, out = run("check", args + [f"local.model={reranker_v2_dir}"], capsys)
    assert code == 1, out
    report = json.loads((tmp / "reports" / "check.json").read_text())
    assert report["status"] == "drift" and "revision" in report["fingerprints"]["local"]["changed"]
    assert "DRIFT: local: model " in out and "revision sha256:" in out


def test_same_fingerprints_but_the_reference_answers_differently_exits_1(
    tmp_path, reranker_dir, reranker_v2_dir, capsys
):
    """The provider updates the model behind the same name and URL: only the agreement shows it."""
    ref = ReferenceConfig(model=str(reranker_dir), served_model="demo/qwen3-reranker-tiny")
    with ReferenceServer(ref) as server:
        args = overrides(tmp_path, reranker_dir, **{"reference.enabled": "false", "api.base_url": server.base_url})
        assert main(["collect", *args]) == 0 and main(["fit", *args]) == 0
        assert run("check", args, capsys)[0] == 0
        server.redeploy(ReferenceConfig(model=str(reranker_v2_dir), served_model="demo/qwen3-reranker-tiny"))
        code, out = run("check", args, capsys)
    assert code == 1, out
    report = json.loads((tmp_path / "reports" / "check.json").read_text())
    assert all(not f["changed"] for f in report["fingerprints"].values())  # same fingerprints
    assert "below the fitted interval" in out and report["agreement"]["pearson"].get("drift") is True


def test_an_error_exits_2_with_one_line(tmp_path, reranker_dir, capsys):
    code, out = run("check", overrides(tmp_path, reranker_dir, **{"check.artifact": tmp_path / "nowhere"}), capsys)
    assert code == 2
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "manifest.json: missing" in errors[0] and "Traceback" not in out
    assert not (tmp_path / "reports").exists()  # a check that did not run leaves no report
