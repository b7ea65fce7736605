"""The texts embedded on both sides: the queries of a collect dataset and their documents.

Queries are embedded as queries (Qwen3-Embedding: with the task instruction), documents as
documents (without), as retrieval uses them. A document's category is its ``meta.category`` in
the dataset (``uncategorized`` without one); queries form the category ``query``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.data.dataset import Dataset

QUERY_CATEGORY = "query"
NO_CATEGORY = "uncategorized"


@dataclass(frozen=True)
class Text:
    key: str  # query_id, or the doc_id
    text: str
    category: str
    is_query: bool


@dataclass(frozen=True)
class TextSet:
    texts: list[Text]
    #: per query: (index of the query in ``texts``, indices of its documents in ``texts``)
    groups: list[tuple[int, list[int]]]

    @property
    def categories(self) -> list[str]:
        return sorted({t.category for t in self.texts}, key=lambda c: (c != QUERY_CATEGORY, c))


def text_set(dataset: Dataset) -> TextSet:
    """Every query once, every distinct document once. A doc_id is unique within its query only
    (the collect format), so documents are the same when both id and text are; the same id with
    another text in another query is another text (its key gets the query's id)."""
    texts: list[Text] = []
    doc_index: dict[tuple[str, str], int] = {}
    ids_seen: set[str] = set()
    groups: list[tuple[int, list[int]]] = []
    for query in dataset.queries:
        qi = len(texts)
        texts.append(Text(query.query_id, query.text, QUERY_CATEGORY, True))
        members = []
        for doc in query.documents:
            at = doc_index.get((doc.doc_id, doc.text))
            if at is None:
                at = doc_index[(doc.doc_id, doc.text)] = len(texts)
                key = doc.doc_id if doc.doc_id not in ids_seen else f"{query.query_id}/{doc.doc_id}"
                ids_seen.add(doc.doc_id)
                texts.append(Text(key, doc.text, doc.category or NO_CATEGORY, False))
            members.append(at)
        groups.append((qi, members))
    return TextSet(texts, groups)
