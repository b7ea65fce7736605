"""How far apart two sides' vectors are, per text and per category, and whether retrieval with
them ranks documents the same way.

Both sides' vectors are L2-normalised first: the cosine of a text's two vectors is then their
dot product and their Euclidean distance is ``sqrt(2 - 2 cos)``, computed directly so that it
stays exact where the cosine rounds to 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.embed_check.texts import TextSet


def normalised(vectors: np.ndarray) -> np.ndarray:
    """Each row at unit length (a zero row stays zero). Scaled by its largest component first:
    the norm of a row of tiny components would underflow to 0 and leave the row unnormalised."""
    vectors = np.asarray(vectors, dtype=np.float64)
    largest = np.abs(vectors).max(axis=1, keepdims=True)
    vectors = vectors / np.where(largest > 0, largest, 1.0)
    return vectors / np.where(largest > 0, np.linalg.norm(vectors, axis=1, keepdims=True), 1.0)


def summary(cosines: np.ndarray, distances: np.ndarray) -> dict[str, float | int]:
    return {
        "n": int(cosines.size),
        "mean": float(cosines.mean()),
        "std": float(cosines.std()),
        "min": float(cosines.min()),
        "p1": float(np.percentile(cosines, 1)),
        "max": float(cosines.max()),
        "distance_mean": float(distances.mean()),
        "distance_max": float(distances.max()),
    }


def passes(overall: dict[str, float | int], threshold: float) -> bool:
    """The gate: every text's two vectors at least ``threshold`` apart in cosine. The minimum, not
    the mean: one text the server embeds differently is a deployment difference the mean hides."""
    return bool(overall["min"] >= threshold)


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as Spearman's rho uses them."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size)
    sorted_values = values[order]
    start = 0
    for end in range(1, values.size + 1):
        if end == values.size or sorted_values[end] != sorted_values[start]:
            ranks[order[start:end]] = (start + end - 1) / 2.0
            start = end
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho; 1.0 when either side ranks everything equal (nothing to disagree on)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return 1.0 if denominator == 0 else float((ra * rb).sum() / denominator)


def retrieval(texts: TextSet, a: np.ndarray, b: np.ndarray, top_k: int) -> dict[str, Any]:
    """Per query: its documents ranked by cosine with the query on each side; the overlap of
    the two top-k sets (as a fraction of k), the Spearman of the two rankings, same top-1."""
    per_query = []
    for qi, members in texts.groups:
        if len(members) < 2:
            continue
        sa, sb = a[members] @ a[qi], b[members] @ b[qi]
        k = min(top_k, len(members))
        top_a = set(np.argsort(-sa, kind="stable")[:k].tolist())
        top_b = set(np.argsort(-sb, kind="stable")[:k].tolist())
        per_query.append(
            {
                "query": texts.texts[qi].key,
                "documents": len(members),
                "topk_overlap": len(top_a & top_b) / k,
                "spearman": spearman(sa, sb),
                "same_top1": bool(np.argmax(sa) == np.argmax(sb)),
            }
        )
    skipped = len(texts.groups) - len(per_query)
    if not per_query:
        return {"queries": 0, "skipped_single_document": skipped}
    overlaps = np.array([q["topk_overlap"] for q in per_query])
    rhos = np.array([q["spearman"] for q in per_query])
    return {
        "queries": len(per_query),
        "skipped_single_document": skipped,
        "top_k": top_k,
        "topk_overlap_mean": float(overlaps.mean()),
        "topk_overlap_min": float(overlaps.min()),
        "spearman_mean": float(rhos.mean()),
        "spearman_min": float(rhos.min()),
        "same_top1": float(np.mean([q["same_top1"] for q in per_query])),
        "changed": [q for q in per_query if not q["same_top1"] or q["topk_overlap"] < 1.0],
    }


def compare(texts: TextSet, a: np.ndarray, b: np.ndarray, *, top_k: int = 5, worst: int = 10) -> dict[str, Any]:
    """The whole comparison of two (n, d) vector sets for ``texts`` (row i = text i)."""
    if a.shape != b.shape:
        raise ValueError(f"the two sides returned vectors of different shapes: {a.shape} and {b.shape}")
    a, b = normalised(a), normalised(b)
    cosines = np.clip(np.einsum("ij,ij->i", a, b), -1.0, 1.0)
    distances = np.linalg.norm(a - b, axis=1)
    categories = {}
    for category in texts.categories:
        idx = np.array([i for i, t in enumerate(texts.texts) if t.category == category])
        categories[category] = summary(cosines[idx], distances[idx])
    order = np.argsort(cosines, kind="stable")[:worst]
    worst_texts = [
        {
            "key": texts.texts[i].key,
            "category": texts.texts[i].category,
            "cosine": float(cosines[i]),
            "distance": float(distances[i]),
            "text": texts.texts[i].text[:80],
        }
        for i in order
    ]
    return {
        "overall": summary(cosines, distances),
        "categories": categories,
        "worst": worst_texts,
        "retrieval": retrieval(texts, a, b, top_k),
        "cosines": cosines,
    }
