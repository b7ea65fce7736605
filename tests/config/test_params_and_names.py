"""params.yaml is exactly what conf/ composes to (DVC's composer and ours), stages read it with
--params, and each fit writes to its own artifact and report folders without silently replacing
another table's artifact."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.__main__ import main
from pipeline.config.compose import ConfigError, compose_config, load_params, to_yaml
from pipeline.config.fit import artifact_name, report_dir

REPO = Path(__file__).resolve().parents[2]


def test_committed_params_yaml_is_what_dvc_composes_from_conf(tmp_path, monkeypatch):
    """The committed file, our `python -m pipeline params` and DVC's Hydra composition agree to the byte."""
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(REPO / "conf"), None, "config", str(REPO), [])
    committed = (REPO / "params.yaml").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == committed, "params.yaml is stale: run `python -m pipeline params`"
    assert to_yaml(compose_config()) == committed
    monkeypatch.chdir(tmp_path)
    assert main(["params"]) == 0 and (tmp_path / "params.yaml").read_text(encoding="utf-8") == committed


def test_dvc_composes_overrides_through_the_same_schema(tmp_path):
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / "params.yaml"
    compose_and_dump(
        out,
        str(REPO / "conf"),
        None,
        "config",
        str(REPO),
        ["calibrator=poly", "calibrator.degree=3", "name=sf", "local.instruction=Find it"],
    )
    cfg = load_params(out)
    assert cfg.calibrator.family.value == "poly" and cfg.calibrator.degree == 3 and cfg.local.instruction == "Find it"
    assert cfg.collect.output == "data/sf/paired_scores.csv" and cfg.data.path == cfg.collect.output
    assert artifact_name(cfg) == "sf" and report_dir(cfg) == "reports/sf"
    with pytest.raises(Exception, match="degre"):  # a typo fails in DVC's composer too (schema registered)
        compose_and_dump(out, str(REPO / "conf"), None, "config", str(REPO), ["calibrator.degre=3"])


def test_load_params_validates_and_takes_only_key_value_overrides(tmp_path):
    cfg = load_params(REPO / "params.yaml", ["calibrator.degree=5", "evaluate.top_k=4"])
    assert cfg.calibrator.degree == 5 and cfg.evaluate.top_k == 4
    with pytest.raises(ConfigError, match="only key=value overrides apply"):
        load_params(REPO / "params.yaml", ["calibrator=poly"])
    with pytest.raises(ConfigError, match="did you mean 'calibrator.degree'"):
        load_params(REPO / "params.yaml", ["calibrator.degre=5"])
    with pytest.raises(ConfigError, match="no such file"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("calibrator:\n  family: cubic\n")
    with pytest.raises(ConfigError, match="cubic"):
        load_params(bad)


@pytest.mark.parametrize(
    "path, name",
    [
        ("data/demo/paired_scores.csv", "demo"),
        ("data/sf-4b/paired_scores.parquet", "sf-4b"),
        ("/home/me/tables/my scores.parquet", "my_scores"),
        ("paired_scores.csv", "paired_scores"),
    ],
)
def test_artifact_and_report_names_derive_from_the_table(path, name):
    cfg = compose_config([f"data.path='{path}'"])
    assert artifact_name(cfg) == name and report_dir(cfg) == f"reports/{name}"
    named = compose_config([f"data.path='{path}'", "export.name=prod", "report.dir=/tmp/r"])
    assert artifact_name(named) == "prod" and report_dir(named) == "/tmp/r"


def _table(tmp_path: Path, name: str) -> Path:
    from pipeline.data.table import write_table

    rows = [(f"q{q}", f"d{d}", (q + d) % 7 / 7, ((q + d) % 7 / 7) ** 2) for q in range(12) for d in range(5)]
    return write_table(
        tmp_path / name,
        {
            "query_id": [r[0] for r in rows],
            "doc_id": [r[1] for r in rows],
            "local": [r[2] for r in rows],
            "reference": [r[3] for r in rows],
        },
    )


def test_a_fit_never_silently_replaces_another_tables_artifact(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = _table(tmp_path / "a", "paired_scores.csv")
    other = _table(tmp_path / "b", "shared.csv")
    common = ["export.root=artifacts", "evaluate.n_bootstrap=50"]
    assert main(["fit", f"data.path={first}", *common]) == 0
    assert (tmp_path / "artifacts" / "a" / "manifest.json").is_file() and (
        tmp_path / "reports" / "a" / "summary.json"
    ).is_file()
    assert main(["fit", f"data.path={first}", *common]) == 0  # the same table again: replaced, and said so
    assert "replacing artifacts/a (fitted on " in capsys.readouterr().out.replace("\n  ", " ")
    assert main(["fit", f"data.path={other}", "export.name=a", *common]) == 2  # another table: refused up front
    err = capsys.readouterr().err.replace("\n  ", " ")
    assert "artifacts/a holds a calibrator fitted on" in err and "export.replace=true" in err
    assert not (tmp_path / "reports" / "a" / "metrics.json").read_text().count(str(other))
    assert main(["fit", f"data.path={other}", "export.name=a", "export.replace=true", *common]) == 0
    assert json.loads((tmp_path / "artifacts" / "a" / "manifest.json").read_text())["data"]["path"] == str(other)


def test_a_bad_artifact_name_fails_before_the_evaluation(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    table = _table(tmp_path, "t.csv")
    assert main(["fit", f"data.path={table}", "export.name=../x"]) == 2
    out = capsys.readouterr()
    assert "artifact name '../x' must match" in out.err and "evaluating" not in out.out
    assert not (tmp_path / "reports").exists()


def test_params_override_file_only_with_a_file(capsys):
    assert main(["fit", "--params"]) == 2
    assert "--params needs a file" in capsys.readouterr().err
    assert main(["fit", "--params", os.devnull + "-missing"]) == 2


def test_a_stage_says_when_the_workspace_params_differ_from_conf(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text().replace("seed: 0", "seed: 1"))
    main(["export"])  # fails on the missing table; the note comes first
    assert "note: params.yaml differs from what conf/ composes to" in capsys.readouterr().err
    (tmp_path / "params.yaml").write_text((REPO / "params.yaml").read_text())
    main(["export"])
    assert "note: params.yaml" not in capsys.readouterr().err


def test_a_name_without_its_table_says_that_name_names_the_whole_run(capsys):
    """`fit name=try1` looks for data/try1/paired_scores.csv: the error says so, and how to name only
    the artifact (a newcomer's trial took `name=` for the artifact's name). A table path that does not
    come from the name gets the plain message."""
    assert main(["fit", "name=try1"]) == 2
    err = capsys.readouterr().err
    assert "data/try1/paired_scores.csv: paired-score table not found (data.path; name=try1 names the whole run" in err
    assert "use export.name=" in err
    assert main(["fit", "data.path=nowhere.csv"]) == 2
    assert capsys.readouterr().err.strip() == "error: nowhere.csv: paired-score table not found (data.path)"
