"""What a collect run reports: the table's sidecar metadata, the summary printed at the end, and
the dry run (what would be sent, and what it would cost)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.api.collector import estimate_plan, plan_requests
from pipeline.collect.sources import Groups, SourceState, pending_pairs
from pipeline.core.cache import ScoreCache
from pipeline.core.files import utc_now
from pipeline.data.dataset import Dataset
from pipeline.runtime.text import describe

if TYPE_CHECKING:
    from pipeline.config.collect import ScoringSettings


def table_meta(
    cfg: ScoringSettings, dataset: Dataset, sources: list[SourceState], sampled_from: int | None = None
) -> dict[str, Any]:
    """The sidecar: what the table's columns are and where their scores came from. It holds no
    timestamps or counts of this run, so collecting the same scores again writes the same bytes
    (the sidecar is committed and a DVC output; a run that changed nothing leaves it alone)."""
    c = cfg.collect
    meta: dict[str, Any] = {
        "simulated": False,
        "stage": "collect",
        "columns": {
            "query": c.query_col,
            "doc": c.doc_col,
            "label": c.label_col if (c.label_col and dataset.has_labels) else None,
            "reference": c.reference_col if c.run_api else None,
            "local": [s.column for s in sources if s.kind == "local"],
        },
        "dataset": {
            "path": str(dataset.path),
            "sha256": dataset.sha256,
            "queries": len(dataset.queries),
            "pairs": dataset.n_pairs,
            "labelled_pairs": dataset.n_labelled,
            **({"sampled_from": sampled_from} if sampled_from is not None else {}),
        },
        "preprocessing": describe(cfg.text),
        "sources": {},
    }
    for src in sources:
        meta["sources"][src.column] = {
            **src.meta,
            "fingerprint": src.fingerprint,
            "fingerprint_hash": src.hash,
            "score_type": src.score_type,
        }
    return meta


def run_record(dataset: Dataset, sources: list[SourceState], started: str) -> dict[str, Any]:
    """This run's account, written to ``<table>.run.json`` (untracked): when it ran and, per
    column, pairs cached and scored, requests, retries, tokens, cost, time, Ray shards."""
    usage: dict[str, Any] = {}
    for src in sources:
        entry: dict[str, Any] = {
            "pairs": dataset.n_pairs,
            "cached": src.cached,
            "scored": src.scored,
            "elapsed_s": round(src.elapsed_s, 3),
        }
        if src.stats is not None:
            entry.update(src.stats.as_dict())
            entry["estimated_cost"] = src.cost
        entry.update(src.usage)
        usage[src.column] = entry
    return {"stage": "collect", "started": started, "finished": utc_now(), "usage": usage}


def print_summary(sources: list[SourceState], output: Path, out) -> None:
    header = [
        "source",
        "kind",
        "pairs",
        "cached",
        "scored",
        "requests",
        "retries",
        "429s",
        "tokens",
        "cost",
        "time",
        "pairs/s",
    ]
    rows = []
    for s in sources:
        st = s.stats
        rate = s.scored / s.elapsed_s if s.elapsed_s > 0 and s.scored else 0.0
        rows.append(
            [
                s.column,
                s.kind,
                str(s.cached + s.scored),
                str(s.cached),
                str(s.scored),
                str(st.requests) if st else "-",
                str(st.retries) if st else "-",
                str(st.rate_limited) if st else "-",
                str(st.tokens) if st else "-",
                "-" if s.cost is None else f"{s.cost:.4f}",
                f"{s.elapsed_s:.1f}s",
                f"{rate:.1f}",
            ]
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    print("\n".join(lines), file=out)
    for s in sources:
        ray = s.usage.get("ray")
        if ray:
            spread = ", ".join(str(n) for n in ray["shards_per_worker"])
            print(
                f"{s.column}: {ray['shards']} shard(s) on {ray['workers']} Ray worker(s) ({spread} each), "
                f"{ray['worker_restarts']} worker restart(s)",
                file=out,
            )
    print(f"wrote {output} and {output.name}.meta.json (this run's account: {output.name}.run.json)", file=out)


def dry_run(
    cfg: ScoringSettings,
    dataset: Dataset,
    groups: Groups,
    keys: list[list[str]],
    api_source: SourceState | None,
    local_columns: list[str],
    out,
) -> None:
    c = cfg.collect
    print("dry run: nothing is sent and nothing is written", file=out)
    print(f"dataset {dataset.path}: {len(dataset.queries)} queries, {dataset.n_pairs} pairs", file=out)
    if api_source is not None:
        cache_path = Path(c.cache)
        if cache_path.is_file():
            with ScoreCache(cache_path) as cache:
                pending, cached = pending_pairs(cache, api_source.hash, keys)
        else:
            pending, cached = [list(range(len(k))) for k in keys], 0
        plan = plan_requests(cfg.api, groups, pending)
        est = estimate_plan(cfg.api, plan)
        a = cfg.api
        limit = []
        if a.rpm:
            limit.append(est.requests / (a.rpm * a.rate_margin))
        if a.tpm:
            limit.append(est.tokens / (a.tpm * a.rate_margin))
        minutes = max(limit) if limit else 0.0
        print(
            f"{api_source.column} ({a.dialect.value} {a.model}, {a.endpoint.value}): {est.pairs} pairs to score, "
            f"{cached} cached",
            file=out,
        )
        print(f"  requests: {est.requests} (up to {a.max_documents_per_request} documents each)", file=out)
        print(f"  tokens (estimate): {est.tokens}", file=out)
        print(
            f"  estimated cost: {est.cost:.4f} (price_per_million_tokens={a.price_per_million_tokens:g}, "
            f"price_per_request={a.price_per_request:g})",
            file=out,
        )
        if limit:
            print(f"  minimum time at the configured rpm/tpm limits: {minutes * 60:.0f}s", file=out)
    for column in local_columns:
        print(
            f"{column} (local): {dataset.n_pairs} pairs (cache state needs the model's fingerprint; "
            f"the model is not loaded in a dry run)",
            file=out,
        )
