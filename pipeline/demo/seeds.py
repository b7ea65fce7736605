"""Hand-written seed texts of the demo dataset (``data/demo/seeds/<category>.json``).

Each file holds one text category (technical documentation, news, dialogue, ...). A category
has topics; a topic is one subject (an entity, a product, a library) in one language, with
several *facts*: different aspects of that subject. A fact carries

* ``questions``: two natural phrasings of a search query about it;
* ``answer``: a passage that fully answers them (graded relevance 3);
* ``partial``: a passage about the same point that answers only in part (relevance 2).

The answers of the topic's other facts are on-subject but do not answer (relevance 1); texts of
other topics are irrelevant (0). :mod:`pipeline.demo.dataset` expands the seeds into the JSONL
datasets. This module only reads and validates them, naming file, topic and fact on error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import PipelineError

LANGUAGES = ("zh", "en", "mixed")
CATEGORIES = ("tech_docs", "code", "news", "dialogue", "product_faq", "table", "formula", "academic")
MIN_FACTS_PER_TOPIC = 4


class SeedError(PipelineError, ValueError):
    """A seed file is not valid; the message names the file, topic and fact."""


@dataclass(frozen=True)
class Fact:
    questions: tuple[str, ...]
    answer: str
    partial: str


@dataclass(frozen=True)
class Topic:
    id: str
    category: str
    lang: str
    title: str
    facts: tuple[Fact, ...]


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SeedError(f"{where}: must be a non-empty string")
    if value != value.strip():
        raise SeedError(f"{where}: leading/trailing whitespace (the generator adds any on purpose)")
    return value


def load_category(path: str | Path) -> list[Topic]:
    """Topics of one ``<category>.json`` file, validated."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SeedError(f"{path}: invalid JSON: {exc}") from None
    category = data.get("category") if isinstance(data, dict) else None
    if category not in CATEGORIES:
        raise SeedError(f"{path}: 'category' must be one of {', '.join(CATEGORIES)}, got {category!r}")
    if path.stem != category:
        raise SeedError(f"{path}: file name must be {category}.json")
    topics_raw = data.get("topics")
    if not isinstance(topics_raw, list) or not topics_raw:
        raise SeedError(f"{path}: 'topics' must be a non-empty list")
    topics: list[Topic] = []
    seen: set[str] = set()
    texts: dict[str, str] = {}
    for t, raw in enumerate(topics_raw):
        where = f"{path}: topics[{t}]"
        if not isinstance(raw, dict) or set(raw) - {"id", "lang", "title", "facts"}:
            raise SeedError(f"{where}: expected an object with keys id, lang, title, facts")
        topic_id = _text(raw.get("id"), f"{where}.id")
        where = f"{path}: topic {topic_id!r}"
        if topic_id in seen:
            raise SeedError(f"{where}: duplicate id")
        seen.add(topic_id)
        lang = raw.get("lang")
        if lang not in LANGUAGES:
            raise SeedError(f"{where}.lang: must be one of {', '.join(LANGUAGES)}, got {lang!r}")
        title = _text(raw.get("title"), f"{where}.title")
        facts_raw = raw.get("facts")
        if not isinstance(facts_raw, list) or len(facts_raw) < MIN_FACTS_PER_TOPIC:
            raise SeedError(f"{where}.facts: needs at least {MIN_FACTS_PER_TOPIC} facts")
        facts = []
        for f, fact in enumerate(facts_raw):
            fw = f"{where}.facts[{f}]"
            if not isinstance(fact, dict) or set(fact) != {"questions", "answer", "partial"}:
                raise SeedError(f"{fw}: expected exactly the keys questions, answer, partial")
            questions = fact["questions"]
            if not isinstance(questions, list) or len(questions) != 2:
                raise SeedError(f"{fw}.questions: must be a list of 2 phrasings")
            qs = tuple(_text(q, f"{fw}.questions[{i}]") for i, q in enumerate(questions))
            if qs[0] == qs[1]:
                raise SeedError(f"{fw}.questions: the two phrasings are identical")
            answer = _text(fact["answer"], f"{fw}.answer")
            partial = _text(fact["partial"], f"{fw}.partial")
            for name, text in (("answer", answer), ("partial", partial)):
                if text in texts:
                    raise SeedError(f"{fw}.{name}: same text as {texts[text]}")
                texts[text] = f"{fw}.{name}"
            facts.append(Fact(qs, answer, partial))
        topics.append(Topic(topic_id, category, lang, title, tuple(facts)))
    return topics


def load_seeds(directory: str | Path) -> list[Topic]:
    """Every category file of ``directory``, in the order of :data:`CATEGORIES`."""
    directory = Path(directory)
    topics: list[Topic] = []
    for category in CATEGORIES:
        path = directory / f"{category}.json"
        if path.is_file():
            topics += load_category(path)
    if not topics:
        raise SeedError(f"{directory}: no seed files ({', '.join(c + '.json' for c in CATEGORIES)})")
    return topics


if __name__ == "__main__":  # python -m pipeline.demo.seeds FILE...: validate and count
    import sys

    for name in sys.argv[1:]:
        loaded = load_category(name)
        counts = {lang: sum(t.lang == lang for t in loaded) for lang in LANGUAGES}
        print(f"{name}: {len(loaded)} topics, {sum(len(t.facts) for t in loaded)} facts, languages {counts}")
