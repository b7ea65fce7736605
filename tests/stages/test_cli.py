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
from pipeline.config.compose import ConfigError, compose_config
from pipeline.inference import load_calibrator
from pipeline.stages import STAGES

pytestmark = pytest.mark.slow


def _dirs(tmp_path: Path) -> list[str]:
    return [f"report.dir={tmp_path / 'reports'}", f"export.root={tmp_path / 'artifacts'}"]


def test_help_lists_every_stage():
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in STAGES:
        assert f"  {name} " in out


def test_dry_run_flag_is_collect_only(capsys):
    assert main(["fit", "--dry-run"]) == 2
    assert "--dry-run applies to the collect stage" in capsys.readouterr().err


def test_unknown_stage_and_bad_keys_name_what_is_allowed(capsys):
    assert main(["fitt"]) == 2
    assert (
        "unknown stage 'fitt'; stages: demo-dataset, demo-train, resolve, collect, plan, fit" in capsys.readouterr().err
    )
    assert main(["fit", "calibrator.degre=3"]) == 2
    assert (
        "unknown config key 'calibrator.degre' (did you mean 'calibrator.degree'?); calibrator takes: family, degree"
        in capsys.readouterr().err
    )
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
    assert "raw local" in out and "calibrated local" in out and "SIMULATED" not in out
    assert "artifact:" in out
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    exported = metrics["configurations"][metrics["exported"]]["metrics"]
    raw = metrics["configurations"]["raw local"]["metrics"]
    assert metrics["simulated"] is False and metrics["n_queries"] >= 150
    assert exported["pearson"]["ci_low"] <= exported["pearson"]["value"] <= exported["pearson"]["ci_high"]
    assert exported["pearson"]["value"] > raw["pearson"]["value"]  # calibration fixes the scale
    assert exported["mae"]["value"] < 0.9 * raw["mae"]["value"]
    for png in ("calibration.png", "rank_agreement.png"):
        assert (tmp_path / "reports" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    assert set(summary) == {"raw_local", "calibrated_local"}
    assert summary["calibrated_local"]["pearson"] == round(exported["pearson"]["value"], 4)
    sidecar = json.loads(Path(str(demo_table) + ".meta.json").read_text())
    local = sidecar["sources"]["local"]
    assert local["model"] == "models/demo-reranker/v1" and local["revision"].startswith("sha256:")
    cal = load_calibrator(tmp_path / "artifacts" / "demo", model=local["model"], revision=local["revision"])
    assert cal.manifest["data"]["simulated"] is False
    assert cal.manifest["data"]["sha256"] == metrics["data"]["sha256"]
    assert cal.manifest["metrics"]["configurations"][metrics["exported"]] == exported
    scores = np.linspace(0, 1, 11)
    assert np.all(np.diff(cal(scores)) >= 0)


def test_fit_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["fit", *_dirs(a)]) == 0
    assert main(["fit", *_dirs(b)]) == 0
    assert (a / "reports" / "metrics.json").read_bytes() == (b / "reports" / "metrics.json").read_bytes()
    for name in ("calibrator.json", "calibrator.joblib", "manifest.json"):  # no timestamp: DVC hashes the directory
        assert (a / "artifacts/demo" / name).read_bytes() == (b / "artifacts/demo" / name).read_bytes(), name


