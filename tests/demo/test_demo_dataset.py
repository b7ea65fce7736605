"""The bundled demo dataset: the seeds validate, the generator reproduces the committed files, and
the two parts have the shape the demo promises (size, languages, categories, labels, no shared
query strings or templates)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline.data.dataset import load_dataset
from pipeline.demo.dataset import CALIBRATION_TEMPLATES, TRAIN_TEMPLATES, build
from pipeline.demo.seeds import CATEGORIES, SeedError, load_category, load_seeds

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "data" / "demo" / "seeds"
CALIBRATION = REPO / "data" / "demo" / "calibration.jsonl"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Both parts generated afresh (the training part is not committed: DVC rebuilds it)."""
    out = tmp_path_factory.mktemp("dataset")
    summary = build(SEEDS, out / "c.jsonl", out / "t.jsonl")
    return out, summary


def test_the_generator_reproduces_the_committed_calibration_part_and_is_deterministic(built, tmp_path):
    out, summary = built
    assert (out / "c.jsonl").read_bytes() == CALIBRATION.read_bytes()
    assert summary["calibration"]["queries"] == len(load_dataset(CALIBRATION).queries)
    build(SEEDS, tmp_path / "c.jsonl", tmp_path / "t.jsonl")
    assert (tmp_path / "t.jsonl").read_bytes() == (out / "t.jsonl").read_bytes()


def test_calibration_part_size_languages_categories_and_labels():
    ds = load_dataset(CALIBRATION)
    assert len(ds.queries) >= 150 and ds.n_pairs >= 1500 and ds.n_labelled == ds.n_pairs
    records = [json.loads(line) for line in CALIBRATION.read_text(encoding="utf-8").splitlines()]
    assert Counter(r["meta"]["lang"] for r in records).keys() == {"zh", "en", "mixed"}
    assert set(r["meta"]["category"] for r in records) == set(CATEGORIES)
    for r in records:  # one answer, one partial answer, three on-topic, five off-topic documents
        assert sorted(d["label"] for d in r["documents"]) == [0, 0, 0, 0, 0, 1, 1, 1, 2, 3], r["query_id"]
    texts = [d["text"] for r in records for d in r["documents"]]
    assert any("\u4e00" <= ch <= "\u9fff" for t in texts for ch in t)  # Chinese
    assert any("def " in t or "SELECT" in t for t in texts)  # code
    assert any("|---" in t or "| ---" in t or "|:--" in t for t in texts)  # tables
    assert any(t != t.strip() for t in texts)  # some carry the whitespace of the page they came from


def test_training_part_shares_no_query_string_or_template_with_calibration(built):
    calibration = [json.loads(line) for line in CALIBRATION.read_text(encoding="utf-8").splitlines()]
    train = [json.loads(line) for line in (built[0] / "t.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(train) > len(calibration)
    cal_queries = {r["query"].strip() for r in calibration}
    assert not cal_queries & {r["query"].strip() for r in train}
    # every training query is wrapped in a training-only template, never the calibration one ("{q}")
    assert not {t for ts in CALIBRATION_TEMPLATES.values() for t in ts} & {
        t for ts in TRAIN_TEMPLATES.values() for t in ts
    }
    for r in train:
        templates = TRAIN_TEMPLATES[r["meta"]["lang"]]
        assert any(
            r["query"].strip().startswith(t.split("{q}")[0].strip())
            and r["query"].strip().endswith(t.split("{q}")[1].strip())
            for t in templates
        ), r["query"]


def test_every_seed_file_is_valid_and_balanced():
    topics = load_seeds(SEEDS)
    for category in CATEGORIES:
        mine = [t for t in topics if t.category == category]
        assert Counter(t.lang for t in mine) == {"zh": 2, "en": 2, "mixed": 2}, category


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["topics"][0]["facts"][0].pop("partial"), "facts[0]: expected exactly the keys"),
        (lambda d: d["topics"][0]["facts"][1].update(questions=["same", "same"]), "the two phrasings are identical"),
        (lambda d: d["topics"][0].update(lang="fr"), ".lang: must be one of zh, en, mixed"),
        (lambda d: d["topics"][0]["facts"][2].update(answer=" padded "), "leading/trailing whitespace"),
        (lambda d: d["topics"][1]["facts"][0].update(answer=d["topics"][0]["facts"][0]["answer"]), "same text as"),
    ],
)
def test_bad_seed_files_name_the_topic_and_fact(tmp_path, mutate, message):
    data = json.loads((SEEDS / "code.json").read_text(encoding="utf-8"))
    mutate(data)
    path = tmp_path / "code.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(SeedError, match=re.escape(message)) as info:
        load_category(path)
    assert str(path) in str(info.value)
