"""The demo reranker: trained deterministically into two revisions that load through the regular
Qwen3 reranker scorer, and the NDCG@10-vs-random report that gates the training stage."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config.demo import TrainSettings
from pipeline.data.dataset import load_dataset
from pipeline.demo.model import ranking_quality, train_revisions
from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer
from pipeline.scorers.loading import hash_local_files

pytestmark = pytest.mark.slow

TINY = TrainSettings(
    vocab_size=600,
    hidden_size=16,
    intermediate_size=32,
    num_heads=2,
    num_kv_heads=1,
    max_length=160,
    steps=4,
    extra_steps_v2=2,
    queries_per_step=2,
    warmup_steps=2,
)


@pytest.fixture(scope="module")
def train_part(tmp_path_factory, repo_root):
    """The first 24 query groups of the demo's training part (enough to exercise every path)."""
    from pipeline.demo.dataset import build

    out = tmp_path_factory.mktemp("train")
    build(repo_root / "data" / "demo" / "seeds", out / "calibration.jsonl", out / "all.jsonl")
    lines = (out / "all.jsonl").read_text(encoding="utf-8").splitlines()[:24]
    path = out / "train.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return load_dataset(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, train_part):
    out = tmp_path_factory.mktemp("demo-model")
    return out, train_revisions(train_part, out, TINY)


def test_two_revisions_load_through_the_qwen3_reranker_scorer(trained, train_part):
    out, summary = trained
    assert summary["revisions"]["v1"]["steps"] == 4 and summary["revisions"]["v2"]["steps"] == 6
    scores = {}
    for revision in ("v1", "v2"):
        with build_scorer(LocalScorerConfig(model=str(out / revision), device="cpu")) as scorer:
            assert type(scorer).__name__ == "Qwen3RerankerScorer"
            q = train_part.queries[0]
            scores[revision] = scorer.score([QueryGroup(q.text, [d.text for d in q.documents])])[0]
            assert scorer.fingerprint()["revision"] == hash_local_files(out / revision)
    assert np.all((scores["v1"] > 0) & (scores["v1"] < 1))
    assert not np.allclose(scores["v1"], scores["v2"])  # v2 is v1 trained further: other weights
    assert hash_local_files(out / "v1") != hash_local_files(out / "v2")


def test_training_is_deterministic(trained, train_part, tmp_path):
    out, _ = trained
    again = tmp_path / "again"
    train_revisions(train_part, again, TINY)
    for revision in ("v1", "v2"):
        assert hash_local_files(again / revision) == hash_local_files(out / revision)


def test_ranking_quality_separates_signal_from_a_random_order():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 10)
    labels = np.tile([3, 2, 1, 1, 1, 0, 0, 0, 0, 0], 60).astype(float)
    good = ranking_quality(labels + rng.normal(0, 0.3, labels.size), labels, groups)
    assert good["separated"] and good["model"]["ndcg"] > 0.95
    assert good["random"]["ci_low"] <= good["random"]["ndcg"] <= good["random"]["ci_high"]
    noise = ranking_quality(rng.random(labels.size), labels, groups)
    assert not noise["separated"]
    assert abs(noise["model"]["ndcg"] - noise["random"]["ndcg"]) < 0.05


def test_training_stage_reports_ndcg_and_refuses_a_model_without_signal(train_part, repo_root, tmp_path, capsys):
    import json

    from pipeline.__main__ import main

    lines = (repo_root / "data" / "demo" / "calibration.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    calibration = tmp_path / "cal.jsonl"
    calibration.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = [
        f"demo.train_dataset={train_part.path}",
        f"demo.calibration={calibration}",
        f"demo.model_dir={tmp_path / 'm'}",
        f"demo.model_reports={tmp_path / 'r'}",
    ] + [f"demo.train.{k}={v}" for k, v in vars(TINY).items()]
    assert main(["demo-train", *args]) == 2  # a 6-step model ranks like a random order
    err = capsys.readouterr().err
    assert "does not clear a random order's" in err and "demo.train.steps" in err
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert set(summary) == {"ndcg10_v1", "ndcg10_v2", "ndcg10_random_order"}
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["revisions"]["v1"]["queries"] == 20 and report["revisions"]["v1"]["separated"] is False
    assert main(["demo-train", *args, "demo.require_signal=false"]) == 0
    assert "WARNING: v1's NDCG@10 interval" in capsys.readouterr().err
