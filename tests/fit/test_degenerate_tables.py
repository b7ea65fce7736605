"""Degenerate tables and settings that only fail against a table: one line, exit 2, before any
fitting; survivable oddities: the project's own WARNING lines, each once, never a Python warning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.__main__ import main


def table(tmp_path: Path, n_queries: int, docs: int, *, local=None, name="t.csv", parquet_strings=False) -> Path:
    rng = np.random.default_rng(0)
    n = n_queries * docs
    frame = pd.DataFrame(
        {
            "query_id": [f"q{i // docs}" for i in range(n)],
            "doc_id": [f"d{i}" for i in range(n)],
            "local": rng.random(n) if local is None else np.full(n, local),
            "reference": rng.random(n),
        }
    )
    path = tmp_path / name
    if parquet_strings:
        frame["local"] = frame["local"].astype(str)
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


def fit(tmp_path, path, *extra) -> list[str]:
    return [
        "fit",
        f"data.path={path}",
        f"export.root={tmp_path / 'a'}",
        f"report.dir={tmp_path / 'r'}",
        "evaluate.n_bootstrap=100",
        *extra,
    ]


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (lambda p: table(p, 3, 1), [], "3 pairs; fitting and evaluating a calibrator needs at least 4"),
        (lambda p: table(p, 1, 8), [], "1 query; held-out evaluation needs at least 2"),
        (lambda p: table(p, 10, 4), ["calibrator.y_min=2"], "calibrator.y_min: the output range [2, "),
        (lambda p: table(p, 10, 4), ["calibrator.y_max=-1"], "calibrator.y_max: the output range ["),
        (
            lambda p: table(p, 10, 4, name="t.parquet", parquet_strings=True),
            [],
            "column 'local': a parquet score column must be numeric, it holds object values",
        ),
    ],
)
def test_a_table_the_settings_cannot_use_is_one_line_and_exit_2(tmp_path, capsys, make, extra, message):
    path = make(tmp_path)
    assert main(fit(tmp_path, path, *extra)) == 2
    out = capsys.readouterr()
    err = out.err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert "evaluating" not in out.out and not (tmp_path / "a").exists()


def test_survivable_oddities_are_warned_once_in_the_projects_style(tmp_path, capsys):
    assert main(fit(tmp_path, table(tmp_path, 2, 2), "evaluate.n_splits=9")) == 0  # each fold trains on 1 query
    err = capsys.readouterr().err.replace("\n  ", " ")  # long warnings wrap at 100 columns
    lines = [line for line in err.splitlines() if line.strip()]
    assert all(line.startswith(("WARNING: ", "note: ")) for line in lines), err  # no Python warning text
    assert len(lines) == len(set(lines))
    assert "evaluate.n_splits=9 but the table has 2 queries: 2 folds used" in err
    assert (
        err.count("auto calibrator: need at least 2 queries for grouped cross-validation, got 1; keeping identity") == 1
    )
    assert "UserWarning" not in err and "warnings.warn" not in err


def test_a_constant_source_is_named_and_no_interval_reads_nan(tmp_path, capsys):
    assert main(fit(tmp_path, table(tmp_path, 12, 5, local=0.5))) == 0
    err = capsys.readouterr().err
    assert "WARNING: source 'local' is constant (0.5) over the whole table" in err
    assert "nan" not in err.lower().replace("n/a", "")


def two_source_table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    n = 60
    frame = pd.DataFrame(
        {
            "query_id": [f"q{i // 6}" for i in range(n)],
            "doc_id": [f"d{i}" for i in range(n)],
            "local": rng.random(n),
            "logits": rng.normal(0, 3, n),
            "reference": rng.random(n),
        }
    )
    frame.to_csv(tmp_path / "two.csv", index=False)
    return tmp_path / "two.csv"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["+data.score_types.logits=probability"], "'logits' is declared a probability but has values outside [0, 1]"),
        (
            ["+data.score_types.nope=probability"],
            "data.score_types names ['nope'], which are not among the table's columns",
        ),
        (["+data.score_types.logits=odds"], "data.score_types.logits"),
        (["data.score_types.logits=probability"], "with +data.score_types.logits=probability"),
    ],
)
def test_a_score_type_the_table_contradicts_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    path = two_source_table(tmp_path)
    assert main(fit(tmp_path, path, "data.sources=[local,logits]", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert not (tmp_path / "a").exists()


def test_inferred_score_types_are_a_note_once(tmp_path, capsys):
    path = two_source_table(tmp_path)
    assert main(fit(tmp_path, path, "data.sources=[local,logits]", "fusion.n_bootstrap=20")) == 0
    err = capsys.readouterr().err.replace("\n  ", " ")
    assert (
        err.count(
            "score types inferred from the values (all in [0, 1] = probability): local=probability, "
            "logits=unbounded, reference=probability; set data.score_types.<column> to override"
        )
        == 1
    )


def test_center_query_with_the_rank_objective_is_noted_not_silently_ignored(tmp_path, capsys):
    path = two_source_table(tmp_path)
    assert (
        main(
            fit(
                tmp_path,
                path,
                "data.sources=[local,logits]",
                "fusion.n_bootstrap=0",
                "fusion.objective=rank",
                "fusion.center=query",
            )
        )
        == 0
    )
    err = capsys.readouterr().err.replace("\n  ", " ")
    assert err.count("WARNING: fusion.center=query has no effect with fusion.objective=rank") == 1
