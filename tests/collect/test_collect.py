"""The collect stage end to end (in-process) against the loopback fake API, with a fake local
scorer: the table and its metadata, every dialect, the cache and resume, the dry run, errors,
and the canary key that must appear nowhere."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.collect import CollectError, api_side, collect
from pipeline.collect import stage as collect_impl
from pipeline.config.compose import ConfigError, compose_config, to_yaml
from pipeline.core.cache import ScoreCache, pair_key
from pipeline.data.table import read_table
from pipeline.stages import run_stage
from pipeline.testing.fake_api import expected_score
from tests.support.servers import CANARY_KEY, KEY_ENV, BadScorer, HashScorer, api_overrides

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo" / "calibration.jsonl"
#: the tests collect a 10-query sample of the demo dataset (collect.max_queries)
SAMPLE = 10


def small_dataset(tmp_path: Path, n_queries: int = 3, n_docs: int = 4, labels: bool = True) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "ds.jsonl"
    lines = []
    for q in range(n_queries):
        docs = [{"doc_id": f"d{j}", "text": f"document {j} for query {q}: 文档 {j}"} for j in range(n_docs)]
        if labels:
            for j, d in enumerate(docs):
                if j % 2 == 0:
                    d["label"] = j % 3
        lines.append(
            json.dumps({"query_id": f"q{q}", "query": f"query number {q}?", "documents": docs}, ensure_ascii=False)
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_cfg(
    server,
    tmp_path: Path,
    dataset: Path | None = None,
    dialect: str = "siliconflow",
    output: str = "out/table.csv",
    **extra,
):
    overrides = api_overrides(server, dialect)
    overrides += [
        f"collect.dataset={dataset or DEMO}",
        f"collect.output={tmp_path / output}",
        f"collect.cache={tmp_path / 'cache.sqlite'}",
    ]
    if dataset is None:
        overrides.append(f"collect.max_queries={SAMPLE}")
    overrides += [f"{k}={v}" for k, v in extra.items()]
    return compose_config(overrides)


def test_demo_dataset_end_to_end(server, tmp_path, capsys):
    cfg = make_cfg(server, tmp_path)
    local = HashScorer()
    result = collect(cfg, scorers={"local": local})
    frame = pd.read_csv(result.output)
    assert list(frame.columns) == ["query_id", "doc_id", "label", "reference", "local"]
    assert len(frame) == 100 and frame[["query_id", "doc_id"]].drop_duplicates().shape[0] == 100

    from pipeline.data.dataset import load_dataset

    ds = load_dataset(DEMO).sample(SAMPLE, cfg.seed)
    assert len(ds.queries) == SAMPLE
    rows = [(q, d) for q in ds.queries for d in q.documents]
    assert list(frame["doc_id"]) == [d.doc_id for _, d in rows]  # dataset order
    np.testing.assert_allclose(frame["reference"], [expected_score(q.text, d.text) for q, d in rows], rtol=1e-9)
    np.testing.assert_allclose(frame["local"], [local.value(q.text, d.text) for q, d in rows], rtol=1e-9)
    # one request per query group (10 documents <= max_documents_per_request)
    assert len(server.records) == 10 and all(len(r.pairs) == 10 for r in server.records)

    table = read_table(result.output, target="reference", sources=["local"])  # what fit reads
    assert table.n_rows == 100 and table.meta["simulated"] is False
    meta = json.loads(Path(str(result.output) + ".meta.json").read_text())
    ref, loc = meta["sources"]["reference"], meta["sources"]["local"]
    assert ref["kind"] == "api" and ref["model"] == "Qwen/Qwen3-Reranker-0.6B" and ref["score_type"] == "probability"
    assert ref["instruction"] and len(ref["fingerprint_hash"]) == 64 and ref["fingerprint"]["dialect"] == "siliconflow"
    assert loc["kind"] == "local" and loc["fingerprint_hash"] == local.fingerprint_hash()
    assert meta["dataset"] == {
        "path": str(DEMO),
        "sha256": ds.sha256,
        "queries": 10,
        "pairs": 100,
        "labelled_pairs": 100,
        "sampled_from": len(load_dataset(DEMO).queries),
    }
    assert "usage" not in meta and "started" not in meta  # the committed sidecar holds no per-run figures
    run = json.loads(Path(str(result.output) + ".run.json").read_text())
    assert run == result.run and run["usage"]["reference"]["requests"] == 10 and run["usage"]["reference"]["tokens"] > 0
    assert run["started"] <= run["finished"]
    summary = capsys.readouterr().out
    assert "requests" in summary and "429s" in summary and "reference" in summary


def test_collected_table_fits_and_the_manifest_carries_its_provenance(server, tmp_path):
    from pipeline.inference import load_calibrator
    from pipeline.stages import fit as fit_stage

    local = HashScorer()
    result = collect(make_cfg(server, tmp_path, **{"text.nfkc": "true"}), scorers={"local": local})
    cfg = compose_config(
        [
            f"data.path={result.output}",
            f"report.dir={tmp_path / 'reports'}",
            f"export.root={tmp_path / 'artifacts'}",
            "export.name=collected",
            "text.nfkc=true",
        ]
    )
    assert fit_stage.run(cfg) == 0
    cal = load_calibrator(tmp_path / "artifacts" / "collected", model=local.fingerprint()["model"])
    source, target = cal.manifest["sources"][0], cal.manifest["target"]
    assert source["fingerprint_hash"] == local.fingerprint_hash() and source["fingerprint"] == local.fingerprint()
    assert target["kind"] == "api" and target["model"] == "Qwen/Qwen3-Reranker-0.6B" and target["instruction"]
    assert cal.manifest["preprocessing"]["nfkc"] is True and cal.manifest["data"]["simulated"] is False
    assert cal.preprocess("ＡＢＣ") == "ABC"


@pytest.mark.parametrize(
    "dialect", ["siliconflow", "cohere", "jina", "voyage", "tei", "vllm", "vllm_score", "infinity"]
)
def test_every_adapter_through_collect(server, tmp_path, dialect):
    ds = small_dataset(tmp_path, labels=False)
    cfg = make_cfg(server, tmp_path, ds, dialect, **{"collect.run_local": "false"})
    result = collect(cfg)
    frame = pd.read_csv(result.output)
    assert list(frame.columns) == ["query_id", "doc_id", "reference"]
    from pipeline.data.dataset import load_dataset

    want = [expected_score(q.text, d.text) for q in load_dataset(ds).queries for d in q.documents]
    np.testing.assert_allclose(frame["reference"], want, rtol=1e-9)


def test_embeddings_config_through_collect(server, tmp_path):
    ds = small_dataset(tmp_path)
    cfg = compose_config(
        [
            *api_overrides(server, group="siliconflow-embeddings"),
            "api.dimensions=64",
            f"collect.dataset={ds}",
            f"collect.output={tmp_path / 't.parquet'}",
            f"collect.cache={tmp_path / 'c.sqlite'}",
        ]
    )
    result = collect(cfg, scorers={"local": HashScorer()})
    frame = pd.read_parquet(result.output)
    assert frame["reference"].between(-1, 1).all()
    assert result.meta["sources"]["reference"]["score_type"] == "cosine"
    assert server.records[0].body["input"][0].startswith("Instruct: ")


def test_rerun_is_served_from_the_cache(server, tmp_path):
    cfg = make_cfg(server, tmp_path)
    first = collect(cfg, scorers={"local": HashScorer()})
    before = pd.read_csv(first.output)
    server.reset()
    again = HashScorer()
    second = collect(cfg, scorers={"local": again})
    assert server.records == [] and again.calls == []
    pd.testing.assert_frame_equal(before, pd.read_csv(second.output))
    assert second.run["usage"]["reference"]["cached"] == 100


def test_changing_instruction_or_local_fingerprint_changes_the_key(server, tmp_path):
    collect(make_cfg(server, tmp_path), scorers={"local": HashScorer()})
    server.reset()
    collect(make_cfg(server, tmp_path, **{"api.instruction": "Judge code relevance"}), scorers={"local": HashScorer()})
    assert len(server.records) == 10 and server.records[0].body["instruction"] == "Judge code relevance"
    server.reset()
    other = HashScorer(salt="other-model")
    collect(make_cfg(server, tmp_path), scorers={"local": other})
    assert server.records == [] and sum(other.calls) == 100


def test_preprocessed_text_goes_to_the_api_and_the_local_scorer(server, tmp_path):
    path = tmp_path / "ds.jsonl"
    path.write_text(
        json.dumps(
            {
                "query_id": "q",
                "query": "Ｈｅｌｌｏ  “world”  ",
                "documents": [{"doc_id": "d", "text": "ｆｕｌｌ　width\u200b"}],
            }
        )
        + "\n"
    )
    cfg = make_cfg(
        server,
        tmp_path,
        path,
        **{
            "text.fullwidth": "true",
            "text.quotes": "true",
            "text.invisible": "true",
            "text.collapse_whitespace": "true",
        },
    )
    local = HashScorer()
    result = collect(cfg, scorers={"local": local})
    body = server.records[0].body
    assert body["query"] == 'Hello "world"' and body["documents"] == ["full width"]
    frame = pd.read_csv(result.output)
    assert frame["local"][0] == pytest.approx(local.value('Hello "world"', "full width"))


def test_batching_splits_large_groups(server, tmp_path):
    ds = small_dataset(tmp_path, n_queries=2, n_docs=7)
    collect(make_cfg(server, tmp_path, ds, **{"api.max_documents_per_request": 3, "collect.run_local": "false"}))
    assert sorted(len(r.pairs) for r in server.records) == [1, 1, 3, 3, 3, 3]  # 7 = 3 + 3 + 1 per group
    server.reset()
    collect(
        make_cfg(
            server,
            tmp_path,
            ds,
            output="t2.csv",
            **{"api.max_tokens_per_request": 1, "collect.run_local": "false", "api.instruction": "x"},
        )
    )
    assert len(server.records) == 14  # a token cap below one document: one document per request


def test_dry_run_sends_and_writes_nothing(server, tmp_path, capsys):
    cfg = make_cfg(server, tmp_path, **{"collect.dry_run": "true", "api.price_per_million_tokens": 2.0})
    result = collect(cfg, scorers={"local": HashScorer()})
    out = capsys.readouterr().out
    assert result.output is None and server.records == []
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache.sqlite").exists()
    assert "100 pairs to score, 0 cached" in out and "requests: 10" in out
    tokens = int(out.split("tokens (estimate): ")[1].split()[0])
    assert f"estimated cost: {tokens / 1e6 * 2.0:.4f}" in out


def test_dry_run_counts_only_uncached_pairs(server, tmp_path, capsys):
    ds = small_dataset(tmp_path, n_queries=4)
    collect(make_cfg(server, tmp_path, small_dataset(tmp_path / "half", n_queries=2), **{"collect.run_local": "false"}))
    capsys.readouterr()
    server.reset()
    collect(make_cfg(server, tmp_path, ds, **{"collect.dry_run": "true"}))
    out = capsys.readouterr().out
    assert "8 pairs to score, 8 cached" in out and "requests: 2" in out and server.records == []


def test_dry_run_needs_no_key(server, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV)
    collect(make_cfg(server, tmp_path, **{"collect.dry_run": "true"}))
    assert "requests: 10" in capsys.readouterr().out


def test_api_failure_keeps_finished_work_and_resume_completes(server, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(collect_impl, "build_local_scorer", lambda lcfg, cfg: HashScorer())
    ds = small_dataset(tmp_path, n_queries=6)
    server.state.fault_fn = lambda n, d, b: "400" if n == 4 else None
    cfg = make_cfg(server, tmp_path, ds, **{"api.concurrency": 1})
    assert run_stage("collect", cfg) == 2
    err = capsys.readouterr().err
    assert "400 Bad Request" in err and CANARY_KEY not in err
    assert not (tmp_path / "out" / "table.csv").exists()  # no partial table
    server.reset()
    result = collect(cfg, scorers={"local": HashScorer()})
    assert len(server.records) == 3  # the three groups answered before the 400 were cached
    assert result.run["usage"]["reference"]["cached"] == 12


def test_missing_key_fails_before_loading_models(server, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV)
    local = HashScorer(fail_after=0)
    cfg = make_cfg(server, tmp_path)
    monkeypatch.setattr(collect_impl, "build_local_scorer", lambda *a: pytest.fail("model loaded before key check"))
    assert run_stage("collect", cfg) == 2  # a setting, found before any work
    assert f"environment variable {KEY_ENV} is not set" in capsys.readouterr().err
    assert local.calls == [] and server.records == []


def test_local_only_and_api_only(server, tmp_path, monkeypatch):
    ds = small_dataset(tmp_path)
    monkeypatch.delenv(KEY_ENV)  # local-only needs no key
    result = collect(make_cfg(server, tmp_path, ds, **{"collect.run_api": "false"}), scorers={"local": HashScorer()})
    assert list(pd.read_csv(result.output).columns) == ["query_id", "doc_id", "label", "local"]
    assert server.records == [] and "reference" not in result.meta["sources"]
    with pytest.raises(CollectError, match="both false"):
        collect(make_cfg(server, tmp_path, ds, **{"collect.run_api": "false", "collect.run_local": "false"}))


def test_extra_local_scorers_get_their_own_columns(server, tmp_path):
    ds = small_dataset(tmp_path)
    cfg = make_cfg(server, tmp_path, ds, **{"+local@collect.extra_local.local_b": "qwen3-reranker-4b"})
    assert cfg.collect.extra_local["local_b"].model == "Qwen/Qwen3-Reranker-4B"  # the whole entry, in params
    a, b = HashScorer("a"), HashScorer("b")
    result = collect(cfg, scorers={"local": a, "local_b": b})
    frame = pd.read_csv(result.output)
    assert list(frame.columns) == ["query_id", "doc_id", "label", "reference", "local", "local_b"]
    assert not np.allclose(frame["local"], frame["local_b"])
    assert result.meta["sources"]["local_b"]["fingerprint_hash"] == b.fingerprint_hash()
    with pytest.raises(ConfigError, match="Could not find 'local/nope'"):
        make_cfg(server, tmp_path, ds, **{"+local@collect.extra_local.local_c": "nope"})


def test_column_name_clash(server, tmp_path):
    with pytest.raises(CollectError, match=r"\['local'\] used twice"):
        collect(make_cfg(server, tmp_path, **{"collect.reference_col": "local"}))


def test_partial_labels_become_missing_values(server, tmp_path):
    ds = small_dataset(tmp_path)  # labels on even documents only
    result = collect(make_cfg(server, tmp_path, ds, output="t.parquet"), scorers={"local": HashScorer()})
    labels = pd.read_parquet(result.output)["label"]
    assert labels.isna().sum() == 6 and labels.notna().sum() == 6
    assert result.meta["dataset"]["labelled_pairs"] == 6


def test_local_scorer_failure_stops_the_run(server, tmp_path, capsys):
    ds = small_dataset(tmp_path, n_queries=20)
    cfg = make_cfg(server, tmp_path, ds, **{"collect.local_groups_per_batch": 2})
    with pytest.raises(RuntimeError, match="injected failure"):
        collect(cfg, scorers={"local": HashScorer(fail_after=4)})
    from pipeline.core.cache import ScoreCache

    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        assert cache.count(HashScorer().fingerprint_hash()) == 8  # finished batches are kept


def test_progress_bar_shows_live_counts(server, tmp_path, capsys):
    server.push_faults("429", "503")
    cfg = make_cfg(server, tmp_path, **{"collect.progress": "true", "api.concurrency": 1})
    collect(cfg, scorers={"local": HashScorer()})
    captured = capsys.readouterr()
    assert "pair/s" in captured.err and "r429=1" in captured.err and "retries=2" in captured.err
    summary = captured.out.splitlines()
    row = next(line for line in summary if line.startswith("reference"))
    assert row.split()[5:8] == ["12", "2", "1"]  # requests, retries, 429s


def test_canary_key_appears_nowhere(server, tmp_path, capsys, caplog, monkeypatch):
    """Faults, retries, an echoing 401 and a clean run: the key is in no file, log or output."""
    monkeypatch.setattr(collect_impl, "build_local_scorer", lambda lcfg, cfg: HashScorer())
    caplog.set_level(logging.DEBUG)
    server.state.echo_auth_in_errors = True
    server.push_faults("429:0", "503", "reset", "malformed", "401")
    cfg = make_cfg(server, tmp_path, **{"api.concurrency": 1})
    assert run_stage("collect", cfg) == 2  # the 401 stops it
    server.reset()
    server.state.echo_auth_in_errors = True
    assert run_stage("collect", cfg) == 0
    captured = capsys.readouterr()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"table.csv", "table.csv.meta.json", "cache.sqlite"}
    for path in written:
        assert CANARY_KEY.encode() not in path.read_bytes(), path
    assert CANARY_KEY not in captured.out + captured.err + caplog.text
    assert CANARY_KEY not in to_yaml(cfg)
    assert "401 Unauthorized" in captured.err and KEY_ENV in captured.err


def test_end_to_end_with_a_tiny_qwen3_reranker(server, tmp_path):
    tiny = pytest.importorskip("pipeline.testing.tiny_models", reason="pipeline/testing/tiny_models.py not available")
    model_dir = tiny.build_tiny_qwen3_reranker(tmp_path / "tiny-qwen3-reranker")
    ds = small_dataset(tmp_path, n_queries=2, n_docs=3)
    cfg = make_cfg(
        server, tmp_path, ds, **{"local.model": str(model_dir), "local.device": "cpu", "local.max_length": 256}
    )
    result = collect(cfg)
    frame = pd.read_csv(result.output)
    assert frame["local"].between(0, 1).all() and frame["local"].nunique() > 1
    local = result.meta["sources"]["local"]
    assert local["kind"] == "local" and local["score_type"] == "probability"
    assert local["fingerprint"]["model"] == str(model_dir) and "instruction" in local
    assert all(math.isfinite(v) for v in frame["reference"])
    server.reset()
    again = collect(cfg)  # everything cached: no request, same table
    assert server.records == [] and again.run["usage"]["local"]["cached"] == 6


def test_a_fresh_cache_is_seeded_from_the_previous_table(server, tmp_path, capsys):
    """A committed table travels with a clone, the cache does not: the table refills it, so
    switching the local model does not ask the API again."""
    ds = small_dataset(tmp_path)
    first = collect(make_cfg(server, tmp_path, ds), scorers={"local": HashScorer("v1")})
    requests = len(server.records)
    (tmp_path / "cache.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"cache.sqlite{suffix}").unlink(missing_ok=True)
    second = collect(make_cfg(server, tmp_path, ds), scorers={"local": HashScorer("v2")})
    assert len(server.records) == requests  # every reference score came from the seeded cache
    assert second.run["usage"]["reference"]["cached"] == 12 and second.run["usage"]["local"]["scored"] == 12
    assert "seeded the score cache with 24 score(s)" in capsys.readouterr().out  # reference + the v1 local column
    back = collect(make_cfg(server, tmp_path, ds), scorers={"local": HashScorer("v1")})
    assert back.run["usage"]["local"]["cached"] == 12  # v1's scores were seeded before v2 replaced the table
    pd.testing.assert_frame_equal(pd.read_csv(back.output), pd.read_csv(first.output))
    # another dataset file: the old table's keys would name other texts, so nothing is seeded
    other = small_dataset(tmp_path / "other", n_queries=3, n_docs=4, labels=False)
    (tmp_path / "cache.sqlite").unlink()
    collect(make_cfg(server, tmp_path, other), scorers={"local": HashScorer("v1")})
    assert "seeded the score cache" not in capsys.readouterr().out


def test_a_source_that_leaves_pairs_unscored_fails_and_writes_no_table(server, tmp_path, monkeypatch):
    """No error from the API, but one planned request never sent: collect must notice the missing
    scores after the run, raise, and write no table (a partial table would look complete)."""
    real_plan = api_side.plan_requests
    monkeypatch.setattr(api_side, "plan_requests", lambda *a, **k: real_plan(*a, **k)[:-1])
    ds = small_dataset(tmp_path, n_queries=3, n_docs=4)
    cfg = make_cfg(server, tmp_path, ds)
    with pytest.raises(CollectError, match=r"reference: 4 pair\(s\) have no score after the run; re-run to resume"):
        collect(cfg, scorers={"local": HashScorer()})
    assert not Path(cfg.collect.output).exists() and not Path(cfg.collect.output + ".meta.json").exists()


@pytest.mark.parametrize("mode", BadScorer.MODES)
def test_a_scorer_that_returns_a_bad_array_for_one_group_stops_collect_and_writes_nothing_bad(
    server, tmp_path, capsys, monkeypatch, mode
):
    """NaN, inf, one score too few or too many for one query group: one error line (exit 2), no
    table, and no score of that group -- nor any non-finite value -- in the cache."""
    import math
    import sqlite3

    ds = small_dataset(tmp_path, n_queries=6)
    bad = BadScorer(mode, marker="number 4?")
    monkeypatch.setattr(collect_impl, "build_local_scorer", lambda lcfg, cfg: bad)
    cfg = make_cfg(server, tmp_path, ds, **{"collect.local_groups_per_batch": 1})
    assert run_stage("collect", cfg) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "bad score array for query group 4" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out" / "table.csv").exists()
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        keys = [pair_key("query number 4?", f"document {j} for query 4: 文档 {j}") for j in range(4)]
        assert cache.get_many(bad.fingerprint_hash(), keys) == {}
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        values = [v for (v,) in db.execute("SELECT score FROM scores")]
    assert values and all(math.isfinite(v) for v in values)


def test_an_api_that_answers_408_every_time_stops_after_the_retries_with_nothing_cached(
    server, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(collect_impl, "build_local_scorer", lambda lcfg, cfg: HashScorer())
    server.state.fault_fn = lambda n, d, b: "408"
    ds = small_dataset(tmp_path, n_queries=2)
    cfg = make_cfg(
        server,
        tmp_path,
        ds,
        **{"api.retry_attempts": 3, "api.concurrency": 1, "api.backoff_initial_s": 0.01, "api.backoff_max_s": 0.02},
    )
    assert run_stage("collect", cfg) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "gave up after 3 attempt(s)" in lines[0] and "408" in lines[0]
    assert len(server.records) == 3  # one request, retried twice, then the line
    with ScoreCache(tmp_path / "cache.sqlite") as cache:
        api_hash = collect_impl.api_source(cfg).hash
        assert cache.count(api_hash) == 0