def test_fusion_of_two_sources_reports_weights(tmp_path, capsys):
    assert main(["fit", "data=demo-fusion", "export.name=fused", *_dirs(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "fused local+local_minilm" in out and "fusion weights" in out
    cal = load_calibrator(tmp_path / "artifacts" / "fused")
    weights = cal.spec["fusion"]["weights"]
    assert all(w >= 0 for w in weights) and sum(weights) == pytest.approx(1.0)
    assert cal(np.array([[0.5, 0.3], [0.9, 0.4]])).shape == (2,)
    text = " ".join(out.split())
    assert (
        "exported fusion: calibrated scale, objective " in text and "query resamples, source maps held fixed]" in text
    )
    assert (
        "drop-one: the fused row minus the same fused model refitted without the source, held out, rank sim / combined: local +"
        in text
    )


def test_three_source_fusion_reports_weight_intervals_and_drop_one_contributions(tmp_path):
    import json

    from pipeline.calibration.synthetic import latent_sample
    from pipeline.data.table import write_table

    sample = latent_sample(("probability", "cosine"), (0.35, 0.6), n_queries=80, seed=3)
    noise = np.random.default_rng(3).uniform(size=sample.target.size)
    path = write_table(
        tmp_path / "t.csv",
        {
            "query_id": sample.groups.astype(str),
            "doc_id": np.arange(sample.target.size).astype(str),
            "reference": sample.target,
            "a": sample.sources[:, 0],
            "b": sample.sources[:, 1],
            "noise": noise,
        },
    )
    assert (
        main(
            [
                "fit",
                f"data.path={path}",
                "data.sources=[a,b,noise]",
                "fusion.n_bootstrap=30",
                "evaluate.n_bootstrap=200",
                *_dirs(tmp_path),
            ]
        )
        == 0
    )
    fusion = json.loads((tmp_path / "reports" / "metrics.json").read_text())["fusion"]
    assert fusion["scale"] == "calibrated" and fusion["objective"] in {"rank", "score"}
    assert set(fusion["objective_held_out_combined"]) == {"rank", "score"}
    for w in fusion["weights"].values():
        assert w["ci_low"] <= w["value"] <= w["ci_high"]
    adds = {k: v["spearman"] for k, v in fusion["drop_one_contribution"].items()}
    assert adds["a"]["ci_low"] > 0.05 and adds["b"]["ci_low"] > 0  # each real view adds rank agreement
    assert (
        adds["noise"]["ci_low"] < 0 < adds["noise"]["ci_high"] and abs(adds["noise"]["value"]) < 0.01
    )  # pure noise adds nothing


def test_twenty_pairs_warn_with_interval_width(tmp_path, capsys):
    from pipeline.data.table import write_table

    rng = np.random.default_rng(0)
    x = rng.uniform(size=20)
    table = write_table(
        tmp_path / "t.csv",
        {
            "query_id": [f"q{i // 5}" for i in range(20)],
            "doc_id": [str(i) for i in range(20)],
            "reference": x**2,
            "local": x,
        },
    )
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


def test_dvc_pipeline_stages_exist_and_their_deps_are_in_the_repo(repo_root):
    """Every stage runs `python -m pipeline <stage> --params params.yaml`; every dependency is
    in the repository or produced by an earlier stage (templates resolved from params.yaml)."""
    import re

    from pipeline.config.compose import load_params

    params = yaml.safe_load((repo_root / "params.yaml").read_text())

    def resolve(text: str) -> str:
        def value(match):
            node = params
            for part in match.group(1).split("."):
                node = node[part]
            return str(node)

        return re.sub(r"\$\{([^}]+)\}", value, text)

    spec = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    outs = lambda stage: [resolve(next(iter(o)) if isinstance(o, dict) else o) for o in stage.get("outs", [])]  # noqa: E731
    produced = {out for stage in spec["stages"].values() for out in outs(stage)}
    for name, stage in spec["stages"].items():
        cmd = stage["cmd"].split()
        assert cmd[:3] == ["python", "-m", "pipeline"] and cmd[3] in STAGES, name
        assert cmd[4:] == ["--params", "params.yaml"], name
        for dep in stage.get("deps", []):
            dep = resolve(dep)
            assert (repo_root / dep).exists() or dep in produced, f"{name}: missing dep {dep}"
        for key in stage.get("params", []):
            node = params
            for part in key.split("."):
                assert part in node, f"{name}: params key {key} is not in params.yaml"
                node = node[part]
    load_params(repo_root / "params.yaml")  # valid against the schema


def test_stage_help_lists_its_keys_with_defaults_ranges_and_choices():
    out = subprocess.run(
        [sys.executable, "-m", "pipeline", "fit", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "evaluate.n_splits=5  (>= 2)" in out and "evaluate.confidence=0.95  (> 0 and < 1)" in out
    assert "calibrator.family=auto  (auto | poly | isotonic | sigmoid | identity)" in out
    assert "api." not in out  # only the sections fit reads
    collect_help = subprocess.run(
        [sys.executable, "-m", "pipeline", "collect", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert (
        "api.rpm=2000.0  (> 0)" in collect_help
        and "local.dtype=float32  (float32 | bfloat16 | float16)" in collect_help
    )


def test_the_report_reads_in_a_100_column_terminal_with_defined_footnotes(tmp_path, capsys):
    assert main(["fit", "data=demo-fusion", "export.name=fused", *_dirs(tmp_path)]) == 0
    out = capsys.readouterr()
    lines = (out.out + out.err).splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    text = " ".join(line.strip() for line in out.out.splitlines())
    assert "combined = (score corr + rank sim) / 2 of the same row" in text
    # the ties footnote appears exactly for the calibrated rows whose top-3 overlap fell below raw
    configs = json.loads((tmp_path / "reports" / "metrics.json").read_text())["configurations"]
    for column in ("local", "local_minilm"):
        lower = (
            configs[f"calibrated {column}"]["metrics"]["topk"]["value"]
            < configs[f"raw {column}"]["metrics"]["topk"]["value"]
        )
        note = f"'calibrated {column}' has lower top-3 overlap than raw: its calibrator maps nearby scores to one value"
        assert (note in text) == lower, column
    assert "(auto picks per fold by held-out error; the export refits the choice on all rows)" in text
    assert "'fused local+local_minilm': family per fold" in text and "mean fusion weights local=" in text


def test_plots_show_the_identity_the_family_the_models_and_only_the_observed_range():
    from pipeline.fit.plots import calibration_figure, rank_agreement_figure

    x = np.linspace(0.1, 0.9, 50)
    fig = calibration_figure(
        x,
        x**2,
        x,
        x**2,
        x_label="local score (local: models/demo-reranker/v1)",
        y_label="reference score (reference: demo/qwen3-reranker-tiny)",
        title="calibrated local: poly, degree 3",
    )
    ax = fig.axes[0]
    assert "identity (no calibration)" in [line.get_label() for line in ax.get_lines()]
    assert "poly, degree 3" in ax.get_title() and "models/demo-reranker/v1" in ax.get_xlabel()
    ecdf = rank_agreement_figure(
        {"raw local": np.array([0.4, 0.7, np.nan, 0.9]), "calibrated local": np.array([0.5, 0.8, 0.9, 1.0])}, title="t"
    )
    ax = ecdf.axes[0]
    assert ax.get_xlim()[0] == pytest.approx(0.38) and ax.get_xlim()[1] == 1.0  # no empty -1..0.4 stretch
    assert [line.get_label().split(" (")[0] for line in ax.get_lines()] == ["raw local", "calibrated local"]


def test_the_ties_footnote_names_a_calibrated_row_whose_top_k_fell_below_raw():
    from types import SimpleNamespace as NS

    from pipeline.fit.report import footnotes

    def row(name: str, kind: str, topk: float) -> NS:
        return NS(name=name, kind=kind, sources=["local"], metrics={"topk": NS(value=topk)}, details={})

    settings = {"confidence": 0.95, "n_bootstrap": 10, "top_k": 3, "calibrator": "isotonic"}
    report = NS(
        settings=settings,
        n_splits=5,
        n_rows=40,
        n_queries=4,
        fusion=None,
        decisions=[],
        results=[row("raw local", "raw", 0.8), row("calibrated local", "calibrated", 0.7)],
    )
    assert any(n.startswith("'calibrated local' has lower top-3 overlap than raw") for n in footnotes(report))
    report.results[1].metrics["topk"].value = 0.8
    assert not any("lower top-3" in n for n in footnotes(report))
