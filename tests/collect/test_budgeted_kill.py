"""A budgeted ``python -m pipeline collect`` killed with SIGKILL mid-round, then re-run: the same
rounds and the same table as an uninterrupted run, no pair bought twice, and a ledger that counts
every request the dead process reserved (sent or not), so no budget is spent twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.api.collector import api_fingerprint
from pipeline.api.spend import SpendLedger
from pipeline.config.compose import compose_config
from pipeline.core.cache import ScoreCache
from pipeline.data.table import read_table_meta
from pipeline.scorers.base import fingerprint_hash
from tests.support.servers import CANARY_KEY, KEY_ENV, api_overrides

REPO = Path(__file__).resolve().parents[2]
N_QUERIES = 48
PER_REQUEST, CONCURRENCY = 3, 2

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")]


def write_dataset(path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for q in range(N_QUERIES):
            docs = [{"doc_id": f"d{j}", "text": f"passage {j} about topic {q}"} for j in range(3 + q % 5)]
            fh.write(json.dumps({"query_id": f"q{q:02d}", "query": f"question {q}?", "documents": docs}) + "\n")


def command(server, dataset: Path, out: Path) -> list[str]:
    overrides = api_overrides(
        server,
        **{
            "api.concurrency": CONCURRENCY,
            "api.max_documents_per_request": PER_REQUEST,
            "collect.dataset": dataset,
            "collect.output": out / "table.csv",
            "collect.cache": out / "cache.sqlite",
            "collect.budget.enabled": "true",
            "collect.budget.pairs": 10_000,  # never binding: the run buys every query, round by round
            "collect.budget.band": 1e-9,
            "collect.budget.round_pairs": 30,
            "collect.budget.n_bootstrap": 20,
            "collect.budget.ledger": out / "spend.sqlite",
            "collect.budget.report": out / "budget.json",
            "local.device": "cpu",
        },
    )
    return [sys.executable, "-m", "pipeline", "collect", *overrides]


def env() -> dict[str, str]:
    return {**os.environ, KEY_ENV: CANARY_KEY, "PYTHONPATH": str(REPO)}


def received(server) -> int:
    return sum(len(r.pairs) for r in server.records)


def test_sigkill_mid_round_then_resume_keeps_the_selection_and_the_accounting(server, tmp_path):
    dataset = tmp_path / "ds.jsonl"
    write_dataset(dataset)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    cfg = compose_config(command(server, dataset, killed)[4:])
    api_hash = fingerprint_hash(api_fingerprint(cfg.api))

    server.state.latency_s = 0.05
    proc = subprocess.Popen(
        command(server, dataset, killed), cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while received(server) < 45:  # past the first round (30 pairs), inside the second
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "collect subprocess made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and not (killed / "table.csv").exists()
    sent_before = received(server)
    with SpendLedger(killed / "spend.sqlite", api_hash) as ledger:
        at_kill = ledger.spent()
    with ScoreCache(killed / "cache.sqlite") as cache:
        cached_before = cache.count(api_hash)
    # every request that reached the server was booked first; the booked but unanswered ones
    # (in flight, or reserved just before the kill) still count
    assert sent_before <= at_kill.pairs <= sent_before + CONCURRENCY * PER_REQUEST
    assert at_kill.open <= CONCURRENCY and cached_before < sent_before + CONCURRENCY * PER_REQUEST

    server.reset()
    server.state.latency_s = 0.0
    done = subprocess.run(command(server, dataset, killed), cwd=REPO, env=env(), capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert b"already spent on this API" in done.stdout
    resumed = received(server)
    with SpendLedger(killed / "spend.sqlite", api_hash) as ledger:
        after = ledger.spent()
    assert after.pairs == at_kill.pairs + resumed and after.open == at_kill.open  # exact: the dead run's open ones stay
    with ScoreCache(killed / "cache.sqlite") as cache:
        assert cache.count(api_hash) == cached_before + resumed  # no pair bought twice

    server.reset()
    uninterrupted = subprocess.run(
        command(server, dataset, clean), cwd=REPO, env=env(), capture_output=True, timeout=300
    )
    assert uninterrupted.returncode == 0, uninterrupted.stderr.decode()[-3000:]
    assert read_table_meta(killed / "table.csv")["budget"] == read_table_meta(clean / "table.csv")["budget"]
    pd.testing.assert_frame_equal(pd.read_csv(killed / "table.csv"), pd.read_csv(clean / "table.csv"))
