"""The spending limit (pipeline/api/spend.py): reserved before each attempt, settled at the
reported usage, kept on disk; through the real client against the fake API, retries included."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pipeline.api.client import ApiClient
from pipeline.api.collector import estimate_plan, plan_requests
from pipeline.api.spend import BudgetExhausted, SpendGuard, SpendLedger, request_cost
from pipeline.config.api import ApiConfig, Dialect
from tests.api.test_client import DOCS, QUERY, cfg_for


def test_reservations_within_the_limit_and_none_beyond(tmp_path):
    with SpendLedger(tmp_path / "spend.sqlite", "acct", pairs=10, cost=1.0) as ledger:
        a = ledger.reserve(4, 0.2)
        ledger.reserve(5, 0.3)
        with pytest.raises(BudgetExhausted, match=r"2 more pair\(s\) would cross collect.budget.pairs=10 \(9 spent\)"):
            ledger.reserve(2, 0.0)
        ledger.reserve(1, 0.5)  # exactly at both limits
        ledger.settle(a, 0.1)  # the answer reported less than reserved: 0.1 + 0.3 + 0.5 = 0.9 spent
        with pytest.raises(BudgetExhausted, match="collect.budget.cost=1"):
            ledger.reserve(0, 0.2)
        assert ledger.spent().pairs == 10 and ledger.spent().cost == pytest.approx(0.9)
        assert ledger.remaining() == (0.0, pytest.approx(0.1))


def test_a_failed_attempt_stays_counted_and_an_open_one_survives_the_process(tmp_path):
    path = tmp_path / "spend.sqlite"
    with SpendLedger(path, "acct", pairs=100) as ledger:
        ledger.fail(ledger.reserve(3, 0.5))
        ledger.settle(ledger.reserve(3, 0.5), 0.25)
        ledger.reserve(3, 0.5)  # in flight when the process dies: never settled
    with SpendLedger(path, "acct", pairs=100) as again:  # the next run
        spent = again.spent()
        assert (spent.pairs, spent.cost, spent.open) == (9, pytest.approx(1.25), 1)
    with SpendLedger(path, "another api") as other:  # another account's spend is its own
        assert other.spent().pairs == 0 and other.remaining() == (float("inf"), float("inf"))


def test_the_cost_model_is_the_dry_runs():
    cfg = ApiConfig(
        dialect=Dialect.siliconflow,
        model="m",
        price_per_million_tokens=2.0,
        price_per_request=0.001,
        price_per_search_unit=0.5,
    )
    plan = plan_requests(cfg, [(QUERY, DOCS)], [list(range(len(DOCS)))])
    est = estimate_plan(cfg, plan)
    assert est.cost == pytest.approx(sum(request_cost(cfg, r.est_tokens, len(r.doc_indices)) for r in plan))
    assert request_cost(cfg, 1_000_000, 150) == pytest.approx(2.0 + 0.001 + 2 * 0.5)  # 150 docs: 2 search units
    assert request_cost(cfg, 0, 150, search_units=1) == pytest.approx(0.001 + 0.5)  # as reported


def _client_run(cfg: ApiConfig, ledger: SpendLedger, groups: int):
    async def go():
        sent = []
        async with ApiClient(cfg, spend=SpendGuard(cfg, ledger)) as client:
            try:
                for _ in range(groups):
                    sent.append((await client.score(QUERY, DOCS)).scores)
            except BudgetExhausted as exc:
                return sent, client, exc
        return sent, client, None

    return asyncio.run(go())


def test_the_client_stops_before_the_request_that_would_cross_the_budget(server, tmp_path):
    cfg = cfg_for(server, price_per_million_tokens=1.0)
    with SpendLedger(tmp_path / "s.sqlite", "acct", pairs=3 * len(DOCS) + 2) as ledger:
        sent, client, exc = _client_run(cfg, ledger, groups=10)
        assert len(sent) == 3 and exc is not None
        assert len(server.records) == 3  # the fourth was never sent
        spent = ledger.spent()
        assert spent.pairs == 3 * len(DOCS) and spent.open == 0
        # settled at the tokens the fake reported, not the (higher) estimate
        reported = client.stats.tokens_reported
        assert spent.cost == pytest.approx(reported / 1e6) and reported < client.stats.tokens_estimated


def test_a_retried_request_is_paid_for_twice(server, tmp_path):
    server.push_faults("500")
    cfg = cfg_for(server)
    with SpendLedger(tmp_path / "s.sqlite", "acct", pairs=2 * len(DOCS)) as ledger:
        sent, client, exc = _client_run(cfg, ledger, groups=2)
        assert exc is not None and len(sent) == 1  # the retry spent the second request's room
        assert client.stats.retries == 1 and ledger.spent().pairs == 2 * len(DOCS)
    np.testing.assert_array_equal(sent[0].shape, (len(DOCS),))


def test_reservations_grow_when_the_api_reports_more_tokens_than_estimated(server, tmp_path):
    """A server that counts a template the client never sees reports more than the estimate:
    after the first answer each reservation is scaled by the reported/estimated ratio (+10%)."""
    server.state.token_report_ratio = 3.0
    cfg = cfg_for(server, price_per_million_tokens=1000.0)
    with SpendLedger(tmp_path / "s.sqlite", "acct") as ledger:
        guard = SpendGuard(cfg, ledger)

        async def go():
            async with ApiClient(cfg, spend=guard) as client:
                for _ in range(3):
                    await client.score(QUERY, DOCS)

        asyncio.run(go())
        rows = ledger._db.execute("SELECT reserved, actual FROM spend ORDER BY id").fetchall()
    assert guard.ratio > 1.0
    assert rows[0][0] < rows[0][1]  # the first reservation, at the estimate, was short
    assert all(reserved >= actual for reserved, actual in rows[1:])  # the later ones hold


def test_the_cost_model_exactly():
    cfg = ApiConfig(dialect=Dialect.siliconflow, model="m", price_per_million_tokens=3.0, price_per_search_unit=0.5)
    assert request_cost(cfg, 2_000_000, 1) == 6.0 + 0.5


def test_the_guard_learns_the_reported_ratio_over_every_answer_and_books_reported_units(tmp_path):
    cfg = ApiConfig(dialect=Dialect.siliconflow, model="m", price_per_million_tokens=1e6, price_per_search_unit=100.0)
    with SpendLedger(tmp_path / "deep" / "er" / "spend.sqlite", "acct") as ledger:  # parents created
        guard = SpendGuard(cfg, ledger)
        assert guard.ratio == 1.0
        first = guard.reserve(150, 10)
        assert ledger._db.execute("SELECT reserved FROM spend").fetchone()[0] == 10 + 2 * 100.0  # 2 units estimated
        guard.settle(first, 150, 30, search_units=1)  # the API reported 3x the tokens and one unit
        assert guard.ratio == 3.0
        assert ledger.spent().cost == 30 + 100.0
        guard.settle(guard.reserve(1, 10), 1, 10, None)
        assert guard.ratio == 2.0  # (30 + 10) / (10 + 10): every answer counts
        failed = guard.reserve(1, 10)
        guard.fail(failed)
        states = [r[0] for r in ledger._db.execute("SELECT state FROM spend ORDER BY id")]
    assert states == ["settled", "settled", "failed"]


def test_an_api_that_reports_fewer_tokens_keeps_reservations_at_the_estimate(tmp_path):
    """Scaling only ever raises a reservation: a ratio below 1/1.1 reserves the estimate itself."""
    cfg = ApiConfig(dialect=Dialect.siliconflow, model="m", price_per_million_tokens=1e6)
    with SpendLedger(tmp_path / "spend.sqlite", "acct") as ledger:
        guard = SpendGuard(cfg, ledger)
        guard.settle(guard.reserve(1, 100), 1, 50, None)  # the API reported half the estimate
        assert guard.ratio == 0.5
        guard.reserve(1, 100)
        assert ledger._db.execute("SELECT reserved FROM spend ORDER BY id DESC").fetchone()[0] == 100.0
        guard.settle(guard.reserve(1, 100), 1, 400, None)  # now (50 + 400) / 200 = 2.25
        guard.reserve(1, 100)
        assert (
            ledger._db.execute("SELECT reserved FROM spend ORDER BY id DESC").fetchone()[0] == 248.0
        )  # ceil(100 * 1.1 * 2.25)


def test_the_ledger_takes_reservations_from_the_clients_worker_threads(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with SpendLedger(tmp_path / "spend.sqlite", "acct", pairs=8) as ledger:
        with ThreadPoolExecutor(4) as pool:
            tickets = list(pool.map(lambda _: ledger.reserve(1, 0.0), range(8)))
            with pytest.raises(BudgetExhausted):
                pool.submit(ledger.reserve, 1, 0.0).result()
        assert len(set(tickets)) == 8 and ledger.spent().pairs == 8


def test_the_reported_rate_is_kept_across_runs_and_an_older_ledger_gains_the_column(tmp_path):
    import sqlite3

    cfg = ApiConfig(dialect=Dialect.siliconflow, model="m", price_per_million_tokens=1e6)
    path = tmp_path / "spend.sqlite"
    with SpendLedger(path, "acct") as ledger:
        assert ledger.rate() is None  # no answer yet
        guard = SpendGuard(cfg, ledger)
        guard.settle(guard.reserve(1, 100), 1, 160, None)  # estimated 100, reported 160
        guard.fail(guard.reserve(1, 100))  # failed: no reported usage to learn from
        guard.settle(guard.reserve(1, 100), 1, 150, None)  # reserved at 1.1 * 1.6, estimated 100
        assert ledger.rate() == pytest.approx(310 / 200)
    with SpendLedger(path, "acct") as next_run:  # a re-run that finds everything cached sees the same rate
        assert next_run.rate() == pytest.approx(1.55)
    old = tmp_path / "old.sqlite"
    with sqlite3.connect(old) as db:
        db.execute(
            "CREATE TABLE spend (id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, pairs INTEGER NOT NULL, "
            "reserved REAL NOT NULL, actual REAL, state TEXT NOT NULL, created REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO spend (account, pairs, reserved, actual, state, created) VALUES ('acct', 5, 1.0, 0.5, 'settled', 0)"
        )
    with SpendLedger(old, "acct") as ledger:
        assert ledger.spent().pairs == 5 and ledger.rate() is None  # its rows carry no estimate
        ledger.settle(ledger.reserve(2, 1.0, estimated=0.8), 1.2)
        assert ledger.rate() == pytest.approx(1.5) and ledger.spent().pairs == 7
