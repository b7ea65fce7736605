"""``python -m pipeline align``: the local scoring configuration that reproduces the API.

1. Two disjoint samples of query groups from ``collect.dataset``: a search sample
   (``align.sample_queries``) and a confirmation sample (``align.confirm_queries``). The API scores
   both through the score cache, so each pair is paid once (and shared with ``collect``).
2. A few pairs are sent again, bypassing the cache (``align.noise_pairs``): the API's
   disagreement with itself, the floor no local configuration can beat.
3. Coordinate search over template, whitespace stripping, instruction, max_length and dtype
   (:mod:`pipeline.align.search`), reusing each model load across prompt variants. A candidate
   that fails is reported as failed; the search goes on. It stops early when a candidate is within
   the noise floor plus ``align.tolerance``.
4. The winner and the starting config are compared again on the confirmation sample (held out).
5. ``reports/align/<name>/``: ``candidates.csv``, ``align.json``, ``align.png`` and
   ``aligned-<name>.yaml``, a ready ``local`` config; ``--apply`` copies it to
   ``conf/local/aligned-<name>.yaml``. Without ``--apply`` nothing under ``conf/`` changes.

When no candidate comes close (max |delta| above ``align.close_delta`` and per-query Spearman below
``align.rank_close``), the report says so plainly -- different weights or revision suspected --
writes no config, and the exit status is 1: a calibrator must not paper over that difference.
Exit 2: settings that cannot work (empty grid, a sample too small, a bad API setting).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.align.report import TABLE_ROWS, candidates_csv, label, local_yaml, plot, table
from pipeline.align.scoring import CandidateScorers
from pipeline.align.search import AXES, Measured, best_of, coordinate_search, measure
from pipeline.api.client import ApiConfigError
from pipeline.api.errors import ApiError
from pipeline.calibration.metrics import agreement
from pipeline.config.align import AlignSettings
from pipeline.core.cache import ScoreCache
from pipeline.core.console import print_warnings, wrapped
from pipeline.core.errors import PipelineError
from pipeline.core.files import atomic_write_json
from pipeline.data.dataset import Dataset, load_dataset
from pipeline.runtime.text import preprocess


class AlignError(PipelineError, ValueError):
    """Settings or data ``align`` cannot search with (one line, exit 2)."""


@dataclass
class AlignResult:
    aligned: bool
    start: Measured
    best: Measured
    results: list[Measured]
    summary: dict[str, Any]
    out_dir: Path


def run_align(cfg: AlignSettings) -> int:
    """0 aligned, 1 NOT ALIGNED (the verdict); anything that stops the search is a PipelineError (2)."""
    return 0 if align(cfg).aligned else 1


def _axes(cfg) -> dict[str, list[Any]]:
    """Candidate values per axis, the current value first, without duplicates."""
    a, local = cfg.align, cfg.local
    from dataclasses import fields

    from pipeline.runtime.text import TextConfig

    switches = [f.name for f in fields(TextConfig) if f.type in (bool, "bool")]
    unknown = [s for s in a.text_switches if s not in switches]
    if unknown:
        raise AlignError(f"align.text_switches: {unknown} are not text.* switches; choose from {', '.join(switches)}")
    wanted = {
        "text": [s for s in a.text_switches if not getattr(cfg.text, s)],
        "template": list(a.templates),
        "strip_texts": list(a.strip_texts),
        "strip_prompt": list(a.strip_prompt),
        "instruction": [None, *a.instructions] + ([cfg.api.instruction] if cfg.api.instruction else []),
        "max_length": list(a.max_lengths),
        "max_chunks_per_doc": list(a.max_chunks_per_doc),
        "dtype": list(a.dtypes),
    }
    if (
        not any(
            wanted[k]
            for k in ("text", "template", "strip_texts", "strip_prompt", "max_length", "max_chunks_per_doc", "dtype")
        )
        and not a.instructions
    ):
        raise AlignError(
            "align: the candidate grid is empty (align.templates, strip_texts, strip_prompt, instructions, "
            "max_lengths, dtypes and text_switches are all empty): nothing to compare with the current "
            "local config"
        )
    kind, template = getattr(local.kind, "value", local.kind), getattr(local.template, "value", local.template)
    if wanted["max_chunks_per_doc"] and (kind != "cross_encoder" or template != "none"):
        raise AlignError(
            f"align.max_chunks_per_doc: chunking applies to local.kind=cross_encoder with template=none "
            f"(bge-reranker-v2-m3, bce-reranker-base_v1), not kind={kind} template={template}"
        )
    axes = {}
    for axis in AXES:
        values: list[Any] = []
        for v in [None if axis == "text" else getattr(local, axis), *wanted[axis]]:
            if all(getattr(v, "value", v) != getattr(w, "value", w) for w in values):
                values.append(v)
        axes[axis] = values
    return axes


def _samples(cfg) -> tuple[Dataset, Dataset]:
    a = cfg.align
    full = load_dataset(cfg.collect.dataset)
    n = len(full.queries)
    if n < a.sample_queries + 1:
        raise AlignError(
            f"{cfg.collect.dataset}: {n} queries; align needs align.sample_queries={a.sample_queries} for the "
            f"search plus at least 1 more for the held-out confirmation (set align.sample_queries <= {n - 1})"
        )
    search = full.sample(a.sample_queries, cfg.seed)
    chosen = {q.query_id for q in search.queries}
    rest = Dataset(full.path, full.sha256, [q for q in full.queries if q.query_id not in chosen])
    return search, rest.sample(a.confirm_queries, cfg.seed + 1)


def _groups(cfg, dataset: Dataset) -> list[tuple[str, list[str]]]:
    return [
        (preprocess(q.text, cfg.text), [preprocess(d.text, cfg.text) for d in q.documents]) for q in dataset.queries
    ]


def _codes(groups: list[tuple[str, list[str]]]) -> np.ndarray:
    return np.repeat(np.arange(len(groups)), [len(d) for _, d in groups])


@dataclass
class _Sample:
    """One text preprocessing's view of both samples: the texts as sent, and the API's scores."""

    search: list[tuple[str, list[str]]]
    api_search: np.ndarray
    confirm: list[tuple[str, list[str]]]
    api_confirm: np.ndarray


def with_text_switch(cfg, switch: str | None):
    """``cfg`` with one more ``text.*`` switch on (None: unchanged)."""
    from dataclasses import replace

    return cfg if switch is None else replace(cfg, text=replace(cfg.text, **{switch: True}))


def _check_local_model(cfg) -> None:
    """The local checkpoint's files exist and match local.revision (weights are not loaded)."""
    if cfg.local.engine.base_url:
        return
    from pipeline.config.local import coerce
    from pipeline.scorers.loading import resolve_source

    resolve_source(coerce(cfg.local))


