"""``python -m pipeline embed-check``: two embedding setups, text by text, as a deployment gate.

Exit 0 when the minimum cosine over all texts reaches ``embed_check.threshold``, 1 when it does
not, 2 when the check cannot run (bad input, a vector-size mismatch, an API error).
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from pipeline.config.embed_check import EmbedCheckSettings, OtherSide
from pipeline.config.local import LocalScorerConfig, coerce
from pipeline.core.errors import PipelineError
from pipeline.embed_check.sides import ApiSide, EmbedCheckError, LocalSide


def other_local_config(cfg: EmbedCheckSettings) -> LocalScorerConfig:
    """``embed_check.local`` with the keys ``embed_check.other`` sets replaced."""
    changes = {k: v for k, v in asdict(cfg.embed_check.other).items() if v is not None}
    if not changes:
        raise EmbedCheckError(
            "embed_check.other changes nothing: against=local compares the local config with a changed "
            "copy of itself (e.g. embed_check.other.dtype=bfloat16)"
        )
    return coerce(replace(coerce(cfg.embed_check.local), **changes))


def _show(value: Any) -> str:
    return "null" if value is None else str(value)


def _dry_run(side: ApiSide, texts) -> int:
    from pipeline.api.tokens import estimate_embedding_tokens

    todo = side.missing(texts)
    tokens = estimate_embedding_tokens(todo)
    cost = tokens / 1e6 * side.cfg.price_per_million_tokens
    requests = -(-len(todo) // max(1, side.cfg.max_documents_per_request))
    print(
        f"embed-check dry run: {len(todo)} text(s) not cached -> {requests} request(s), ~{tokens:,} tokens, "
        f"estimated cost {cost:.4f} (api.price_per_million_tokens={side.cfg.price_per_million_tokens}); nothing sent"
    )
    return 0


def run_embed_check(cfg: EmbedCheckSettings) -> int:
    """0 pass, 1 the gate failed; a check that cannot run raises a PipelineError (exit 2)."""
    try:
        return _run(cfg)
    except PipelineError:
        raise
    except ValueError as exc:  # a scorer setting the model cannot honour (e.g. dimensions beyond its size)
        raise EmbedCheckError(str(exc)) from None


def _run(cfg: EmbedCheckSettings) -> int:
    import numpy as np

    from pipeline.core.files import atomic_write_json
    from pipeline.data.dataset import load_dataset
    from pipeline.embed_check.compare import compare, passes
    from pipeline.embed_check.report import format_report, plot, verdict
    from pipeline.embed_check.texts import text_set

    ec = cfg.embed_check
    dataset = load_dataset(ec.dataset, key="embed_check.dataset").sample(ec.max_queries, cfg.seed)
    texts = text_set(dataset)
    local_cfg = coerce(ec.local)
    against_api = OtherSide(ec.against) is OtherSide.api
    if against_api and ec.dry_run:  # what would be sent: no model needed
        return _dry_run(ApiSide(cfg.api, cfg.text, cfg.collect.cache, label="api"), texts)
    this = LocalSide(local_cfg, cfg.text, label="local")
    other: LocalSide | ApiSide | None = None
    try:
        if against_api:
            other = ApiSide(cfg.api, cfg.text, cfg.collect.cache, label="api")
            if cfg.api.dimensions is not None and cfg.api.dimensions != this.dimensions:
                raise EmbedCheckError(
                    f"api.dimensions={cfg.api.dimensions} but the local side returns {this.dimensions}-d "
                    f"vectors (embed_check.local.dimensions={_show(local_cfg.dimensions)}); set both to the "
                    "same size"
                )
        else:
            other = LocalSide(other_local_config(cfg), cfg.text, label="other")
        a = this.embed(texts)
        b = other.embed(texts)
        if a.shape[1] != b.shape[1]:
            raise EmbedCheckError(
                f"the sides return vectors of different lengths: local {a.shape[1]}, {other.label} "
                f"{b.shape[1]} (embed_check.local.dimensions={_show(local_cfg.dimensions)}"
                + (f", api.dimensions={_show(cfg.api.dimensions)}" if isinstance(other, ApiSide) else "")
                + "); never truncated: set the same dimensions on both sides"
            )
        sides = {
            "local": this.describe(),
            other.label: other.describe(b.shape[1]) if isinstance(other, ApiSide) else other.describe(),
        }
    finally:
        this.close()
        if other is not None:
            other.close()
    result = compare(texts, a, b, top_k=ec.top_k, worst=ec.worst)
    cosines = result.pop("cosines")
    report: dict[str, Any] = {
        "dataset": str(ec.dataset),
        "texts": len(texts.texts),
        "queries": len(texts.groups),
        "sides": sides,
        "threshold": ec.threshold,
        **result,
    }
    report["passed"] = passes(report["overall"], ec.threshold)
    if not report["passed"] and ec.diagnose and isinstance(other, ApiSide):
        from pipeline.embed_check.diagnose import diagnose

        report["diagnosis"] = diagnose(texts, local_cfg, cfg.text, b, cosines)
    out = Path(ec.report_dir)
    out.mkdir(parents=True, exist_ok=True)
    report["files"] = {"json": str(out / "embed_check.json"), "plot": str(out / "embed_check.png")}
    atomic_write_json(out / "embed_check.json", report)
    plot(out / "embed_check.png", texts, np.asarray(cosines), ec.threshold)
    print(format_report(report))
    print(f"report: {out / 'embed_check.json'}, plot: {out / 'embed_check.png'}")
    print(verdict(report))
    return 0 if report["passed"] else 1
