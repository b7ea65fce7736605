"""Paired-score table validation: every bad input is a clear error naming file, line and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.data.table import TableError, read_table, write_table


def _csv(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD = "query_id,doc_id,reference,local\nq1,d1,0.9,0.8\nq1,d2,0.1,0.3\nq2,d1,0.5,0.5\nq2,d2,0.4,0.6\n"


def read(path, **kw):
    return read_table(path, target="reference", sources=kw.pop("sources", ["local"]), **kw)


def test_reads_a_valid_table(tmp_path):
    t = read(_csv(tmp_path, GOOD))
    assert t.n_rows == 4 and t.n_queries == 2 and t.small_queries() == 0
    np.testing.assert_array_equal(t.target, [0.9, 0.1, 0.5, 0.4])
    assert t.sources.shape == (4, 1)
    assert list(t.group_codes()) == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "text, match",
    [
        ("query_id,doc_id,reference\nq1,d1,0.9\n", r"t\.csv: missing column\(s\) \['local'\]"),
        (
            "query_id,doc_id,reference,local\nq1,d1,0.9,high\nq1,d2,0.1,0.3\n",
            r"column 'local': line 2: non-numeric value 'high'",
        ),
        ("query_id,doc_id,reference,local\nq1,d1,0.9,0.2\nq1,d2,,0.3\n", r"column 'reference': line 3: missing value"),
        (
            "query_id,doc_id,reference,local\nq1,d1,nan,0.2\nq1,d2,0.5,0.3\n",
            r"column 'reference': line 2: nan is not a finite number",
        ),
        (
            "query_id,doc_id,reference,local\nq1,d1,0.1,inf\nq1,d2,0.5,0.3\n",
            r"column 'local': line 2: inf is not a finite number",
        ),
        (
            "query_id,doc_id,reference,local\nq1,d1,0.1,0.2\nq1,d1,0.5,0.3\n",
            r"line 3: duplicate \(query_id, doc_id\) = \('q1', 'd1'\), first seen at line 2",
        ),
        ("query_id,doc_id,reference,local\n,d1,0.1,0.2\n", r"line 2, column 'query_id': empty id"),
        ("query_id,doc_id,reference,local\n", r"no rows"),
    ],
)
def test_bad_csv_inputs_name_file_line_and_column(tmp_path, text, match):
    with pytest.raises(TableError, match=match):
        read(_csv(tmp_path, text))


def test_many_problems_are_listed_with_a_count(tmp_path):
    rows = "".join(f"q1,d{i},x,0.1\n" for i in range(9))
    with pytest.raises(TableError, match=r"and 4 more"):
        read(_csv(tmp_path, "query_id,doc_id,reference,local\n" + rows))


def test_single_document_queries_are_kept_and_counted(tmp_path):
    t = read(_csv(tmp_path, GOOD + "q3,d1,0.2,0.2\n"))
    assert t.n_rows == 5 and t.small_queries() == 1


def test_parquet_round_trip_and_row_numbers(tmp_path):
    path = write_table(
        tmp_path / "t.parquet",
        {"query_id": ["a", "a"], "doc_id": ["1", "2"], "reference": [0.1, 0.2], "local": [0.3, np.nan]},
    )
    with pytest.raises(TableError, match=r"t\.parquet: column 'local': row 2: nan is not a finite number"):
        read(path)
    ok = write_table(
        tmp_path / "ok.parquet",
        {"query_id": ["a", "a"], "doc_id": ["1", "2"], "reference": [0.1, 0.2], "local": [0.3, 0.4]},
    )
    assert read(ok).n_rows == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sources": []}, "data.sources is empty"),
        ({"sources": ["reference"]}, "both the target and a source"),
        ({"sources": ["local", "local"]}, "twice"),
    ],
)
def test_bad_column_configuration(tmp_path, kwargs, match):
    with pytest.raises(TableError, match=match):
        read(_csv(tmp_path, GOOD), **kwargs)


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(TableError, match="not found"):
        read(tmp_path / "nope.csv")
    with pytest.raises(TableError, match="data.format"):
        read(_csv(tmp_path, GOOD, "t.json"))