def align(cfg, out=None) -> AlignResult:
    from tqdm import tqdm

    from pipeline.collect import api_scores

    out = out or sys.stdout
    a = cfg.align
    started = time.perf_counter()
    axes = _axes(cfg)
    _check_local_model(cfg)  # a missing checkpoint is a setting to fix (exit 2), found before any API request
    search_ds, confirm_ds = _samples(cfg)
    samples: dict[str | None, _Sample] = {}
    noise = np.zeros(0)

    def sample(switch: str | None) -> _Sample:
        """The API side for one text preprocessing: a text.* switch changes what the API is sent,
        so each one tried costs one pass over the samples (cached like every API score)."""
        nonlocal noise
        if switch not in samples:
            view = with_text_switch(cfg, switch)
            search, confirm = _groups(view, search_ds), _groups(view, confirm_ds)
            with ScoreCache(Path(cfg.collect.cache)) as cache:
                scores, repeated = api_scores(
                    view, search + confirm, cache, noise_pairs=a.noise_pairs if switch is None else 0
                )
            if switch is None:
                noise = repeated
            samples[switch] = _Sample(
                search,
                np.concatenate(scores[: len(search)]),
                confirm,
                np.concatenate(scores[len(search) :]) if confirm else np.zeros(0),
            )
        return samples[switch]

    base = sample(None)
    print(
        wrapped(
            f"align: {len(base.search)} query groups ({base.api_search.size} pairs) to search, "
            f"{len(base.confirm)} held out to confirm; API {cfg.api.model} ({cfg.api.dialect.value})"
        ),
        file=out,
    )
    floor = float(noise.max()) if noise.size else float("nan")
    codes = _codes(base.search)
    scorers = CandidateScorers(cfg)
    start = {axis: (None if axis == "text" else getattr(cfg.local, axis)) for axis in AXES}
    limit = floor if math.isfinite(floor) else 0.0

    def evaluate(settings: dict[str, Any]) -> Measured:
        try:
            view = sample(settings.get("text"))
            local, _ = scorers.score(settings, view.search)
        except (ApiError, ApiConfigError):
            raise
        except Exception as exc:  # a candidate that cannot load or encode is a failed row, not a crash
            return Measured(settings, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
        return measure(settings, local, view.api_search, codes, n_bootstrap=a.n_bootstrap, seed=cfg.seed)

    changes = sum(len(v) - 1 for v in axes.values())
    most = 2 + changes * (1 + a.max_passes)  # start, single changes, their combination, greedy passes
    with tqdm(total=most, desc="align candidates", unit="cand", disable=None, leave=False) as bar:

        def on_result(_: Measured, best: Measured) -> None:
            bar.update(1)
            if best.ok:
                bar.set_postfix(
                    best_rank=f"{best.spearman.value:.4f}", best_max_delta=f"{best.max_delta:.1e}", refresh=False
                )

        results = coordinate_search(
            start,
            {k: v for k, v in axes.items() if len(v) > 1},
            evaluate,
            max_passes=a.max_passes,
            good_enough=lambda m: m.ok and m.max_delta <= limit + a.tolerance,
            on_result=on_result,
        )
    first, best = results[0], best_of(results)
    if not best.ok:
        scorers.close()
        raise AlignError(
            f"align: none of the {len(results)} candidates could be scored; the first failure: {first.error}"
        )
    aligned = best.ok and (best.max_delta <= a.close_delta or best.spearman.value >= a.rank_close)

    confirmed: dict[str, Any] = {}
    if base.confirm and best.ok and first.ok:
        for name, m in (("before", first), ("after", best)):
            view = sample(m.settings.get("text"))
            local, _ = scorers.score(m.settings, view.confirm)
            metrics, _ = agreement(
                local, view.api_confirm, _codes(view.confirm), k=3, n_bootstrap=a.n_bootstrap, seed=cfg.seed
            )
            confirmed[name] = {k: metrics[k].as_dict() for k in ("spearman", "kendall", "pearson", "mae")}
            confirmed[name]["max_abs_delta"] = float(np.abs(local - view.api_confirm).max())
        confirmed["queries"] = len(base.confirm)
    scorers_loaded = scorers.loads
    winner_cfg = scorers.config(best.settings) if best.ok else None
    scorers.close()

    out_dir = Path(a.root) / a.name
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [candidates_csv(results, start, out_dir / "candidates.csv")]
    written.append(plot(results, start, out_dir / "align.png", f"align {a.name}: {cfg.local.model} vs {cfg.api.model}"))
    yaml_path = out_dir / f"aligned-{a.name}.yaml"
    text_switch = best.settings.get("text") if best.ok else None
    if aligned:
        yaml_path.write_text(local_yaml(winner_cfg, str(out_dir / "align.json"), text_switch), encoding="utf-8")
        written.append(yaml_path)
    elif yaml_path.exists():
        yaml_path.unlink()  # never leave a previous run's config next to an unalignable verdict
    summary = {
        "name": a.name,
        "aligned": aligned,
        "local_model": cfg.local.model,
        "api_model": cfg.api.model,
        "dataset": str(cfg.collect.dataset),
        "search_queries": len(base.search),
        "confirm_queries": len(base.confirm),
        "text_switch": text_switch,
        "noise_floor_max_abs_delta": None if not math.isfinite(floor) else floor,
        "noise_pairs": int(noise.size),
        "candidates": len(results),
        "model_loads": scorers_loaded,
        "start": first.as_dict(),
        "winner": best.as_dict(),
        "confirmation": confirmed,
        "all": [m.as_dict() for m in sorted(results, key=Measured.rank_key)],
        "seconds": round(time.perf_counter() - started, 1),
    }
    written.append(atomic_write_json(out_dir / "align.json", summary))
    _print(out, results, start, first, best, aligned, floor, noise.size, confirmed, scorers_loaded, cfg)
    if aligned and text_switch:
        print(
            wrapped(
                f"the winner also needs text.{text_switch}=true: it changes what both sides are sent, so set it in "
                "conf/config.yaml (the local config file cannot carry it)"
            ),
            file=out,
        )
    if a.apply:
        if not aligned:
            print_warnings(["align.apply: nothing applied, no candidate reproduces the API"])
        else:
            target = Path("conf/local") / f"aligned-{a.name}.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml_path.read_text(encoding="utf-8"), encoding="utf-8")
            print(
                wrapped(
                    f"applied: {target} (commit it; use local=aligned-{a.name}, or "
                    f"+local@collect.extra_local.local_aligned=aligned-{a.name} to collect it next to the raw column)"
                ),
                file=out,
            )
    print(wrapped(f"wrote {', '.join(str(p) for p in written)} ({summary['seconds']}s)"), file=out)
    return AlignResult(aligned, first, best, results, summary, out_dir)


def _fmt(m: dict[str, Any]) -> str:
    return (
        f"{m['value']:.3f} [{m['ci_low']:.3f},{m['ci_high']:.3f}]" if m["ci_low"] is not None else f"{m['value']:.3f}"
    )


def _print(out, results, start, first, best, aligned, floor, n_noise, confirmed, loads, cfg) -> None:
    print("\n".join(table(results, start)), file=out)
    failed = sum(not m.ok for m in results)
    noise = (
        f"API noise floor: max |delta| {floor:.2e} over {n_noise} pairs asked twice"
        if math.isfinite(floor)
        else "API noise floor: not measured (align.noise_pairs=0)"
    )
    hidden = max(0, len(results) - TABLE_ROWS)
    more = f" ({hidden} more, failures included, in candidates.csv)" if hidden else ""
    lines = [f"{len(results)} candidates ({failed} failed), {loads} model load(s){more}. {noise}."]
    if not best.ok:
        lines.append("no candidate could be scored: see the failures above")
    elif aligned:
        lines.append(
            f"best: {label(best.settings, start)}: per-query Spearman {best.spearman.value:.4f}, "
            f"max |delta| {best.max_delta:.2e} (as configured: {first.spearman.value:.4f}, "
            f"{first.max_delta:.2e})."
            if first.ok
            else f"best: {label(best.settings, start)}"
        )
    else:
        lines.append(
            f"NOT ALIGNED: no candidate reproduces the API. The closest ({label(best.settings, start)}) has "
            f"per-query Spearman {best.spearman.value:.4f} and max |delta| {best.max_delta:.2e} (thresholds: "
            f"align.rank_close={cfg.align.rank_close}, align.close_delta={cfg.align.close_delta}). Different "
            f"weights or revision suspected: check api.model against local.model/revision before calibrating; "
            f"a calibrator would only paper over this."
        )
    if confirmed:
        b, f = confirmed["before"], confirmed["after"]
        lines.append(
            f"held out ({confirmed['queries']} queries): per-query Spearman {_fmt(b['spearman'])} as configured "
            f"-> {_fmt(f['spearman'])} aligned; max |delta| {b['max_abs_delta']:.2e} -> {f['max_abs_delta']:.2e}."
        )
    for line in lines:
        print(wrapped(line), file=out)
