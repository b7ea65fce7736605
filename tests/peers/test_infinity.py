"""The project against a real infinity-emb 0.0.78 server (tests/peers/infinity.py): as a local
engine column, as the reference API (rerank probabilities, raw scores, embeddings), under `align`,
and under `embed-check`. Every expected value comes from the project's in-process scorers on the
same weights; the server's own behaviour (it strips every text it receives) is what the tests
exist to catch."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.__main__ import main
from pipeline.collect import collect
from pipeline.config.compose import compose_config
from pipeline.scorers.prompts import DEFAULT_INSTRUCTION
from tests.peers.infinity import MINILM, OTHER_RERANKER, RERANKER

pytestmark = pytest.mark.integration

LONG = ("The retrieval system splits long passages into sentences before ranking them. " * 40).strip()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Texts with surrounding whitespace, CJK, code and one long document (~700 tokens here)."""
    texts = [
        "  Beijing is the capital of China.  ",
        "北京是中国的首都。\n",
        "def f(x):\n    return x ** 2\n",
        "\n\ngravity attracts two bodies towards each other",
        "yes or no?",
        LONG,
        "天气 很好 ",
        " HTTP/2 ",
    ]
    queries = [
        "what is the capital of china ",
        " 重力是什么",
        "python square function\n",
        "explain gravity",
        "  long passages  ",
        "天气",
    ]
    rows = []
    for q, query in enumerate(queries):
        docs = [{"doc_id": f"d{j}", "text": texts[(q + j) % len(texts)]} for j in range(4)]
        rows.append({"query_id": f"q{q}", "query": query, "documents": docs})
    path = tmp_path_factory.mktemp("peer-data") / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def collected(tmp: Path, name: str, dataset: Path, *overrides: str, run_api: bool = False, **fields) -> pd.DataFrame:
    items = {
        "collect.dataset": dataset,
        "collect.output": tmp / f"{name}.csv",
        "collect.cache": tmp / f"{name}.sqlite",
        "collect.run_api": str(run_api).lower(),
        "collect.progress": "false",
        "reference.enabled": "false",
        "local.device": "cpu",
        "local.max_length": 2048,
    }  # no truncation: engines cut long pairs their own way
    cfg = compose_config(
        ["~local@collect.extra_local.local_minilm", *[f"{k}={v}" for k, v in items.items()], *overrides]
    )
    for section, values in fields.items():
        cfg = replace(cfg, **{section: replace(getattr(cfg, section), **values)})
    return pd.read_csv(collect(cfg).output)


def test_the_engine_column_is_the_in_process_column_of_the_prompt_infinity_computes(
    infinity, dataset, seqcls_dir, reranker_dir, tmp_path
):
    engine = collected(
        tmp_path,
        "engine",
        dataset,
        f"local.engine.base_url={infinity.base_url}",
        "local.engine.dialect=infinity",
        f"local.model={RERANKER}",
        "local.kind=cross_encoder",
        "local.template=vllm",
        "local.strip_prompt=true",
    )
    seq_cls = collected(
        tmp_path,
        "seqcls",
        dataset,
        f"local.model={seqcls_dir}",
        "local.kind=cross_encoder",
        "local.template=vllm",
        "local.strip_prompt=true",
    )
    causal = collected(
        tmp_path, "causal", dataset, f"local.model={reranker_dir}", "local.template=vllm", "local.strip_prompt=true"
    )
    assert np.max(np.abs(engine["local"] - seq_cls["local"])) <= 1e-5
    assert np.max(np.abs(engine["local"] - causal["local"])) <= 1e-5  # the conversion is exact
    unstripped = collected(tmp_path, "unstripped", dataset, f"local.model={reranker_dir}", "local.template=vllm")
    assert np.max(np.abs(engine["local"] - unstripped["local"])) > 1e-3  # what it would have mixed up silently


@pytest.mark.parametrize(
    "template, needle",
    [
        ("vllm", "local.engine.dialect=infinity strips every text it receives"),
        ("official", "cannot be reproduced by an HTTP engine"),
    ],
)
def test_a_prompt_the_server_would_not_compute_is_refused_in_one_line(
    infinity, dataset, tmp_path, capsys, template, needle
):
    code = main(
        [
            "collect",
            "~local@collect.extra_local.local_minilm",
            f"collect.dataset={dataset}",
            f"collect.output={tmp_path / 't.csv'}",
            f"collect.cache={tmp_path / 'c.sqlite'}",
            "collect.run_api=false",
            "reference.enabled=false",
            f"local.engine.base_url={infinity.base_url}",
            "local.engine.dialect=infinity",
            f"local.model={RERANKER}",
            "local.kind=cross_encoder",
            f"local.template={template}",
        ]
    )
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
    assert "local.strip_prompt=true" in lines[0] or "local.template=vllm" in lines[0]
    assert not (tmp_path / "t.csv").exists()


