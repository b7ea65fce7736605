"""Dataset JSONL schema: the demo file is valid; every problem names file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.data.dataset import DatasetError, load_dataset

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path, *lines) -> Path:
    path = tmp_path / "ds.jsonl"
    path.write_text(
        "\n".join(row if isinstance(row, str) else json.dumps(row, ensure_ascii=False) for row in lines) + "\n",
        encoding="utf-8",
    )
    return path


def group(qid="q1", docs=None, **extra):
    docs = (
        docs if docs is not None else [{"doc_id": "d1", "text": "alpha"}, {"doc_id": "d2", "text": "beta", "label": 2}]
    )
    return {"query_id": qid, "query": "what?", "documents": docs, **extra}


def test_valid_file_with_optional_fields(tmp_path):
    path = write(tmp_path, group(meta={"lang": "en"}), "", group("q2", [{"doc_id": 7, "text": "x", "meta": {}}]))
    ds = load_dataset(path)
    assert [q.query_id for q in ds.queries] == ["q1", "q2"]
    assert ds.queries[1].documents[0].doc_id == "7"  # integer ids become strings
    assert ds.queries[0].documents[1].label == 2.0 and ds.queries[0].documents[0].label is None
    assert ds.n_labelled == 1 and ds.queries[1].line == 3


def test_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes("\ufeff".encode() + json.dumps(group()).encode() + b"\n")
    assert len(load_dataset(path).queries) == 1


@pytest.mark.parametrize(
    "line, words",
    [
        ('{"query_id": "q1", "query": "x", ', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ({"query": "x", "documents": []}, "query_id: missing"),
        (group(docs=[]), "documents: must be a non-empty list"),
        (group(docs=[{"doc_id": "d1"}]), "documents[0].text: missing"),
        (group(docs=[{"doc_id": "d1", "text": "  "}]), "documents[0].text: empty text"),
        (group(docs=[{"doc_id": "d1", "text": 5}]), "documents[0].text: must be a string"),
        (
            group(docs=[{"doc_id": "d1", "text": "a"}, {"doc_id": "d1", "text": "b"}]),
            "documents[1].doc_id: duplicate doc_id 'd1'",
        ),
        (group(docs=[{"doc_id": "d1", "text": "a", "label": "high"}]), "documents[0].label: must be a finite number"),
        (group(docs=[{"doc_id": "d1", "text": "a", "label": True}]), "label: must be a finite number"),
        (group(docs=[{"doc_id": None, "text": "a"}]), "documents[0].doc_id: must be a string or integer"),
        (group(docs=[{"doc_id": "d1", "txt": "a"}]), "documents[0]: txt: unknown key"),
        ({**group(), "docs": []}, "docs: unknown key"),
        ({**group(), "query": ""}, "query: empty text"),
    ],
)
def test_problems_name_file_line_and_field(tmp_path, line, words):
    path = write(tmp_path, group("q0"), line)
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    message = str(info.value)
    assert f"{path}:2:" in message and words in message


def test_duplicate_query_id_points_to_first_line(tmp_path):
    path = write(tmp_path, group("q1"), group("q2"), group("q1"))
    with pytest.raises(DatasetError, match=r"ds.jsonl:3: query_id: duplicate query_id 'q1' \(first on line 1\)"):
        load_dataset(path)


def test_all_problems_reported_at_once(tmp_path):
    path = write(tmp_path, "not json", group(docs=[]), group("q3", [{"doc_id": "d", "text": ""}]))
    message = str(pytest.raises(DatasetError, load_dataset, path).value)
    assert "3 problem(s)" in message and ":1:" in message and ":2:" in message and ":3:" in message


def test_not_utf8_empty_and_missing_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(json.dumps(group()).encode() + b"\n\xff\xfe\n")
    with pytest.raises(DatasetError, match=r"bad.jsonl:2: not valid UTF-8"):
        load_dataset(bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DatasetError, match="no queries"):
        load_dataset(empty)
    with pytest.raises(DatasetError, match="dataset not found"):
        load_dataset(tmp_path / "nope.jsonl")


def test_sample_is_deterministic_nested_and_keeps_file_order(tmp_path):
    path = write(tmp_path, *[group(f"q{i:02d}") for i in range(30)])
    ds = load_dataset(path)
    five, ten = ds.sample(5, seed=0), ds.sample(10, seed=0)
    ids = lambda d: [q.query_id for q in d.queries]  # noqa: E731
    assert len(five.queries) == 5 and ids(five) == sorted(ids(five))  # file order
    assert set(ids(five)) <= set(ids(ten))  # growing the sample only adds queries (cached scores stay useful)
    assert ids(ds.sample(5, seed=0)) == ids(five) and ids(ds.sample(5, seed=1)) != ids(five)
    assert ds.sample(None) is ds and ds.sample(30) is ds
    with pytest.raises(DatasetError, match="at least 1 query"):
        ds.sample(0)


def test_demo_calibration_dataset_is_valid():
    ds = load_dataset(REPO / "data" / "demo" / "calibration.jsonl")
    assert len(ds.queries) >= 150 and ds.n_pairs >= 1500 and ds.n_labelled == ds.n_pairs
