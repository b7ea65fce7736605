"""The query/documents dataset that ``collect`` scores (JSONL, one query group per line).

Schema of one line (a JSON object)::

    {"query_id": "q1",                       # string (or integer), unique in the file
     "query": "什么是向量数据库？",             # non-empty string
     "documents": [                           # non-empty list
        {"doc_id": "d1",                      # string (or integer), unique within the query
         "text": "向量数据库是……",              # non-empty string
         "label": 2,                          # optional graded relevance (finite number)
         "meta": {...}},                      # optional, free-form, carried along unused
        ...],
     "meta": {...}}                           # optional, free-form

Blank lines are skipped. Any other key is an error (a misspelt ``"doc"`` or ``"label "`` must
not silently lose data). Every problem is reported with file, line and field, up to
:data:`MAX_REPORTED` of them at once so a broken file is fixed in one pass.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError
from pipeline.core.files import sha256_file
from pipeline.data.validation import Problems, require_file

MAX_REPORTED = 10

_QUERY_KEYS = {"query_id", "query", "documents", "meta"}
_DOC_KEYS = {"doc_id", "text", "label", "meta"}


class DatasetError(PipelineError, ValueError):
    """The dataset file is not valid; the message lists ``file:line: field: problem`` entries."""


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    label: float | None = None
    #: ``meta.category`` when the line has one (the embedding report groups texts by it)
    category: str | None = None


@dataclass(frozen=True)
class Query:
    query_id: str
    text: str
    documents: tuple[Document, ...]
    line: int = 0
    #: ``meta.category`` when the line has one (a budgeted collection stratifies by it)
    category: str | None = None


@dataclass
class Dataset:
    path: Path
    sha256: str
    queries: list[Query]

    @property
    def n_pairs(self) -> int:
        return sum(len(q.documents) for q in self.queries)

    @property
    def n_labelled(self) -> int:
        return sum(d.label is not None for q in self.queries for d in q.documents)

    @property
    def has_labels(self) -> bool:
        return self.n_labelled > 0

    def sample(self, n: int | None, seed: int = 0) -> Dataset:
        """``n`` query groups chosen by a hash of (seed, query_id), kept in file order; all when
        ``n`` is None or not smaller. The same ids give the same sample on every machine, and
        growing ``n`` only adds queries, so cached scores of a smaller sample are reused."""
        if n is None or n >= len(self.queries):
            return self
        if n < 1:
            raise DatasetError(f"{self.path}: a sample needs at least 1 query, got {n}")
        rank = lambda q: hashlib.sha256(f"{seed}\x1f{q.query_id}".encode()).digest()  # noqa: E731
        chosen = {id(q) for q in sorted(self.queries, key=rank)[:n]}
        return Dataset(self.path, self.sha256, [q for q in self.queries if id(q) in chosen])

    def subset(self, indices) -> Dataset:
        """The queries at ``indices``, kept in file order (a budgeted collection's purchase)."""
        chosen = set(int(i) for i in indices)
        return Dataset(self.path, self.sha256, [q for i, q in enumerate(self.queries) if i in chosen])


class _Problems(Problems):
    """The dataset's problems, each ``file:line: field: problem``."""

    def __init__(self, path: Path) -> None:
        super().__init__(MAX_REPORTED)
        self.path = path

    def at(self, line: int, field: str, problem: str) -> None:
        self.add(f"{self.path}:{line}: {field}: {problem}" if field else f"{self.path}:{line}: {problem}")

    def raise_if_any(self) -> None:
        if self:
            raise DatasetError(f"{len(self)} problem(s) in dataset:\n{self.lines()}")


def _identifier(value: Any, line: int, field: str, problems: _Problems) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        problems.at(line, field, f"must be a string or integer, got {type(value).__name__}")
        return None
    text = str(value).strip()
    if not text:
        problems.at(line, field, "empty id")
        return None
    return text


def _text(value: Any, line: int, field: str, problems: _Problems) -> str | None:
    if not isinstance(value, str):
        problems.at(line, field, f"must be a string, got {type(value).__name__}")
        return None
    if not value.strip():
        problems.at(line, field, "empty text")
        return None
    return value


def _label(value: Any, line: int, field: str, problems: _Problems) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        problems.at(line, field, f"must be a finite number (graded relevance), got {value!r}")
        return None
    return float(value)


def _parse_query(obj: Any, line: int, problems: _Problems) -> Query | None:
    if not isinstance(obj, dict):
        problems.at(line, "", f"expected a JSON object, got {type(obj).__name__}")
        return None
    unknown = sorted(set(obj) - _QUERY_KEYS)
    if unknown:
        problems.at(line, ", ".join(unknown), f"unknown key(s); allowed: {', '.join(sorted(_QUERY_KEYS))}")
    before = len(problems)
    for key in ("query_id", "query", "documents"):
        if key not in obj:
            problems.at(line, key, "missing")
    if len(problems) > before:
        return None
    qid = _identifier(obj["query_id"], line, "query_id", problems)
    text = _text(obj["query"], line, "query", problems)
    docs_raw = obj["documents"]
    if not isinstance(docs_raw, list) or not docs_raw:
        problems.at(line, "documents", "must be a non-empty list of {doc_id, text[, label]} objects")
        return None
    documents: list[Document] = []
    seen: dict[str, int] = {}
    for i, doc in enumerate(docs_raw):
        field = f"documents[{i}]"
        if not isinstance(doc, dict):
            problems.at(line, field, f"expected an object, got {type(doc).__name__}")
            continue
        unknown = sorted(set(doc) - _DOC_KEYS)
        if unknown:
            problems.at(
                line, f"{field}: {', '.join(unknown)}", f"unknown key(s); allowed: {', '.join(sorted(_DOC_KEYS))}"
            )
        missing = [k for k in ("doc_id", "text") if k not in doc]
        for key in missing:
            problems.at(line, f"{field}.{key}", "missing")
        if missing:
            continue
        did = _identifier(doc["doc_id"], line, f"{field}.doc_id", problems)
        dtext = _text(doc["text"], line, f"{field}.text", problems)
        label = _label(doc.get("label"), line, f"{field}.label", problems)
        if did is not None and did in seen:
            problems.at(line, f"{field}.doc_id", f"duplicate doc_id {did!r} (also documents[{seen[did]}])")
            continue
        if did is not None:
            seen[did] = i
        meta = doc.get("meta")
        category = meta.get("category") if isinstance(meta, dict) and isinstance(meta.get("category"), str) else None
        if did is not None and dtext is not None:
            documents.append(Document(did, dtext, label, category))
    if qid is None or text is None or len(documents) != len(docs_raw):
        return None
    meta = obj.get("meta")
    category = meta.get("category") if isinstance(meta, dict) and isinstance(meta.get("category"), str) else None
    return Query(qid, text, tuple(documents), line, category)


def load_dataset(path: str | Path, key: str = "collect.dataset") -> Dataset:
    """Read and validate a dataset; raises :class:`DatasetError` listing every problem found."""
    path = Path(path)
    require_file(path, "dataset", DatasetError, key)
    problems = _Problems(path)
    queries: list[Query] = []
    first_line: dict[str, int] = {}
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                problems.at(number, "", f"not valid UTF-8 ({exc.reason} at byte {exc.start})")
                continue
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                problems.at(
                    number, "", f"invalid JSON: {getattr(exc, 'msg', exc)} (column {getattr(exc, 'colno', '?')})"
                )
                continue
            query = _parse_query(obj, number, problems)
            if query is None:
                continue
            if query.query_id in first_line:
                problems.at(
                    number,
                    "query_id",
                    f"duplicate query_id {query.query_id!r} (first on line {first_line[query.query_id]})",
                )
                continue
            first_line[query.query_id] = number
            queries.append(query)
    problems.raise_if_any()
    if not queries:
        raise DatasetError(f"{path}: the dataset has no queries")
    return Dataset(path=path, sha256=sha256_file(path), queries=queries)
