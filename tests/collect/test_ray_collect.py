"""collect with ``collect.ray.enabled``: the same table as one process, a dead worker retried, a
killed driver resumed with nothing recomputed.

One local Ray instance for the whole module (2 CPUs, no dashboard, a short temp dir, loopback);
the drivers started as subprocesses join it by address, the way a cluster is joined. Ray is
imported at the top on purpose: without it these tests fail, they never skip.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ray

from pipeline.collect import collect, ray_backend
from pipeline.config.compose import compose_config

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster():
    short = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # socket paths must fit in ~107 characters
    os.environ["PIPELINE_TEST_FLAKY_MARKER"] = os.path.join(short, "flaky-died")  # workers inherit it
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=short,
        _node_ip_address="127.0.0.1",
        object_store_memory=150 * 1024**2,  # scores are small; CI machines may have a small /dev/shm
        log_to_driver=False,
        logging_level="ERROR",
    )
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        shutil.rmtree(short, ignore_errors=True)


def dataset(tmp_path: Path, n_queries: int) -> Path:
    rows = []
    for q in range(n_queries):
        docs = [
            {"doc_id": f"d{j}", "text": f"document {j} of query {q}: 重力 {'x' * (j * q % 7)}"}
            for j in range(3 + q % 4)
        ]
        rows.append({"query_id": f"q{q}", "query": f"query {q}?", "documents": docs})
    path = tmp_path / f"ds{n_queries}.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def overrides(tmp_path: Path, reranker_dir: Path, ds: Path, name: str, *extra: str) -> list[str]:
    return [
        f"collect.dataset={ds}",
        f"collect.output={tmp_path / name}.csv",
        f"collect.cache={tmp_path / name}.sqlite",
        "collect.run_api=false",
        "collect.progress=false",
        "~local@collect.extra_local.local_minilm",
        f"local.model={reranker_dir}",
        "local.device=cpu",
        "local.max_length=256",
        *extra,
    ]


RAY = ("collect.ray.enabled=true", "collect.ray.workers=2", "collect.ray.queries_per_shard=2")


def test_two_workers_give_the_table_of_one_process(cluster, reranker_dir, tmp_path):
    ds = dataset(tmp_path, 12)
    one = collect(compose_config(overrides(tmp_path, reranker_dir, ds, "one")))
    two = collect(compose_config(overrides(tmp_path, reranker_dir, ds, "two", *RAY)))
    a, b = pd.read_csv(one.output), pd.read_csv(two.output)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) == sum(3 + q % 4 for q in range(12))
    assert (a[["query_id", "doc_id"]] == b[["query_id", "doc_id"]]).all().all()
    assert np.max(np.abs(a["local"] - b["local"])) <= 1e-6  # packing differs per shard, the scores do not
    # the same computation, so the same cache key: a Ray column and an in-process column are interchangeable
    assert two.meta["sources"]["local"]["fingerprint_hash"] == one.meta["sources"]["local"]["fingerprint_hash"]
    usage = two.run["usage"]["local"]["ray"]
    assert usage["workers"] == 2 and usage["shards"] == 6 and min(usage["shards_per_worker"]) >= 1
    assert usage["worker_restarts"] == 0


def test_a_worker_that_dies_is_restarted_and_its_shard_retried(cluster, reranker_dir, tmp_path, monkeypatch, capsys):
    from tests.support.ray_workers import FlakyWorker

    monkeypatch.setattr(ray_backend, "ScoringWorker", FlakyWorker)
    ds = dataset(tmp_path, 8)
    one = collect(compose_config(overrides(tmp_path, reranker_dir, ds, "one")))
    flaky = collect(compose_config(overrides(tmp_path, reranker_dir, ds, "flaky", *RAY)))
    assert Path(os.environ["PIPELINE_TEST_FLAKY_MARKER"]).exists()  # a worker did die
    usage = flaky.run["usage"]["local"]
    assert usage["ray"]["worker_restarts"] == 1 and usage["ray"]["shards"] == 4 and usage["scored"] == usage["pairs"]
    assert np.max(np.abs(pd.read_csv(one.output)["local"] - pd.read_csv(flaky.output)["local"])) <= 1e-6
    assert "1 worker restart(s)" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["nan", "too_many"])
def test_a_worker_that_returns_a_bad_array_for_one_group_stops_collect_and_writes_nothing_bad(
    cluster, reranker_dir, tmp_path, monkeypatch, mode
):
    """The Ray path shares collect's guard with the in-process path (checked_items): NaN or one
    score too many for one query group is one error naming the group, no table, and no score of
    that group -- nor any non-finite value -- in the cache. (inf and too few: tests/collect/test_collect.py,
    through the same guard.)"""
    from pipeline.collect import CollectError
    from tests.support.ray_workers import BadWorker

    monkeypatch.setattr(ray_backend, "ScoringWorker", BadWorker)
    ds = dataset(tmp_path, 6)
    rows = [json.loads(line) for line in ds.read_text(encoding="utf-8").splitlines()]
    rows[4]["query"] += f" [bad:{mode}]"
    ds.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    cfg = compose_config(overrides(tmp_path, reranker_dir, ds, "bad", *RAY))
    with pytest.raises(CollectError, match=r"^local: scorer returned a bad score array for query group 4$"):
        collect(cfg)
    assert not (tmp_path / "bad.csv").exists()
    from pipeline.core.cache import pair_key

    bad_group = [pair_key(rows[4]["query"], d["text"]) for d in rows[4]["documents"]]
    with sqlite3.connect(tmp_path / "bad.sqlite") as db:
        scores = db.execute("SELECT pair, score FROM scores").fetchall()
    assert all(np.isfinite(v) for _, v in scores) and not {p for p, _ in scores} & set(bad_group)


def test_too_many_workers_for_the_cluster_fail_at_once(cluster, reranker_dir, tmp_path):
    ds = dataset(tmp_path, 2)
    cfg = compose_config(
        overrides(
            tmp_path,
            reranker_dir,
            ds,
            "big",
            "collect.ray.enabled=true",
            "collect.ray.workers=3",
            "collect.ray.cpus_per_worker=1",
        )
    )
    from pipeline.collect import CollectError

    with pytest.raises(CollectError, match=r"ask for 3 CPU \(the cluster has 2\)"):
        collect(cfg)


def test_a_model_that_cannot_load_on_the_workers_is_one_error_not_retried(cluster, tmp_path):
    from pipeline.collect import CollectError

    ds = dataset(tmp_path, 2)
    cfg = compose_config(overrides(tmp_path, tmp_path / "no-such-model", ds, "missing", *RAY))
    # reported by the workers' describe(), not raised by their constructors (which Ray would restart)
    with pytest.raises(CollectError, match=r"^local: cannot build the local scorer .*no such directory"):
        collect(cfg)


def test_an_address_nothing_answers_at_fails_in_seconds():
    import socket

    from pipeline.collect import CollectError

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(CollectError, match=rf"collect.ray.address='127.0.0.1:{port}': nothing answers there"):
        ray_backend._check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(CollectError, match="expected auto, host:port or ray://host:port"):
        ray_backend._check_reachable("head-node")
    ray_backend._check_reachable("auto")  # Ray finds the local cluster itself


def _stored(cache: Path) -> int:
    if not cache.exists():
        return 0
    with sqlite3.connect(cache, timeout=5) as db:
        try:
            return db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        except sqlite3.OperationalError:  # the schema is not there yet
            return 0


def test_a_killed_driver_loses_only_shards_in_flight_and_the_same_command_completes(cluster, reranker_dir, tmp_path):
    ds = dataset(tmp_path, 80)
    total = sum(3 + q % 4 for q in range(80))
    args = overrides(
        tmp_path,
        reranker_dir,
        ds,
        "killed",
        "collect.ray.enabled=true",
        "collect.ray.workers=2",
        "collect.ray.queries_per_shard=1",
        "local.batch_size=1",
        f"collect.ray.address={cluster}",
    )
    command = [sys.executable, "-m", "pipeline", "collect", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cache = tmp_path / "killed.sqlite"
    driver = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while _stored(cache) < 6 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        driver.send_signal(signal.SIGKILL)  # mid-run: some shards stored, others in flight or waiting
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    stored = _stored(cache)
    print(f"killed at {stored} of {total} stored pairs")
    assert 0 < stored < total, (
        f"the kill came at {stored} of {total} stored pairs: {driver.stderr.read().decode()[-2000:]}"
    )

    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    usage = json.loads((tmp_path / "killed.csv.run.json").read_text())["usage"]["local"]
    assert usage["cached"] == stored and usage["scored"] == total - stored  # nothing stored was recomputed
    table = pd.read_csv(tmp_path / "killed.csv")
    reference = pd.read_csv(collect(compose_config(overrides(tmp_path, reranker_dir, ds, "ref"))).output)
    assert len(table) == total and np.max(np.abs(table["local"] - reference["local"])) <= 1e-6
