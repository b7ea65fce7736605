"""`align` against references that differ from a local transformers run in one known way each,
scored by the model-card reimplementation (not the project's scorer), on one tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.__main__ import main
from pipeline.align.run import align
from pipeline.config.compose import compose_config
from pipeline.config.reference import ReferenceConfig
from pipeline.reference.server import ReferenceServer
from tests.support.mismatched_reference import OTHER_INSTRUCTION, MismatchedCardModel

pytestmark = pytest.mark.slow

SERVED = "demo/qwen3-reranker-tiny"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """12 queries x 4 documents; a share of texts with surrounding whitespace (what strip changes)."""
    rng = np.random.default_rng(0)
    words = [
        "softmax",
        "gradient",
        "北京",
        "capital",
        "def f(x):",
        "matrix",
        "天气",
        "HTTP/2",
        "tokens",
        "cache",
        "ＡＰＩ",
        "１２３",
        "x²",
    ]  # full-width and superscript forms: what NFKC changes
    lines = []
    for q in range(12):
        pick = lambda n: " ".join(rng.choice(words, n))  # noqa: E731
        docs = [
            {"doc_id": f"d{q}-{j}", "text": ("  " if j % 2 else "") + pick(6) + ("\n" if j % 3 == 0 else "")}
            for j in range(4)
        ]
        lines.append(
            json.dumps(
                {"query_id": f"q{q}", "query": pick(3) + (" " if q % 2 else ""), "documents": docs}, ensure_ascii=False
            )
        )
    path = tmp_path_factory.mktemp("align-data") / "pairs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def overrides(tmp_path: Path, dataset: Path, model: Path, base_url: str | None, *extra: str) -> list[str]:
    out = [
        "local=demo-reranker",
        f"local.model={model}",
        "local.max_length=512",
        "api=demo-reference",
        f"api.model={SERVED}",
        f"collect.dataset={dataset}",
        f"collect.cache={tmp_path / 'cache.sqlite'}",
        f"align.root={tmp_path / 'align'}",
        "align.name=t",
        "align.sample_queries=7",
        "align.confirm_queries=5",
        "align.n_bootstrap=100",
        "align.noise_pairs=4",
        "collect.progress=false",
        f"align.instructions=['{OTHER_INSTRUCTION}']",
    ]
    if base_url is not None:
        out += ["reference.enabled=false", f"api.base_url={base_url}"]
    return out + list(extra)


def serve(model_dir: Path, mismatch: str) -> ReferenceServer:
    settings = ReferenceConfig(model=str(model_dir), served_model=SERVED)
    return ReferenceServer(settings, model_factory=lambda s: MismatchedCardModel(s, model_dir, mismatch))


@pytest.mark.parametrize(
    "mismatch, expect",
    [
        ("none", {}),
        ("no_template", {"template": "none"}),
        ("vllm_split", {}),  # with Qwen's pre-tokenizer the split gives the official tokens: any such template
        ("strip", {"strip_texts": True}),
        ("strip_prompt", {"strip_prompt": True}),
        ("instruction", {"instruction": OTHER_INSTRUCTION}),
    ],
)
def test_align_finds_the_configuration_that_reproduces_each_reference(
    tmp_path, dataset, reranker_dir, mismatch, expect
):
    with serve(reranker_dir, mismatch) as server:
        result = align(compose_config(overrides(tmp_path, dataset, reranker_dir, server.base_url)))
    best = result.best
    assert result.aligned and best.max_delta <= 1e-5, (best.settings, best.max_delta)
    for key, value in expect.items():
        assert getattr(best.settings[key], "value", best.settings[key]) == value
    confirm = result.summary["confirmation"]
    assert confirm["after"]["max_abs_delta"] <= 1e-5  # held out, on queries the search never saw
    assert confirm["after"]["spearman"]["value"] >= confirm["before"]["spearman"]["value"]
    written = Path(tmp_path / "align" / "t")
    assert {"candidates.csv", "align.json", "align.png", "aligned-t.yaml"} <= {p.name for p in written.iterdir()}


def test_a_bfloat16_reference_is_reproduced_within_bfloat16_rounding(tmp_path, dataset, reranker_dir):
    with serve(reranker_dir, "bfloat16") as server:
        result = align(compose_config(overrides(tmp_path, dataset, reranker_dir, server.base_url)))
    assert result.aligned and result.best.pearson_monotone >= 0.999  # ranks of 4 documents tie under bf16 rounding
    assert result.best.max_delta <= 2**-7  # bfloat16 keeps 8 significant bits: P(yes) near 1 rounds by 2^-8
    assert any(getattr(m.settings["dtype"], "value", None) == "bfloat16" and m.ok for m in result.results)


def test_other_weights_are_reported_unalignable_and_nothing_is_written_to_conf(
    tmp_path, dataset, reranker_dir, reranker_v2_dir, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    with serve(reranker_v2_dir, "none") as server:
        code = main(["align", *overrides(tmp_path, dataset, reranker_dir, server.base_url), "--apply"])
    out = capsys.readouterr()
    text = " ".join((out.out + out.err).split())
    assert code == 1
    assert "NOT ALIGNED: no candidate reproduces the API" in text and "Different weights or revision suspected" in text
    assert "align.apply: nothing applied" in text
    assert not (tmp_path / "align" / "t" / "aligned-t.yaml").exists() and not (tmp_path / "conf").exists()


def test_a_reference_no_monotone_map_fits_is_not_aligned_without_a_crash(tmp_path, dataset, reranker_dir, capsys):
    """Scores ordered the other way round make the isotonic map constant: the monotone Pearson is
    undefined (NaN). The verdict is still NOT ALIGNED, exit 1, with align.json written (NaN as null)."""
    with serve(reranker_dir, "inverted") as server:
        code = main(["align", *overrides(tmp_path, dataset, reranker_dir, server.base_url)])
    out = capsys.readouterr()
    assert code == 1 and "Traceback" not in out.err, out.err
    assert "NOT ALIGNED" in " ".join(out.out.split())
    report = json.loads((tmp_path / "align" / "t" / "align.json").read_text())
    assert report["aligned"] is False and any(c.get("pearson_monotone") is None for c in report["all"])
    assert not (tmp_path / "align" / "t" / "aligned-t.yaml").exists()


def test_the_demo_reference_is_aligned_and_apply_writes_a_usable_local_config(
    tmp_path, dataset, reranker_dir, capsys, monkeypatch
):
    """The demo's own loopback reference (vLLM template, stripping, bfloat16, its own default
    instruction) on the tiny weights; the applied YAML is a normal local= entry."""
    monkeypatch.chdir(tmp_path)
    args = overrides(
        tmp_path,
        dataset,
        reranker_dir,
        None,
        f"reference.model={reranker_dir}",
        "reference.instruction=" + OTHER_INSTRUCTION,
    )
    assert main(["align", *args, "--apply"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "held out (5 queries): per-query Spearman" in text and "as configured ->" in text
    applied = tmp_path / "conf" / "local" / "aligned-t.yaml"
    body = applied.read_text(encoding="utf-8")
    assert body.startswith("# @package local") and "strip_texts: true" in body and "dtype: bfloat16" in body
    assert f"aligned_by: {tmp_path / 'align' / 't' / 'align.json'}" in body
    summary = json.loads((tmp_path / "align" / "t" / "align.json").read_text())
    assert summary["aligned"] and summary["model_loads"] <= 2  # prompt variants reuse the loaded weights


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            [
                "align.templates=[]",
                "align.strip_texts=[]",
                "align.strip_prompt=[]",
                "align.dtypes=[]",
                "align.instructions=[]",
            ],
            "align: the candidate grid is empty",
        ),
        (
            ["align.sample_queries=40"],
            "12 queries; align needs align.sample_queries=40 for the search plus at least 1 more",
        ),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(tmp_path, dataset, reranker_dir, capsys, extra, message):
    assert main(["align", *overrides(tmp_path, dataset, reranker_dir, "http://127.0.0.1:9/v1"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_a_candidate_that_fails_is_a_row_not_a_crash(tmp_path, dataset, reranker_dir):
    with serve(reranker_dir, "none") as server:
        result = align(
            compose_config(
                overrides(
                    tmp_path, dataset, reranker_dir, server.base_url, "align.max_lengths=[20]", "align.tolerance=0"
                )
            )
        )
    failed = [m for m in result.results if not m.ok]
    assert failed and "max_length" in failed[0].error and result.aligned
    assert "ValueError: local.max_length=20 leaves" in (tmp_path / "align" / "t" / "candidates.csv").read_text()


def _side_by_side_table(tmp_path: Path, aligned_by: str | None) -> Path:
    from pipeline.data.table import write_table, write_table_meta

    rng = np.random.default_rng(2)
    n = 240
    reference = rng.uniform(size=n)
    raw = np.clip(reference + rng.normal(0, 0.35, n), 0, 1)  # another prompt: poor within-query order
    path = write_table(
        tmp_path / "t.csv",
        {
            "query_id": [f"q{i // 8}" for i in range(n)],
            "doc_id": [f"d{i}" for i in range(n)],
            "reference": reference,
            "local": raw,
            "local_aligned": reference**1.1,
        },
    )
    sources = {
        "local": {"kind": "local"},
        "local_aligned": {"kind": "local", **({"aligned_by": aligned_by} if aligned_by else {})},
    }
    write_table_meta(path, {"sources": sources})
    return path


def test_fit_reports_raw_aligned_and_aligned_calibrated_side_by_side(tmp_path, capsys):
    path = _side_by_side_table(tmp_path, "reports/align/t/align.json")
    assert (
        main(
            [
                "fit",
                f"data.path={path}",
                "data.sources=[local_aligned]",
                "data.compare=[local]",
                f"export.root={tmp_path / 'a'}",
                f"report.dir={tmp_path / 'r'}",
                "evaluate.n_bootstrap=100",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    rows = [line.split()[:2] for line in out.out.splitlines() if line.startswith(("raw ", "calibrated "))]
    assert rows[:3] == [["raw", "local"], ["raw", "local_aligned"], ["calibrated", "local_aligned"]]
    assert "min_rank_agreement" not in out.err  # the fitted column was aligned; the compared one is not fitted
    report = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert report["exported"] == "calibrated local_aligned"


def test_fit_warns_when_raw_rank_agreement_is_low_and_no_alignment_was_recorded(tmp_path, capsys):
    path = _side_by_side_table(tmp_path, None)
    args = [f"export.root={tmp_path / 'a'}", f"report.dir={tmp_path / 'r'}", "evaluate.n_bootstrap=50"]
    assert main(["fit", f"data.path={path}", "data.sources=[local]", *args]) == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "raw per-query rank agreement of 'local' with the reference is" in err
    assert "no `align` run chose its configuration" in err and err.count("python -m pipeline align") == 1
    assert main(["fit", f"data.path={path}", "data.sources=[local_aligned]", *args, "export.replace=true"]) == 0
    assert "min_rank_agreement" not in capsys.readouterr().err  # close to the reference: nothing to say


def test_a_compare_column_that_is_also_fitted_is_one_line(tmp_path, capsys):
    path = _side_by_side_table(tmp_path, None)
    assert (
        main(
            [
                "fit",
                f"data.path={path}",
                "data.sources=[local]",
                "data.compare=[local]",
                f"export.root={tmp_path / 'a'}",
                f"report.dir={tmp_path / 'r'}",
            ]
        )
        == 2
    )
    assert "data.compare lists ['local'], which data.sources fits already" in capsys.readouterr().err


def test_prompt_variants_share_the_loaded_weights_and_score_like_a_fresh_load(reranker_dir):
    from dataclasses import replace

    from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer

    base_cfg = LocalScorerConfig(model=str(reranker_dir), device="cpu", max_length=512)
    variant_cfg = replace(base_cfg, template="vllm", instruction=OTHER_INSTRUCTION, strip_texts=True)
    groups = [QueryGroup(" what is softmax ", ["  the derivative of softmax\n", "北京 天气", "def f(x): return x "])]
    base = build_scorer(base_cfg)
    twin = base.with_prompt(variant_cfg)
    fresh = build_scorer(variant_cfg)
    assert twin.model is base.model and twin.fingerprint() == fresh.fingerprint()
    np.testing.assert_allclose(twin.score(groups)[0], fresh.score(groups)[0], atol=1e-6)
    assert not np.allclose(twin.score(groups)[0], base.score(groups)[0], atol=1e-4)
    assert twin.fingerprint()["strip_texts"] is True and "strip_texts" not in base.fingerprint()
    with pytest.raises(ValueError, match=r"with_prompt cannot change \['dtype'\]"):
        base.with_prompt(replace(base_cfg, dtype="bfloat16"))


def test_a_text_switch_the_server_applies_is_found_at_the_cost_of_one_more_api_pass(tmp_path, dataset, reranker_dir):
    with serve(reranker_dir, "nfkc") as server:
        result = align(
            compose_config(
                overrides(
                    tmp_path,
                    dataset,
                    reranker_dir,
                    server.base_url,
                    "align.text_switches=[nfkc]",
                    "align.noise_pairs=0",
                )
            )
        )
        sent = len(server.records) if hasattr(server, "records") else None
    assert result.aligned and result.best.settings["text"] == "nfkc" and result.best.max_delta <= 1e-5
    assert result.summary["text_switch"] == "nfkc"
    assert "text.nfkc=true" in (tmp_path / "align" / "t" / "aligned-t.yaml").read_text()
    assert sent is None or sent > 0


def test_an_unknown_text_switch_is_one_line(tmp_path, dataset, reranker_dir, capsys):
    assert (
        main(
            ["align", *overrides(tmp_path, dataset, reranker_dir, "http://127.0.0.1:9/v1"), "align.text_switches=[nfc]"]
        )
        == 2
    )
    assert (
        "align.text_switches: ['nfc'] are not text.* switches; choose from invisible, nfkc" in capsys.readouterr().err
    )


class _ChunkingCrossEncoder:
    """A reference that scores a long document by its best chunk (SiliconFlow's max_chunks_per_doc
    for bge-reranker-v2-m3), written out with plain transformers: [CLS] q [SEP] chunk [SEP], the
    chunk what fits beside the query in 128 tokens, 20 tokens of overlap."""

    def __init__(self, settings, model_dir: Path, max_chunks: int = 8, overlap: int = 20) -> None:
        from transformers import AutoTokenizer, BertForSequenceClassification

        self.settings = settings
        self.tok = AutoTokenizer.from_pretrained(model_dir)
        self.model = BertForSequenceClassification.from_pretrained(model_dir).eval()
        self.max_chunks, self.overlap = max_chunks, overlap

    def score(self, query: str, documents, instruction) -> tuple[list[float], int]:
        import torch

        q = self.tok.encode(query, add_special_tokens=False)
        room = 128 - 3 - len(q)
        out = []
        for doc in documents:
            d = self.tok.encode(doc, add_special_tokens=False)
            best, start, n = -float("inf"), 0, 0
            while n < self.max_chunks:
                ids = [
                    self.tok.cls_token_id,
                    *q,
                    self.tok.sep_token_id,
                    *d[start : start + room],
                    self.tok.sep_token_id,
                ]
                with torch.no_grad():
                    best = max(best, float(torch.sigmoid(self.model(input_ids=torch.tensor([ids])).logits[0, 0])))
                n += 1
                if start + room >= len(d):
                    break
                start += room - self.overlap
            out.append(best)
        return out, 0

    def close(self) -> None:
        self.model = None


def test_align_finds_the_chunking_of_a_reference_that_scores_long_documents_by_their_best_chunk(tmp_path, models_dir):
    from pipeline.testing import tiny_models

    bert = tiny_models.build_tiny_bert_cross_encoder(models_dir / "align-bert")
    long = " ".join(f"Sentence {i} about chunks, overlaps and which chunk wins the score." for i in range(40))
    rows = [
        {
            "query_id": f"q{q}",
            "query": f"chunk question {q}",
            "documents": [
                {"doc_id": f"d{j}", "text": (long if j % 2 else f"short answer {q} {j}") + f" tail {q}{j}"}
                for j in range(4)
            ],
        }
        for q in range(8)
    ]
    data = tmp_path / "long.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    settings = ReferenceConfig(model=str(bert), served_model="BAAI/bge-reranker-v2-m3")
    with ReferenceServer(settings, model_factory=lambda s: _ChunkingCrossEncoder(s, bert)) as server:
        cfg = compose_config(
            [
                "local=cross-encoder",
                f"local.model={bert}",
                "local.max_length=128",
                "local.device=cpu",
                "local.overlap_tokens=20",  # what the API is sent (api.extra_body.overlap_tokens)
                "api=demo-reference",
                "api.model=BAAI/bge-reranker-v2-m3",
                f"collect.dataset={data}",
                f"collect.cache={tmp_path / 'cache.sqlite'}",
                f"align.root={tmp_path / 'align'}",
                "align.name=chunks",
                "align.sample_queries=4",
                "align.confirm_queries=4",
                "align.n_bootstrap=50",
                "align.noise_pairs=0",
                "align.templates=[none]",
                "align.strip_prompt=[false]",
                "align.dtypes=[float32]",
                "align.max_chunks_per_doc=[1,8]",
                "collect.progress=false",
                "reference.enabled=false",
                f"api.base_url={server.base_url}",
                "~local@collect.extra_local.local_minilm",
            ]
        )
        result = align(cfg)
    assert (
        result.aligned
        and getattr(result.best.settings["max_chunks_per_doc"], "value", result.best.settings["max_chunks_per_doc"])
        == 8
    )
    assert result.best.max_delta <= 1e-5 and result.start.max_delta > 1e-3  # truncation alone does not reproduce it
    assert "max_chunks_per_doc: 8" in (tmp_path / "align" / "chunks" / "aligned-chunks.yaml").read_text()
