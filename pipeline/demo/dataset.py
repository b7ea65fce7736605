"""Expand the hand-written seeds (:mod:`pipeline.demo.seeds`) into the demo's two JSONL datasets.

Two parts that share no topic and no query template:

* **calibration** (``collect.dataset``): the queries whose local and reference scores are
  collected and calibrated. Each fact of a calibration topic gives two queries, its two
  hand-written questions as typed (template ``{q}``).
* **train**: the queries the demo reranker learns from. Each fact of a training topic gives six
  queries: both questions, each wrapped in three training-only templates ("请问{q}",
  "Question: {q}", ...).

Within each category and language, topics alternate between the parts in file order (first to
calibration, second to training, ...), so both parts cover every category and language.

Every query gets ten documents with graded relevance labels:

* 3: the fact's answer; 2: its partial answer;
* 1: the answers of three other facts of the same topic (on subject, not answering);
* 0: two texts of other topics of the same category and three of other categories (same part).

Documents are shuffled per query. Like text extracted from real pages, some carry surrounding
whitespace: code, tables and dialogues end with a newline, and a fixed share of the other
passages and queries end with a newline or a space, or start with spaces. Servers that strip text
before tokenising score those differently (see :mod:`pipeline.reference.server`).

Everything is a pure function of the seeds and ``seed``: the same seeds give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.demo.seeds import Topic, load_seeds

#: the part each topic of a (category, language) goes to, by its position in the file
PARTS = ("calibration", "train")

#: the calibration queries are the questions exactly as written
CALIBRATION_TEMPLATES = {"zh": ["{q}"], "en": ["{q}"], "mixed": ["{q}"]}
#: training-only wrappers, so the two parts never share a query template
TRAIN_TEMPLATES = {
    "zh": ["请问{q}", "我想了解一下：{q}", "{q} 有人知道吗"],
    "en": ["Question: {q}", "I want to know: {q}", "{q} - any ideas?"],
    "mixed": ["请问{q}", "我想了解一下：{q}", "{q} 有人知道吗"],
}
#: categories whose passages keep the trailing newline of the block they were cut from
BLOCK_CATEGORIES = {"code", "table", "dialogue"}

N_SAME_TOPIC = 3
N_SAME_CATEGORY = 2
N_OTHER_CATEGORY = 3


@dataclass(frozen=True)
class Passage:
    id: str
    text: str
    topic: Topic
    fact: int


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts`` (no global RNG, stable across Pythons)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _dress_passage(text: str, category: str, passage_id: str) -> str:
    """Surrounding whitespace as text cut from real pages has it (deterministic per passage)."""
    if category in BLOCK_CATEGORIES:
        return text + "\n"
    u = _unit("passage-ws", passage_id)
    if u < 0.15:
        return text + "\n"
    if u < 0.22:
        return "  " + text
    if u < 0.30:
        return text + " "
    return text


def _dress_query(text: str, query_id: str) -> str:
    return text + " " if _unit("query-ws", query_id) < 0.12 else text


def split_topics(topics: Sequence[Topic]) -> dict[str, list[Topic]]:
    """Topics of each part: within a (category, language), alternate by file order."""
    parts: dict[str, list[Topic]] = {p: [] for p in PARTS}
    seen: dict[tuple[str, str], int] = defaultdict(int)
    for topic in topics:
        key = (topic.category, topic.lang)
        parts[PARTS[seen[key] % len(PARTS)]].append(topic)
        seen[key] += 1
    return parts


def _passages(topics: Sequence[Topic]) -> tuple[dict[str, list[Passage]], list[Passage]]:
    """Answers by topic id, and every passage (answers and partials) of the part."""
    answers: dict[str, list[Passage]] = {}
    everything: list[Passage] = []
    for topic in topics:
        answers[topic.id] = []
        for f, fact in enumerate(topic.facts, start=1):
            for kind, text in (("a", fact.answer), ("p", fact.partial)):
                pid = f"{topic.id}/f{f}/{kind}"
                passage = Passage(pid, _dress_passage(text, topic.category, pid), topic, f)
                everything.append(passage)
                if kind == "a":
                    answers[topic.id].append(passage)
    return answers, everything


def _documents(
    topic: Topic, f: int, answers: dict[str, list[Passage]], everything: list[Passage], rng: random.Random
) -> list[dict[str, Any]]:
    own = answers[topic.id]
    answer = own[f - 1]
    partial = next(p for p in everything if p.topic.id == topic.id and p.fact == f and p.id.endswith("/p"))
    others = [p for p in own if p.fact != f]
    same_category = [p for p in everything if p.topic.category == topic.category and p.topic.id != topic.id]
    other_category = [p for p in everything if p.topic.category != topic.category]
    picked = [(answer, 3), (partial, 2)]
    picked += [(p, 1) for p in rng.sample(others, min(N_SAME_TOPIC, len(others)))]
    picked += [(p, 0) for p in rng.sample(same_category, min(N_SAME_CATEGORY, len(same_category)))]
    picked += [(p, 0) for p in rng.sample(other_category, min(N_OTHER_CATEGORY, len(other_category)))]
    rng.shuffle(picked)
    return [
        {"doc_id": p.id, "text": p.text, "label": label, "meta": {"category": p.topic.category}} for p, label in picked
    ]


def build_part(topics: Sequence[Topic], part: str, seed: int = 0) -> list[dict[str, Any]]:
    """The JSONL records of one part (``calibration`` or ``train``).

    Calibration: one of each fact's two questions, exactly as typed (alternating first and second
    phrasings by fact). Training: both questions, each in three training-only templates, so no
    calibration query string ever occurs in training (the question text does, wrapped).
    """
    templates = CALIBRATION_TEMPLATES if part == "calibration" else TRAIN_TEMPLATES
    answers, everything = _passages(topics)
    records = []
    for topic in topics:
        for f, fact in enumerate(topic.facts, start=1):
            for qn in questions_for(part, f):
                question = fact.questions[qn - 1]
                for tn, template in enumerate(templates[topic.lang], start=1):
                    qid = f"{topic.id}-f{f}-q{qn}" + (f"-t{tn}" if len(templates[topic.lang]) > 1 else "")
                    rng = random.Random(f"{seed}|{part}|{qid}")
                    records.append(
                        {
                            "query_id": qid,
                            "query": _dress_query(template.format(q=question), qid),
                            "documents": _documents(topic, f, answers, everything, rng),
                            "meta": {"category": topic.category, "lang": topic.lang, "topic": topic.id, "part": part},
                        }
                    )
    return records


def questions_for(part: str, fact: int) -> tuple[int, ...]:
    """Which of a fact's two questions (1, 2) give queries in ``part``: calibration takes one as
    typed (alternating by fact), training both, always inside a training template."""
    if part == "calibration":
        return (1 if fact % 2 else 2,)
    return (1, 2)


def write_jsonl(path: str | Path, records: Sequence[dict[str, Any]]) -> Path:
    from pipeline.core.files import atomic_write_text

    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records)
    return atomic_write_text(path, text)


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Counts per part: queries, pairs, categories, languages, labels."""
    by = lambda key: dict(sorted(_count(r["meta"][key] for r in records).items()))  # noqa: E731
    labels = _count(d["label"] for r in records for d in r["documents"])
    return {
        "queries": len(records),
        "pairs": sum(len(r["documents"]) for r in records),
        "categories": by("category"),
        "languages": by("lang"),
        "labels": dict(sorted(labels.items())),
    }


def _count(values) -> dict[Any, int]:
    out: dict[Any, int] = defaultdict(int)
    for v in values:
        out[v] += 1
    return dict(out)


def build(seeds_dir: str | Path, calibration_path: str | Path, train_path: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write both parts; returns their summaries."""
    topics = load_seeds(seeds_dir)
    out = {}
    for part, path in (("calibration", calibration_path), ("train", train_path)):
        records = build_part(topics, part, seed)
        write_jsonl(path, records)
        out[part] = {"path": str(path), **summarize(records)}
    return out
