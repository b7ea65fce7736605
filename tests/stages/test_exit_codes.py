"""One exit-code convention for every stage (pipeline/core/errors.py): 0 ok, 1 the stage's own negative
verdict, 2 bad input, settings or environment -- with one ``error:`` line and nothing written.

Each stage is driven with one bad setting and one missing input file. The verdicts (exit 1) are
tested where they happen: check drift (tests/check/test_check.py), NOT ALIGNED
(tests/align/test_align.py), the embed-check gate (tests/embed_check/test_embed_check.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.__main__ import main
from pipeline.stages import STAGES


def _outputs(tmp: Path) -> list[str]:
    """Every place a stage writes, under tmp: a failing stage must leave it empty."""
    out = tmp / "out"
    return [
        f"report.dir={out / 'reports'}",
        f"export.root={out / 'artifacts'}",
        f"collect.output={out / 'data' / 't.csv'}",
        f"collect.cache={out / 'cache.sqlite'}",
        f"collect.versions={out / 'data' / 'versions.json'}",
        f"align.root={out / 'align'}",
        f"demo.calibration={out / 'demo' / 'calibration.jsonl'}",
        f"demo.train_dataset={out / 'demo' / 'train.jsonl'}",
        f"demo.model_dir={out / 'models'}",
        f"demo.model_reports={out / 'model-reports'}",
        "reference.model=models/demo-reranker/v1",
        "local.model=models/demo-reranker/v1",
        "collect.progress=false",
    ]


#: stage -> (an out-of-range setting of its own section, a missing input file, what the error names)
CASES = {
    "demo-dataset": ("demo.dataset_seed=-1", "demo.seeds={missing}", "no seed files"),
    "demo-train": ("demo.train.steps=0", "demo.train_dataset={missing}", "demo.train_dataset"),
    "resolve": ("collect.max_queries=0", "local.model={missing}", "no such directory"),
    "collect": ("collect.max_queries=0", "collect.dataset={missing}", "collect.dataset"),
    "plan": ("plan.pilot_pairs=0", "collect.dataset={missing}", "collect.dataset"),
    "fit": ("evaluate.n_bootstrap=-5", "data.path={missing}", "paired-score table not found"),
    "evaluate": ("evaluate.n_splits=1", "data.path={missing}", "paired-score table not found"),
    "export": ("calibrator.degree=0", "data.path={missing}", "paired-score table not found"),
    "check": ("check.queries=0", "check.artifact={missing}", "manifest.json: missing"),
    "align": ("align.sample_queries=1", "local.model={missing}", "no such directory"),
    "serve": ("serve.port=70000", "serve.artifact={missing}", "no such artifact directory"),
    "embed-check": ("embed_check.threshold=2", "embed_check.dataset={missing}", "embed_check.dataset"),
    "params": ("seed=-1", None, None),
}


def test_every_stage_is_covered():
    assert set(CASES) == set(STAGES)


def _run(stage: str, override: str, tmp_path: Path, capsys) -> tuple[int, str, str]:
    code = main([stage, *_outputs(tmp_path), override])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_error_line(err: str, needle: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error: ", "config error: "))]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert needle in errors[0], errors[0]


@pytest.mark.parametrize("stage", sorted(CASES))
def test_a_bad_setting_exits_2_in_one_line_before_any_work(stage, tmp_path, capsys):
    setting = CASES[stage][0]
    code, _, err = _run(stage, setting, tmp_path, capsys)
    assert code == 2
    _assert_one_error_line(err, setting.split("=")[0])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("stage", sorted(s for s, case in CASES.items() if case[1]))
def test_a_missing_input_exits_2_in_one_line_and_writes_nothing(stage, tmp_path, capsys):
    _, template, needle = CASES[stage]
    missing = tmp_path / "nowhere" / "input.jsonl"
    code, out, err = _run(stage, template.format(missing=missing), tmp_path, capsys)
    assert code == 2, out + err
    _assert_one_error_line(err, needle)
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()] if (tmp_path / "out").exists() else []
    assert written == [], written  # no report, table or artifact of a run that did not happen


def test_a_missing_params_file_exits_2_for_every_stage(tmp_path, capsys):
    for stage in STAGES:
        assert main([stage, "--params", str(tmp_path / "params.yaml")]) == 2
        _assert_one_error_line(capsys.readouterr().err, "no such file")
