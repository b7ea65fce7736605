"""Budgeted collection end to end against the loopback fake API: rounds of whole query groups,
never a pair beyond the budget (retries counted), the selection recorded in the sidecar, the
learning curve written, a re-run with a larger budget buying only the difference."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.api.spend import SpendLedger
from pipeline.collect import collect
from pipeline.config.compose import ConfigError, compose_config
from pipeline.core.cache import ScoreCache
from pipeline.data.table import read_table_meta
from pipeline.scorers.base import QueryGroup, Scorer
from pipeline.testing.fake_api import expected_score
from tests.support.servers import CANARY_KEY, api_overrides

pytestmark = pytest.mark.slow

N_QUERIES = 60


class SkewedMirror(Scorer):
    """A local scorer that agrees with the fake API through a known monotone map, with noise:
    local = api^3 (+ a little), so most pairs score near 0, like a reranker."""

    score_type = "probability"

    def __init__(self) -> None:
        self.pairs = 0

    def score(self, groups: Sequence[QueryGroup], progress=None) -> list[np.ndarray]:
        out = []
        for g in groups:
            out.append(np.array([self.value(g.query, d) for d in g.documents]))
            self.pairs += len(g.documents)
        return out

    def fingerprint(self) -> dict:
        return {"kind": "mirror", "model": "skewed-mirror", "revision": "0", "score_type": self.score_type}

    @staticmethod
    def value(query: str, document: str) -> float:
        noise = int.from_bytes(hashlib.sha256(f"n|{query}|{document}".encode()).digest()[:4], "big") / 2**32
        return float(np.clip(expected_score(query, document) ** 3 + 0.02 * (noise - 0.5), 0.0, 1.0))


def dataset(tmp_path: Path, n_queries: int = N_QUERIES) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "ds.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for q in range(n_queries):
            docs = [{"doc_id": f"d{j}", "text": f"passage {j} on topic {q}"} for j in range(int(rng.integers(3, 12)))]
            line = {"query_id": f"q{q:03d}", "query": f"question {q}?", "documents": docs,
                    "meta": {"category": "a" if q % 3 else "b"}}  # fmt: skip
            fh.write(json.dumps(line) + "\n")
    return path


def settings(server, tmp_path: Path, **budget):
    return compose_config(api_overrides(server, **_budget_items(tmp_path, **budget)))


def _budget_items(tmp_path: Path, **budget) -> dict:
    items = {
        "collect.dataset": dataset(tmp_path),
        "collect.output": tmp_path / "out" / "table.csv",
        "collect.cache": tmp_path / "cache.sqlite",
        "collect.budget.enabled": "true",
        "collect.budget.ledger": tmp_path / "spend.sqlite",
        "collect.budget.report": tmp_path / "reports" / "budget.json",
        "collect.budget.round_pairs": 60,
        "collect.budget.n_bootstrap": 30,
        "api.max_documents_per_request": 4,
        "api.concurrency": 2,
    }
    items.update({f"collect.budget.{k}": v for k, v in budget.items()})
    return items


def sent_pairs(server) -> int:
    return sum(len(r.pairs) for r in server.records)


def test_a_pair_budget_is_never_crossed_and_only_whole_groups_reach_the_table(server, tmp_path, capsys):
    cfg = settings(server, tmp_path, pairs=200, band=1e-6)  # a band no budget reaches: the budget stops it
    local = SkewedMirror()
    result = collect(cfg, scorers={"local": local})
    out = capsys.readouterr().out
    assert "budget round 1:" in out and "budget: budget spent" in out
    table = pd.read_csv(result.output)
    meta = read_table_meta(result.output)
    assert local.pairs == result.budget.run.local.size  # every pair scored locally first (free)
    with SpendLedger(tmp_path / "spend.sqlite", result.sources[0].hash) as ledger:
        spent = ledger.spent()
    assert spent.pairs <= 200 and spent.pairs == sent_pairs(server) and spent.open == 0
    assert len(table) <= spent.pairs and table.groupby("query_id").size().min() >= 3
    sizes = {q["query_id"]: len(q["documents"]) for q in map(json.loads, open(cfg.collect.dataset))}
    assert all(n == sizes[q] for q, n in table.groupby("query_id").size().items())  # whole groups only
    block = meta["budget"]
    assert block["stop"] == "budget spent" and block["rule"]["pairs"] == 200
    bought = sorted({q for r in block["rounds"] for q in r})
    assert bought == sorted(table["query_id"].unique())
    assert set(block["uniform_queries"]) <= set(bought) and block["uniform_queries"]
    report = json.loads((tmp_path / "reports" / "budget.json").read_text())
    assert report["spent"]["pairs"] == spent.pairs and report["bought"]["pairs"] == len(table)
    assert [r["pairs_total"] for r in report["rounds"]] == sorted(r["pairs_total"] for r in report["rounds"])
    assert (tmp_path / "reports" / "budget.png").is_file()


def test_the_first_round_covers_every_stratum_of_the_score_range(server, tmp_path):
    cfg = settings(server, tmp_path, pairs=10_000, band=1e-6, round_pairs=80, uniform_share=0.0, strata=4)
    result = collect(cfg, scorers={"local": SkewedMirror()})
    run = result.budget.run
    first = result.budget.purchases[0]
    best = np.array([run.local[run.rows_of(q)].max() for q in range(run.sizes.size)])
    quartile = np.searchsorted(np.quantile(best, [0.25, 0.5, 0.75]), best[first], side="right")
    assert set(quartile.tolist()) == {0, 1, 2, 3}  # uniform draws of a skewed range miss the top


def test_a_larger_budget_buys_only_the_difference_and_replays_the_same_rounds(server, tmp_path):
    small = collect(settings(server, tmp_path, pairs=150, band=1e-6), scorers={"local": SkewedMirror()})
    first_sent = sent_pairs(server)
    server.reset()
    larger = collect(settings(server, tmp_path, pairs=300, band=1e-6), scorers={"local": SkewedMirror()})
    assert larger.budget.purchases[: len(small.budget.purchases) - 1] == small.budget.purchases[:-1]
    with SpendLedger(tmp_path / "spend.sqlite", larger.sources[0].hash) as ledger:
        assert ledger.spent().pairs == first_sent + sent_pairs(server) <= 300
    resent = {(q, d) for r in server.records for q, d in r.pairs}
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        assert cache.count(larger.sources[0].hash) == first_sent + len(resent)  # nothing bought twice


def test_the_target_stops_the_rounds_before_the_budget(server, tmp_path):
    cfg = settings(server, tmp_path, pairs=100_000, band=0.5, region="[0.5,0.9]")
    result = collect(cfg, scorers={"local": SkewedMirror()})
    assert result.budget.stop == "target met" and result.budget.rounds[-1].met
    assert len(result.budget.rounds) < 5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("collect.budget.enabled=true", "needs a limit"),
        ("collect.budget.region=[0.9,0.5]", "two quantile levels"),
        ("collect.budget.agreement_metric=accuracy", "agreement_metric"),
    ],
)
def test_bad_budget_settings_fail_in_one_line(override, message):
    with pytest.raises(ConfigError, match=message):
        compose_config([override])


def test_plan_buys_a_pilot_that_the_budgeted_collect_then_gets_for_free(server, tmp_path, capsys):
    from pipeline.config.collect import PlanConfig

    cfg = settings(server, tmp_path, pairs=400, band=0.05, region="[0.5,0.95]")
    result = collect(cfg, scorers={"local": SkewedMirror()}, pilot=PlanConfig(pilot_pairs=60, simulations=3))
    out = capsys.readouterr().out
    assert result.output is None and not (tmp_path / "out" / "table.csv").exists()  # a plan writes no table
    plan = result.plan
    assert plan.pilot_pairs <= 60 and plan.spent_pairs == sent_pairs(server) > 0
    assert plan.pairs["low"] <= plan.pairs["estimate"] <= plan.pairs["high"]
    assert plan.pairs["estimate"] >= plan.pilot_pairs and plan.full_pairs > plan.pairs["low"]
    assert "plan: pilot of" in out and "about" in out and "simulations" in out
    saved = json.loads((tmp_path / "reports" / "plan.json").read_text())
    assert saved["pairs"] == plan.pairs and saved["spent_pairs"] == plan.spent_pairs
    pilot_pairs = {(q, d) for r in server.records for q, d in r.pairs}
    server.reset()
    budgeted = collect(cfg, scorers={"local": SkewedMirror()})
    assert not pilot_pairs & {(q, d) for r in server.records for q, d in r.pairs}  # the pilot is not bought again
    with SpendLedger(tmp_path / "spend.sqlite", budgeted.sources[0].hash) as ledger:
        assert ledger.spent().pairs == plan.spent_pairs + sent_pairs(server) <= 400


def test_the_canary_key_is_in_no_file_or_output_of_a_budgeted_run(server, tmp_path, capsys, caplog):
    """The ledger, budget.json, plan.json and the plots hold no key, after faults and retries too."""
    from pipeline.config.collect import PlanConfig

    caplog.set_level(logging.DEBUG)
    server.state.echo_auth_in_errors = True
    server.push_faults("429:0", "503", "reset", "malformed")
    cfg = settings(server, tmp_path, pairs=300, band=1e-6)
    collect(cfg, scorers={"local": SkewedMirror()}, pilot=PlanConfig(pilot_pairs=60, simulations=2))
    collect(cfg, scorers={"local": SkewedMirror()})
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"spend.sqlite", "budget.json", "plan.json", "budget.png", "table.csv"}
    for path in written:
        assert CANARY_KEY.encode() not in path.read_bytes(), path
    captured = capsys.readouterr()
    assert CANARY_KEY not in captured.out + captured.err + caplog.text


def test_a_money_budget_is_never_crossed_and_a_cached_re_run_reports_the_same_savings(server, tmp_path, capsys):
    price = {"api.price_per_million_tokens": 2000.0}
    cfg = compose_config(api_overrides(server, **{**price, **_budget_items(tmp_path, cost=0.5, band=1e-6)}))
    first = collect(cfg, scorers={"local": SkewedMirror()})
    out = capsys.readouterr().out
    with SpendLedger(tmp_path / "spend.sqlite", first.sources[0].hash) as ledger:
        spent, rate = ledger.spent(), ledger.rate()
    assert spent.cost <= 0.5 and first.budget.stop == "budget spent" and rate is not None and rate > 0
    report = json.loads((tmp_path / "reports" / "budget.json").read_text())
    last = report["rounds"][-1]["spent"]
    assert last == {"pairs": spent.pairs, "cost": round(spent.cost, 6)}  # the ledger after the round
    round_lines = [line for line in out.splitlines() if line.startswith("budget round ")]
    assert len(round_lines) == len(report["rounds"])
    for line, entry in zip(round_lines, report["rounds"]):  # a money budget prints the ledger's spend
        assert f"cost {entry['spent']['cost']:.4f} spent" in line
    assert report["saved"]["cost"] == pytest.approx(report["full_dataset"]["cost"] - spent.cost, abs=1e-6)
    server.reset()
    collect(cfg, scorers={"local": SkewedMirror()})  # everything cached: no answer arrives this time
    assert sent_pairs(server) == 0
    again = json.loads((tmp_path / "reports" / "budget.json").read_text())
    assert again["full_dataset"]["cost"] == pytest.approx(report["full_dataset"]["cost"], rel=1e-9)
    assert again["saved"]["cost"] == pytest.approx(report["saved"]["cost"], rel=1e-9) and again["saved"]["cost"] > 0


def test_a_money_limit_without_a_price_and_a_limit_without_enabled_are_said(server, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"collect.budget.cost=1.5 needs a price"):
        compose_config(api_overrides(server, **_budget_items(tmp_path, cost=1.5)))
    items = _budget_items(tmp_path, pairs=100)
    items["collect.budget.enabled"] = "false"
    collect(compose_config(api_overrides(server, **items)), scorers={"local": SkewedMirror()})
    assert "warning: collect.budget.pairs is set but collect.budget.enabled is false" in capsys.readouterr().err
    assert sent_pairs(server) == sum(
        1 for line in open(items["collect.dataset"]) for _ in json.loads(line)["documents"]
    )


def test_plan_says_so_when_no_simulation_reaches_the_target(server, tmp_path, capsys):
    from pipeline.config.collect import PlanConfig

    cfg = settings(server, tmp_path, pairs=400, band=1e-6)
    result = collect(cfg, scorers={"local": SkewedMirror()}, pilot=PlanConfig(pilot_pairs=60, simulations=2))
    out = capsys.readouterr().out
    assert result.plan.met == 0 and "plan: no simulation reached band 1e-06 before buying every query" in out
    assert "about" not in out.split("plan: no simulation")[1].splitlines()[0]
