"""Planning what collect sends, and what it costs: the dry run and the real run share these, so a
split in the wrong place, a dropped document or a miscounted price is a wrong bill or a wrong
promise. Token figures follow pipeline/api/tokens.py: one token per three ASCII characters
(rounded up) plus api.token_overhead_per_document, per (query, document) pair."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pipeline.api.client import ClientStats
from pipeline.api.collector import PairRequest, PlanEstimate, cost_of, estimate_plan, plan_requests
from pipeline.config.api import ApiConfig, Dialect, Endpoint

CFG = ApiConfig(dialect=Dialect.siliconflow, api_key_env=None, max_documents_per_request=3)
DOCS = [f"d{i}" for i in range(7)]  # one token each; with the query "q", 2 tokens a pair


def slices(plan: list[PairRequest]) -> list[tuple[int, tuple[int, ...]]]:
    return [(r.group, r.doc_indices) for r in plan]


def test_a_group_is_cut_into_consecutive_slices_of_the_document_cap():
    plan = plan_requests(CFG, [("q", DOCS)], [range(7)])
    assert slices(plan) == [(0, (0, 1, 2)), (0, (3, 4, 5)), (0, (6,))]
    assert plan[0] == PairRequest(0, (0, 1, 2), "q", ("d0", "d1", "d2"), 6)
    assert plan[2] == PairRequest(0, (6,), "q", ("d6",), 2)


def test_only_pending_documents_are_sent_with_their_own_indices():
    plan = plan_requests(CFG, [("q", DOCS)], [[1, 4, 5, 6]])
    assert [(r.doc_indices, r.documents) for r in plan] == [((1, 4, 5), ("d1", "d4", "d5")), ((6,), ("d6",))]


def test_groups_keep_their_index_and_a_group_with_nothing_pending_sends_nothing():
    groups = [("q0", ["a", "b"]), ("q1", ["c"]), ("q2", ["d", "e", "f", "g"])]
    plan = plan_requests(CFG, groups, [[0, 1], [], [3]])
    assert [(r.group, r.query, r.documents) for r in plan] == [(0, "q0", ("a", "b")), (2, "q2", ("g",))]
    assert plan_requests(CFG, groups, [[], [], []]) == []


def test_exactly_the_cap_fits_in_one_request():
    assert slices(plan_requests(CFG, [("q", DOCS[:3])], [range(3)])) == [(0, (0, 1, 2))]
    one = replace(CFG, max_documents_per_request=1)
    assert slices(plan_requests(one, [("q", DOCS[:3])], [range(3)])) == [(0, (0,)), (0, (1,)), (0, (2,))]


def test_embeddings_requests_leave_a_slot_for_the_query():
    """An embeddings call embeds the query with its documents: max_documents_per_request counts it."""
    cfg = replace(CFG, endpoint=Endpoint.embeddings, model="Qwen/Qwen3-Embedding-0.6B")
    plan = plan_requests(cfg, [("q", DOCS[:5])], [range(5)])
    assert slices(plan) == [(0, (0, 1)), (0, (2, 3)), (0, (4,))]
    assert [r.est_tokens for r in plan] == [3, 3, 2]  # query once + each document


@pytest.mark.parametrize(
    "cap, want",
    [
        (4, [(0, 1), (2, 3), (4, 5), (6,)]),  # two pairs of 2 tokens reach the cap exactly: still one request
        (5, [(0, 1), (2, 3), (4, 5), (6,)]),  # a third pair would make 6
        (6, [(0, 1, 2), (3, 4, 5), (6,)]),  # the document cap (3) binds first
        (1, [(0,), (1,), (2,), (3,), (4,), (5,), (6,)]),  # a pair over the cap still goes, alone
        (None, [(0, 1, 2), (3, 4, 5), (6,)]),  # no token cap
    ],
)
def test_the_token_cap_splits_a_group(cap, want):
    plan = plan_requests(replace(CFG, max_tokens_per_request=cap), [("q", DOCS)], [range(7)])
    assert [r.doc_indices for r in plan] == want
    assert all(r.est_tokens == 2 * len(r.doc_indices) for r in plan)


def test_the_token_cap_counts_each_documents_own_cost():
    docs = ["x" * 9, "y", "z" * 9, "w"]  # 3, 1, 3, 1 tokens; with the query, pairs of 4, 2, 4, 2
    cfg = replace(CFG, max_documents_per_request=10, max_tokens_per_request=6)
    plan = plan_requests(cfg, [("q", docs)], [range(4)])
    assert [(r.doc_indices, r.est_tokens) for r in plan] == [((0, 1), 6), ((2, 3), 6)]
    with_overhead = replace(cfg, token_overhead_per_document=1)  # pairs of 5, 3, 5, 3: no two fit in 6
    assert [r.doc_indices for r in plan_requests(with_overhead, [("q", docs)], [range(4)])] == [(0,), (1,), (2,), (3,)]


def money(value: float):
    """Prices are compared to a part in 10^12: pytest.approx's default (10^-6) would not tell a
    million tokens from 1,000,001."""
    return pytest.approx(value, rel=1e-12)


def _req(n_docs: int, tokens: int) -> PairRequest:
    return PairRequest(0, tuple(range(n_docs)), "q", ("d",) * n_docs, tokens)


def test_estimate_counts_requests_pairs_tokens_and_every_price():
    plan = [_req(1, 1_000_000), _req(100, 500_000), _req(101, 250_000)]  # search units 1 + 1 + 2
    cfg = replace(CFG, price_per_million_tokens=2.0, price_per_request=0.25, price_per_search_unit=0.01)
    est = estimate_plan(cfg, plan)
    assert est == PlanEstimate(requests=3, pairs=202, tokens=1_750_000, cost=money(3.5 + 0.75 + 0.04))
    for prices, cost in [
        ({"price_per_million_tokens": 2.0}, 3.5),
        ({"price_per_request": 0.25}, 0.75),
        ({"price_per_search_unit": 0.01}, 0.04),
    ]:
        assert estimate_plan(replace(CFG, **prices), plan).cost == money(cost), prices
    assert estimate_plan(cfg, []) == PlanEstimate(0, 0, 0, 0.0)


@pytest.mark.parametrize("n_docs, units", [(1, 1), (99, 1), (100, 1), (101, 2), (200, 2), (201, 3)])
def test_a_search_unit_covers_up_to_100_documents(n_docs, units):
    cfg = replace(CFG, price_per_search_unit=1.0)
    assert estimate_plan(cfg, [_req(n_docs, 0)]).cost == units


def test_cost_of_what_was_sent():
    stats = ClientStats(
        succeeded=4,
        requests=9,
        tokens_reported=300_000,
        tokens_unreported_estimate=200_000,
        tokens_estimated=999_999,
        search_units=7,
    )
    cfg = replace(CFG, price_per_million_tokens=2.0, price_per_request=0.5, price_per_search_unit=0.1)
    # tokens: reported plus the estimates of responses that reported none; requests: the successful ones
    assert cost_of(cfg, stats) == money(1.0 + 2.0 + 0.7)
    assert cost_of(replace(CFG, price_per_million_tokens=2.0), stats) == money(1.0)
    assert cost_of(replace(CFG, price_per_request=0.5), stats) == money(2.0)
    assert cost_of(replace(CFG, price_per_search_unit=0.1), stats) == money(0.7)
