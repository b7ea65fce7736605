"""embed-check's arithmetic on vectors built by hand: the gate, the per-category summaries, the
worst texts and the retrieval comparison, each checked against an independent computation
(scipy, numpy written out, or values worked out on paper). Milliseconds: these are the tests
``make mutate`` runs against pipeline/embed_check/compare.py."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from pipeline.embed_check.compare import compare, normalised, passes, retrieval, spearman, summary
from pipeline.embed_check.texts import NO_CATEGORY, QUERY_CATEGORY, Text, TextSet


def _text_set(groups: list[list[str]], categories: dict[str, str] | None = None) -> TextSet:
    """Query i followed by its documents; ``categories`` maps a document key to its category."""
    texts, index = [], []
    for qi, docs in enumerate(groups):
        q_at = len(texts)
        texts.append(Text(f"q{qi}", f"query {qi}", QUERY_CATEGORY, True))
        members = []
        for d in docs:
            members.append(len(texts))
            texts.append(Text(d, f"document {d} " + "x" * 100, (categories or {}).get(d, NO_CATEGORY), False))
        index.append((q_at, members))
    return TextSet(texts, index)


# --- the gate ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overall, threshold, expected",
    [
        ({"min": 0.9995, "mean": 0.99999}, 0.9999, False),  # the mean passes, one text does not
        ({"min": 0.9999, "mean": 0.99995}, 0.9999, True),  # exactly at the threshold passes
        ({"min": 0.99991, "mean": 0.99991}, 0.9999, True),
    ],
)
def test_the_gate_is_every_text_at_least_the_threshold(overall, threshold, expected):
    assert passes(overall, threshold) is expected


# --- vectors and summaries --------------------------------------------------------------------


def test_normalised_rows_have_unit_length_and_a_zero_row_stays_zero():
    out = normalised(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    assert out.dtype == np.float64  # computed in float64 whatever the side returned
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]], rtol=0, atol=1e-15)
    np.testing.assert_allclose(
        normalised(np.array([[1e-200, 0.0], [-3e-170, 4e-170]])), [[1.0, 0.0], [-0.6, 0.8]], rtol=0, atol=1e-15
    )  # no underflow to an unnormalised row


def test_summary_figures_are_the_usual_statistics():
    cos = np.array([0.9, 0.99, 0.999, 0.5, 0.95])
    dist = np.array([0.1, 0.2, 0.05, 0.7, 0.3])
    s = summary(cos, dist)
    # p1 by linear interpolation between the two smallest: 0.5 + 0.04 * (0.9 - 0.5)
    assert s == pytest.approx(
        {
            "n": 5,
            "mean": 4.339 / 5,
            "std": float(np.sqrt(np.mean((cos - cos.mean()) ** 2))),
            "min": 0.5,
            "p1": 0.516,
            "max": 0.999,
            "distance_mean": 0.27,
            "distance_max": 0.7,
        },
        abs=1e-12,
    )
    assert isinstance(s["n"], int)


@pytest.mark.parametrize(
    "a, b",
    [
        ([1.0, 2.0, 3.0, 4.0], [10.0, 30.0, 20.0, 40.0]),
        ([1.0, 1.0, 2.0, 3.0, 3.0, 3.0], [0.5, 0.1, 0.2, 0.9, 0.9, 0.3]),  # ties on both sides
        ([5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]),
        ([2.0, 2.0, 1.0], [1.0, 3.0, 2.0]),
    ],
)
def test_spearman_equals_scipy_with_ties(a, b):
    a, b = np.array(a), np.array(b)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert spearman(b, a) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)


def test_spearman_is_one_when_a_side_ranks_everything_equal():
    assert spearman(np.array([0.3, 0.3, 0.3]), np.array([0.1, 0.5, 0.2])) == 1.0
    assert spearman(np.array([0.1, 0.5, 0.2]), np.array([7.0, 7.0, 7.0])) == 1.0


# --- retrieval --------------------------------------------------------------------------------


def _unit(angle_degrees: float) -> list[float]:
    t = np.radians(angle_degrees)
    return [float(np.cos(t)), float(np.sin(t))]


def test_retrieval_compares_each_querys_ranking_of_its_documents():
    texts = _text_set([["a", "b", "c"], ["d", "e"], ["lonely"]])
    # query 0 at angle 0; documents at 10, 20, 30 degrees on side a; on side b documents a and c swap
    side_a = np.array([_unit(0), _unit(10), _unit(20), _unit(30), _unit(0), _unit(5), _unit(50), _unit(0), _unit(1)])
    side_b = np.array([_unit(0), _unit(30), _unit(20), _unit(10), _unit(0), _unit(5), _unit(50), _unit(0), _unit(1)])
    r = retrieval(texts, side_a, side_b, top_k=2)
    assert r["queries"] == 2 and r["skipped_single_document"] == 1 and r["top_k"] == 2
    # query 0: top-2 {a, b} vs {c, b} -> overlap 1/2; ranking reversed -> Spearman -1; top-1 differs
    # query 1: same ranking (k = min(2, 2)) -> overlap 1, Spearman 1, same top-1
    assert r["topk_overlap_mean"] == pytest.approx(0.75) and r["topk_overlap_min"] == pytest.approx(0.5)
    assert r["spearman_mean"] == pytest.approx(0.0) and r["spearman_min"] == pytest.approx(-1.0)
    assert r["same_top1"] == pytest.approx(0.5)
    assert r["changed"] == [
        {"query": "q0", "documents": 3, "topk_overlap": 0.5, "spearman": pytest.approx(-1.0), "same_top1": False}
    ]


def test_a_query_whose_top_k_changes_but_top1_stays_is_listed_as_changed():
    texts = _text_set([["a", "b", "c"]])
    # b is the top document on both sides; a and c swap places behind it
    side_a = np.array([_unit(0), _unit(20), _unit(10), _unit(30)])
    side_b = np.array([_unit(0), _unit(30), _unit(10), _unit(20)])
    r = retrieval(texts, side_a, side_b, top_k=2)
    assert r["same_top1"] == 1.0 and r["topk_overlap_min"] == 0.5
    assert [q["query"] for q in r["changed"]] == ["q0"]
    # top_k larger than the query: k is the number of documents, the sets are equal
    r = retrieval(texts, side_a, side_b, top_k=10)
    assert r["topk_overlap_min"] == 1.0 and r["changed"] == []


def test_single_document_queries_are_skipped_wherever_they_come():
    texts = _text_set([["lonely"], ["a", "b"]])
    v = np.array([_unit(0), _unit(10), _unit(0), _unit(20), _unit(30)])
    r = retrieval(texts, v, v, top_k=5)
    assert r["queries"] == 1 and r["skipped_single_document"] == 1


def test_retrieval_with_only_single_document_queries_reports_none():
    texts = _text_set([["a"], ["b"]])
    v = np.array([_unit(0), _unit(10), _unit(0), _unit(20)])
    assert retrieval(texts, v, v, top_k=5) == {"queries": 0, "skipped_single_document": 2}


# --- the whole comparison ---------------------------------------------------------------------


def test_compare_reports_cosines_distances_categories_and_the_worst_texts():
    texts = _text_set([["a", "b"], ["c"]], categories={"a": "code", "b": "code", "c": "prose"})
    # text order: q0, a, b, q1, c; side b turns each text by its own angle (and rescales it)
    turn = [0.0, 60.0, 10.0, 0.0, 180.0]
    side_a = np.array([_unit(0), _unit(30), _unit(45), _unit(90), _unit(120)])
    side_b = np.array([[2 * x for x in _unit(base + t)] for base, t in zip([0, 30, 45, 90, 120], turn)])
    r = compare(texts, side_a, side_b, top_k=5, worst=2)
    cos = np.cos(np.radians(turn))
    dist = np.sqrt(2 - 2 * cos)
    np.testing.assert_allclose(r["cosines"], cos, atol=1e-12)
    assert r["overall"]["min"] == pytest.approx(-1.0) and r["overall"]["n"] == 5
    assert r["overall"]["distance_max"] == pytest.approx(2.0)
    assert list(r["categories"]) == ["query", "code", "prose"]
    assert r["categories"]["query"]["n"] == 2 and r["categories"]["query"]["min"] == pytest.approx(1.0)
    assert r["categories"]["code"]["min"] == pytest.approx(0.5)
    assert r["categories"]["code"]["distance_mean"] == pytest.approx((dist[1] + dist[2]) / 2)
    assert r["categories"]["prose"]["mean"] == pytest.approx(-1.0)
    # the two worst, lowest cosine first, text cut at 80 characters
    assert [(w["key"], w["category"]) for w in r["worst"]] == [("c", "prose"), ("a", "code")]
    assert r["worst"][0]["cosine"] == pytest.approx(-1.0) and r["worst"][0]["distance"] == pytest.approx(2.0)
    assert r["worst"][1]["text"] == texts.texts[1].text[:80] and len(r["worst"][1]["text"]) == 80
    assert r["retrieval"]["queries"] == 1 and r["retrieval"]["top_k"] == 5


def test_cosines_that_round_past_one_are_clipped():
    # identical sides: a normalised row's dot product with itself rounds above 1 for about one row
    # in six; the report must never show a cosine outside [-1, 1]
    texts = _text_set([[f"d{i}" for i in range(199)]])
    v = np.random.default_rng(0).normal(size=(200, 8))
    same = compare(texts, v, v.copy())
    assert same["cosines"].max() == 1.0 and same["overall"]["max"] == 1.0
    opposite = compare(texts, v, -v)
    assert opposite["cosines"].min() == -1.0 and opposite["overall"]["min"] == -1.0


def test_identical_sides_with_tied_similarities_change_nothing():
    # 30 documents at two similarities, 15 tied at each: ties are broken the same way (text order)
    # on both sides, so identical vectors never show a changed top-k
    texts = _text_set([[f"d{i}" for i in range(30)]])
    v = np.array([[1.0, 0.0]] + [[0.6, 0.8], [0.8, 0.6]] * 15)
    r = compare(texts, v, v.copy(), top_k=5, worst=10)
    assert r["retrieval"]["topk_overlap_min"] == 1.0 and r["retrieval"]["changed"] == []


def test_the_worst_texts_keep_text_order_among_equal_cosines():
    texts = _text_set([[f"d{i}" for i in range(30)]])
    a = np.array([[1.0, 0.0]] * 31)
    b = np.array([[1.0, 0.0]] + [[1.0, 1.0], [1.0, 0.0]] * 15)  # every other document turned by 45 degrees
    r = compare(texts, a, b, worst=10)
    assert [w["key"] for w in r["worst"]] == [f"d{i}" for i in range(0, 20, 2)]


def test_sides_of_different_shapes_are_refused_naming_both():
    texts = _text_set([["a"]])
    with pytest.raises(ValueError, match=r"different shapes: \(2, 3\) and \(2, 4\)"):
        compare(texts, np.ones((2, 3)), np.ones((2, 4)))


def test_worst_defaults_to_ten_and_top_k_to_five():
    texts = _text_set([[f"d{i}" for i in range(11)]])
    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 4))
    r = compare(texts, a, a + rng.normal(scale=0.1, size=a.shape))
    assert len(r["worst"]) == 10 and r["retrieval"]["top_k"] == 5