@pytest.mark.parametrize("raw", [False, True])
def test_collect_against_infinity_as_the_reference_api(infinity, dataset, seqcls_dir, tmp_path, raw):
    """api=infinity sends the bare texts; infinity strips them and scores the pair without a prompt:
    the in-process cross-encoder with template=none and each text stripped."""
    api = collected(
        tmp_path,
        f"api-{raw}",
        dataset,
        "api=infinity",
        f"api.base_url={infinity.base_url}",
        f"api.model={RERANKER}",
        f"api.raw_scores={str(raw).lower()}",
        f"local.model={seqcls_dir}",
        "local.kind=cross_encoder",
        "local.template=none",
        "local.strip_prompt=true",
        f"local.activation={'none' if raw else 'sigmoid'}",
        run_api=True,
    )
    assert np.max(np.abs(api["reference"] - api["local"])) <= 1e-5
    if not raw:
        assert api["reference"].between(0, 1).all()


def test_collect_against_infinity_embeddings(infinity, dataset, tmp_path):
    api = collected(
        tmp_path,
        "emb",
        dataset,
        "api=infinity",
        f"api.base_url={infinity.base_url}",
        f"api.model={MINILM}",
        "api.endpoint=embeddings",
        "local=minilm-bundled",
        "local.strip_prompt=true",
        "local.max_length=256",
        run_api=True,
    )  # MiniLM's max_seq_length, as infinity truncates
    assert np.max(np.abs(api["reference"] - api["local"])) <= 1e-5


def _align_cfg(tmp: Path, dataset: Path, model: Path, served: str, base_url: str):
    cfg = compose_config(
        [
            "local=demo-reranker",
            f"local.model={model}",
            "local.max_length=2048",
            "api=infinity-qwen3-reranker",
            f"api.base_url={base_url}",
            f"api.model={served}",
            f"collect.dataset={dataset}",
            f"collect.cache={tmp / 'cache.sqlite'}",
            f"align.root={tmp / 'align'}",
            "align.name=inf",
            "align.sample_queries=3",
            "align.confirm_queries=3",
            "align.n_bootstrap=100",
            "align.noise_pairs=4",
            "collect.progress=false",
            "reference.enabled=false",
            "~local@collect.extra_local.local_minilm",
        ]
    )
    assert cfg.local.template.value == "official" and cfg.api.instruction == DEFAULT_INSTRUCTION  # the model card's
    return cfg


def test_align_from_the_model_card_finds_what_infinity_computes(infinity, dataset, reranker_dir, tmp_path):
    from pipeline.align.run import align

    result = align(_align_cfg(tmp_path, dataset, reranker_dir, RERANKER, infinity.base_url))
    best = {k: getattr(v, "value", v) for k, v in result.best.settings.items()}
    assert result.aligned and best["template"] in ("vllm", "official") and best["strip_prompt"] is True, best
    assert result.best.max_delta <= 1e-5
    assert result.summary["confirmation"]["after"]["spearman"]["value"] >= 0.99  # held out
    assert (tmp_path / "align" / "inf" / "aligned-inf.yaml").exists()


def test_align_against_other_weights_is_not_aligned(infinity, dataset, reranker_dir, tmp_path, capsys, monkeypatch):
    from pipeline.align import run as align_stage

    cfg = _align_cfg(tmp_path, dataset, reranker_dir, OTHER_RERANKER, infinity.base_url)
    monkeypatch.setattr(align_stage, "align", lambda c, out=None, _real=align_stage.align: _real(cfg, out))
    from pipeline.stages import run_stage

    code = run_stage("align", cfg)
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.err
    assert "NOT ALIGNED" in " ".join(out.out.split())
    report = json.loads((tmp_path / "align" / "inf" / "align.json").read_text())
    assert report["aligned"] is False and not (tmp_path / "align" / "inf" / "aligned-inf.yaml").exists()


def _embed_check(tmp: Path, base_url: str, *extra: str) -> list[str]:
    return [
        "embed-check",
        "embed_check.against=api",
        "api=infinity",
        f"api.base_url={base_url}",
        f"api.model={MINILM}",
        "api.endpoint=embeddings",
        "embed_check.max_queries=6",
        "embed_check.local.device=cpu",
        f"embed_check.report_dir={tmp / 'report'}",
        f"collect.cache={tmp / 'cache.sqlite'}",
        *extra,
    ]


def test_embed_check_agrees_with_infinitys_minilm(infinity, tmp_path, capsys):
    code = main(_embed_check(tmp_path, infinity.base_url, "embed_check.local.strip_prompt=true"))
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.strip().splitlines()[-1].startswith("embed-check: PASS")


def test_embed_check_names_a_pooling_difference_as_the_cause(infinity, tmp_path, capsys):
    code = main(
        _embed_check(
            tmp_path, infinity.base_url, "embed_check.local.strip_prompt=true", "embed_check.local.pooling=cls"
        )
    )
    out = " ".join(capsys.readouterr().out.split())
    assert code == 1 and "FAIL" in out
    assert "cause: the other side pools with 'mean' (this side: 'cls')" in out
