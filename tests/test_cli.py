"""The CLI end to end: help, config errors, `fit` on the demo table, warnings, exports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.__main__ import main
from pipeline.compose import ConfigError, compose_config
from pipeline.inference import load_calibrator
from pipeline.stages import STAGES


def _dirs(tmp_path: Path) -> list[str]:
    return [f"report.dir={tmp_path / 'reports'}", f"export.root={tmp_path / 'artifacts'}"]


def test_help_lists_every_stage():
    out = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, check=True).stdout
    for name in STAGES:
        assert f"  {name} " in out


def test_dry_run_flag_is_collect_only(capsys):
    assert main(["fit", "--dry-run"]) == 2
    assert "--dry-run applies to the collect stage" in capsys.readouterr().err


def test_unknown_stage_and_bad_keys_name_what_is_allowed(capsys):
    assert main(["fitt"]) == 2
    assert "unknown stage 'fitt'; stages: collect, fit" in capsys.readouterr().err
    assert main(["fit", "calibrator.degre=3"]) == 2
    assert "unknown config key 'degre' in CalibratorConfig; allowed keys: family, degree" in capsys.readouterr().err
    assert main(["fit", "calibrator.family=cubic"]) == 2
    assert "expected one of [auto, poly, isotonic, sigmoid, identity]" in capsys.readouterr().err
    assert main(["fit", "calibrator=cubic"]) == 2
    err = capsys.readouterr().err
    assert "calibrator/cubic" in err and "isotonic" in err


def test_compose_validates_types():
    cfg = compose_config(["calibrator=poly", "calibrator.degree=5", "data.sources=[a,b]"])
    assert cfg.calibrator.degree == 5 and cfg.data.sources == ["a", "b"]
    with pytest.raises(ConfigError, match="degree"):
        compose_config(["calibrator.degree=three"])


def test_fit_on_the_demo_table_writes_metrics_plots_and_a_loadable_artifact(tmp_path, capsys, demo_table):
    assert main(["fit", *_dirs(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "raw local" in out and "calibrated local" in out and "SIMULATED" in out
    assert "artifact:" in out
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    exported = metrics["configurations"][metrics["exported"]]["metrics"]
    raw = metrics["configurations"]["raw local"]["metrics"]
    assert metrics["simulated"] is True and metrics["n_queries"] == 60
    assert exported["pearson"]["ci_low"] <= exported["pearson"]["value"] <= exported["pearson"]["ci_high"]
    assert exported["pearson"]["value"] > raw["pearson"]["value"]  # calibration fixes the scale
    assert exported["mae"]["value"] < raw["mae"]["value"]
    for png in ("calibration.png", "rank_agreement.png"):
        assert (tmp_path / "reports" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cal = load_calibrator(tmp_path / "artifacts" / "demo", model="simulated/local-reranker", revision="sim-v1")
    assert cal.manifest["data"]["simulated"] is True
    assert cal.manifest["data"]["sha256"] == metrics["data"]["sha256"]
    assert cal.manifest["metrics"]["configurations"][metrics["exported"]] == exported
    scores = np.linspace(0, 1, 11)
    assert np.all(np.diff(cal(scores)) >= 0)


def test_fit_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["fit", *_dirs(a)]) == 0
    assert main(["fit", *_dirs(b)]) == 0
    assert (a / "reports" / "metrics.json").read_bytes() == (b / "reports" / "metrics.json").read_bytes()
    assert (a / "artifacts/demo/calibrator.json").read_bytes() == (b / "artifacts/demo/calibrator.json").read_bytes()


def test_fusion_of_two_sources_reports_weights(tmp_path, capsys):
    assert main(["fit", "data=demo-fusion", "export.name=fused", *_dirs(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fused local+local_embedding" in out and "fusion weights" in out
    cal = load_calibrator(tmp_path / "artifacts" / "fused")
    weights = cal.spec["fusion"]["weights"]
    assert all(w >= 0 for w in weights) and sum(weights) == pytest.approx(1.0)
    assert cal(np.array([[0.5, 0.3], [0.9, 0.4]])).shape == (2,)


def test_twenty_pairs_warn_with_interval_width(tmp_path, capsys):
    from pipeline.data import write_table

    rng = np.random.default_rng(0)
    x = rng.uniform(size=20)
    table = write_table(tmp_path / "t.csv", {"query_id": [f"q{i // 5}" for i in range(20)], "doc_id": [str(i) for i in range(20)],
                                             "reference": x**2, "local": x})
    assert main(["fit", f"data.path={table}", *_dirs(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "small sample: 20 pairs in 4 queries" in err and "width" in err


def test_bad_table_is_one_clear_error_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("query_id,doc_id,reference,local\nq1,d1,0.5,oops\nq1,d2,0.1,0.2\n")
    assert main(["fit", f"data.path={bad}", *_dirs(tmp_path)]) == 2
    assert f"error: {bad}: column 'local': line 2: non-numeric value 'oops'" in capsys.readouterr().err
    assert not (tmp_path / "artifacts" / "demo").exists()


def test_export_stage_reuses_metrics_only_from_the_same_data_and_settings(tmp_path, capsys):
    assert main(["evaluate", *_dirs(tmp_path)]) == 0
    assert main(["export", *_dirs(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "artifacts/demo/manifest.json").read_text())
    assert manifest["metrics"]["held_out"] is True
    assert main(["export", "calibrator=poly", *_dirs(tmp_path)]) == 0
    assert "no metrics.json from the same data and settings" in capsys.readouterr().err
    manifest = json.loads((tmp_path / "artifacts/demo/manifest.json").read_text())
    assert manifest["metrics"] is None and manifest["calibrator"]["family"] == "poly"


def test_committed_demo_table_is_what_the_simulator_writes(tmp_path, demo_table, repo_root):
    subprocess.run([sys.executable, str(repo_root / "scripts" / "simulate_demo.py"), "--out", str(tmp_path / "demo.csv")], check=True, capture_output=True)
    assert (tmp_path / "demo.csv").read_bytes() == demo_table.read_bytes()
    assert json.loads((tmp_path / "demo.csv.meta.json").read_text()) == json.loads(Path(str(demo_table) + ".meta.json").read_text())


@pytest.mark.parametrize("dvc_file", ["dvc.yaml", "dvc-collect/dvc.yaml"])
def test_dvc_pipeline_stages_exist_and_their_deps_are_in_the_repo(repo_root, dvc_file):
    path = repo_root / dvc_file
    spec = yaml.safe_load(path.read_text())
    produced = {out for stage in spec["stages"].values() for out in stage.get("outs", [])}
    for name, stage in spec["stages"].items():
        cmd = stage["cmd"].split()
        assert cmd[:3] == ["python", "-m", "pipeline"] and cmd[3] in STAGES, name
        compose_config(cmd[4:])  # the stage's overrides are valid config
        workdir = (path.parent / stage.get("wdir", ".")).resolve()
        for dep in stage.get("deps", []):
            assert (workdir / dep).exists() or dep in produced, f"{name}: missing dep {dep}"
