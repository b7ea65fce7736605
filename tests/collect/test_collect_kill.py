"""Crash safety: ``python -m pipeline collect`` killed with SIGKILL half-way, then re-run,
produces the same table as an uninterrupted run, and the server sees no repeated request for
any pair that was already cached when the process died."""

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
from pipeline.config.compose import compose_config
from pipeline.core.cache import ScoreCache, pair_key
from pipeline.scorers.base import fingerprint_hash
from tests.support.servers import CANARY_KEY, KEY_ENV, api_overrides

REPO = Path(__file__).resolve().parents[2]
N_QUERIES, N_DOCS = 40, 5

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")]


def write_dataset(path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for q in range(N_QUERIES):
            docs = [{"doc_id": f"d{j}", "text": f"passage {j} about topic {q} / 段落 {j}"} for j in range(N_DOCS)]
            fh.write(
                json.dumps({"query_id": f"q{q:02d}", "query": f"question {q}?", "documents": docs}, ensure_ascii=False)
                + "\n"
            )


def command(server, dataset: Path, out_dir: Path) -> list[str]:
    overrides = api_overrides(server, **{"api.concurrency": 2, "api.max_documents_per_request": N_DOCS})
    return [
        sys.executable,
        "-m",
        "pipeline",
        "collect",
        *overrides,
        "collect.run_local=false",
        f"collect.dataset={dataset}",
        f"collect.output={out_dir / 'table.csv'}",
        f"collect.cache={out_dir / 'cache.sqlite'}",
    ]


def env() -> dict[str, str]:
    return {**os.environ, KEY_ENV: CANARY_KEY, "PYTHONPATH": str(REPO)}


def test_sigkill_then_resume_matches_uninterrupted_run(server, tmp_path):
    dataset = tmp_path / "ds.jsonl"
    write_dataset(dataset)
    server.state.latency_s = 0.05
    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"

    # 1. start, and SIGKILL once the server has answered about a third of the requests
    proc = subprocess.Popen(
        command(server, dataset, killed_dir), cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 60
    while sum(r.status == 200 for r in server.records) < N_QUERIES // 3:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "collect subprocess made no progress"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err_killed = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed_dir / "table.csv").exists()

    # 2. what survived in the cache
    cfg = compose_config(command(server, dataset, killed_dir)[4:])
    api_hash = fingerprint_hash(api_fingerprint(cfg.api))
    with ScoreCache(killed_dir / "cache.sqlite") as cache:
        survived = cache.count(api_hash)
        all_keys = {
            pair_key(f"question {q}?", f"passage {j} about topic {q} / 段落 {j}")
            for q in range(N_QUERIES)
            for j in range(N_DOCS)
        }
        cached_keys = set(cache.get_many(api_hash, sorted(all_keys)))
    assert 0 < survived < N_QUERIES * N_DOCS and survived % N_DOCS == 0  # whole responses only

    # 3. resume: no request for a cached pair
    server.reset()
    server.state.latency_s = 0.01
    done = subprocess.run(command(server, dataset, killed_dir), cwd=REPO, env=env(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    resumed_pairs = [pair_key(q, d) for r in server.records for q, d in r.pairs]
    assert not set(resumed_pairs) & cached_keys
    assert len(resumed_pairs) == len(set(resumed_pairs)) == N_QUERIES * N_DOCS - survived

    # 4. an uninterrupted run gives the same table
    server.reset()
    clean = subprocess.run(command(server, dataset, clean_dir), cwd=REPO, env=env(), capture_output=True, timeout=120)
    assert clean.returncode == 0, clean.stderr.decode()
    pd.testing.assert_frame_equal(pd.read_csv(killed_dir / "table.csv"), pd.read_csv(clean_dir / "table.csv"))

    # 5. and the key is in none of the files, outputs or error streams
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert CANARY_KEY.encode() not in path.read_bytes(), path
    for stream in (err_killed, done.stdout, done.stderr, clean.stdout, clean.stderr):
        assert CANARY_KEY.encode() not in stream
