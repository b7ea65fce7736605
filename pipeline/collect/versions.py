"""``python -m pipeline resolve``: write the model versions actually in use to ``collect.versions``.

A config that says ``Qwen/Qwen3-Reranker-4B`` (or a local directory) does not say which weights
that is today. This stage asks: the hub commit a model id resolves to now (or the sha256 of a
local directory's files), for the main local scorer and every ``collect.extra_local`` one; the
API's identity (dialect, model, revision, endpoint, instruction, templates: its fingerprint
hash); the loopback reference server's weights and switches when it is enabled; and the text
preprocessing. No weights are loaded.

In ``dvc.yaml`` this stage always runs and ``collect`` depends on its output. The file holds no
timestamp, so when nothing changed it is byte-identical and DVC skips collect and everything
after it; when a model moved (a new hub commit, retrained weights, ``local.model`` pointing at
another revision) collect re-runs, and the score cache re-scores only what changed.
"""

from __future__ import annotations

from typing import Any

from pipeline.config.collect import ScoringSettings
from pipeline.core.errors import PipelineError
from pipeline.core.files import atomic_write_json, dumps_json, sha256_bytes


class ResolveError(PipelineError, RuntimeError):
    pass


def resolve_versions(cfg: ScoringSettings) -> dict[str, Any]:
    from pipeline.collect import api_source_fingerprint, local_configs
    from pipeline.runtime.text import describe
    from pipeline.scorers.base import fingerprint_hash
    from pipeline.scorers.loading import ScorerLoadError, resolve_source

    local: dict[str, Any] = {}
    for column, lcfg in local_configs(cfg).items():
        if lcfg.engine.base_url:  # an HTTP engine runs the model: what it reports is the version
            from pipeline.api.client import sanitize_url
            from pipeline.scorers.engine import EngineError, engine_api_key, probe_engine

            try:
                reported = probe_engine(lcfg, engine_api_key(lcfg))
            except EngineError as exc:
                raise ResolveError(f"{column}: {exc}") from None
            local[column] = {
                "kind": lcfg.kind.value,
                "model": lcfg.model,
                "engine": sanitize_url(lcfg.engine.base_url),
                "reported": reported,
                "revision": reported.get("model_sha") or lcfg.revision,
                "revision_source": "engine",
            }
            continue
        try:
            source = resolve_source(lcfg)
        except ScorerLoadError as exc:
            raise ResolveError(f"{column}: {exc}") from None
        local[column] = {
            "kind": lcfg.kind.value,
            "model": lcfg.model,
            "revision": source.revision,
            "revision_source": source.revision_source,
        }
    api = api_source_fingerprint(cfg) if cfg.collect.run_api else None  # collect.run_api=false: no API column
    return {
        "local": local,
        "api": None
        if api is None
        else {
            **{
                k: api[k]
                for k in (
                    "dialect",
                    "model",
                    "revision",
                    "endpoint",
                    "instruction",
                    "query_template",
                    "document_template",
                )
            },
            "fingerprint_hash": fingerprint_hash(api),
            **({"reference_server": api["reference_server"]} if "reference_server" in api else {}),
        },
        "preprocessing": describe(cfg.text),
    }


def run_resolve(cfg: ScoringSettings) -> int:
    from pathlib import Path

    versions = resolve_versions(cfg)
    path = Path(cfg.collect.versions)
    before = path.read_text(encoding="utf-8") if path.is_file() else None
    text = dumps_json(versions)
    if text != before:
        atomic_write_json(path, versions)
    for column, v in versions["local"].items():
        if v["revision_source"] == "engine":
            print(f"{column}: {v['model']} on the engine at {v['engine']}, which reports {v['reported']}")
            continue
        print(f"{column}: {v['model']} @ {v['revision'][:19]}... ({v['revision_source']})")
    api = versions["api"]
    if api is None:
        print("api: none (collect.run_api=false)")
    else:
        served = api.get("reference_server")
        print(
            f"api: {api['dialect']} {api['model']} (fingerprint {api['fingerprint_hash'][:12]})"
            + (
                f", served by the loopback reference: {served['model']} @ {served['revision'][:19]}..."
                if served
                else ""
            )
        )
    state = "unchanged" if text == before else ("written" if before is None else "CHANGED: collect will re-run")
    print(f"{path}: {state} (sha256 {sha256_bytes(text.encode())[:12]})")
    return 0
