"""A local column scored by an HTTP engine (vLLM, TEI, infinity) instead of this process.

Users who already run Qwen3 rerankers on a vLLM fleet should not have to score calibration sets
a second way. This backend sends each pair to the engine through the project's one API client
(concurrency, retries with backoff, connection reuse, result mapping by ``index``), with the
prompt formatted *here* from ``local.*`` by :mod:`pipeline.scorers.texts`: the engine receives
exactly the two texts whose pair tokenisation is the transformers backend's ``template=vllm``
(or ``none``) rows. So the column means what the in-process column with the same ``local.*``
means, and its fingerprint says so: the same prompt fields, plus ``engine`` (dialect, path and
what the engine reports about itself) in place of ``dtype``/``device_type``, which are the
engine's. Start the engine *without* a chat template (vLLM: no ``--chat-template``), or the
prompt is wrapped twice.

What the engine reports (vLLM ``GET /v1/models``: id, root, max_model_len; TEI ``GET /info``:
model_id, model_sha, model_dtype, max_input_length; infinity ``GET /models``: id, backend) is
read once when the scorer is built and recorded in the fingerprint, so an engine that switches
weights re-collects instead of mixing scores. The engine must therefore be up to build this
scorer, even when every score is cached.

An engine that strips every text it receives (infinity) is refused unless ``local.strip_prompt``
says so: the texts sent are then already stripped, and the column is the in-process column of the
same ``local.*`` (tested against a real infinity server, tests/peers/).

Not reproduced: ``local.max_length`` truncation (the engine applies its own limit; vLLM refuses
a longer pair with a 400, which stops the run and names the request) and ``local.dtype`` (the
engine's own; TEI reports it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.api.adapters import adapter_for
from pipeline.config.api import ApiConfig, Dialect, Endpoint, TopN
from pipeline.config.local import Activation, LocalScorerConfig, ScorerKind, coerce
from pipeline.core.errors import PipelineError
from pipeline.runtime.text import TextConfig, describe
from pipeline.scorers.base import ProgressCallback, QueryGroup, Scorer
from pipeline.scorers.prompts import DEFAULT_INSTRUCTION
from pipeline.scorers.texts import embedding_query, embedding_text, qwen3_pair_texts, scorer_text, strip_prompt_mark

#: bump when the meaning of an engine score changes for the same config
ENGINE_SOURCE_VERSION = 1
#: the engine dialects: where each says which model it serves, and the fields worth recording
INFO = {
    Dialect.vllm_score: ("/v1/models", ("id", "root", "max_model_len")),
    Dialect.vllm: ("/v1/models", ("id", "root", "max_model_len")),
    Dialect.tei: ("/info", ("model_id", "model_sha", "model_dtype", "max_input_length")),
    Dialect.infinity: ("/models", ("id", "backend")),
}
ENGINE_DIALECTS = tuple(INFO)
#: engines that strip leading and trailing whitespace of every text they receive before
#: tokenising: infinity-emb (fastapi_schemas/pydantic_v2.py, ``INPUT_STRING = StringConstraints(
#: max_length=8192 * 15, strip_whitespace=True)``, on rerank queries and documents and on
#: embeddings inputs; checked against a real 0.0.78 server in tests/peers/)
STRIPPING_DIALECTS = (Dialect.infinity,)


class EngineError(PipelineError, RuntimeError):
    """The engine cannot be used as configured (the message names the key or the endpoint)."""


#: the API client's key names in its messages, as an engine column spells them
_KEYS = {
    "api.model": "local.engine.served_model",
    "api.base_url": "local.engine.base_url",
    "api.path": "local.engine.path",
    "api.timeout_s": "local.engine.timeout_s",
    "api.extra_body": "local.engine.* (no extra body)",
    "api.retry_max_elapsed_s": "local.engine.retry_attempts",
}


def _engine_keys(message: str) -> str:
    for api_key, engine_key in _KEYS.items():
        message = message.replace(api_key, engine_key)
    return message


def _served_entry(body: Any, dialect: Dialect, wanted: tuple[str | None, ...]) -> dict[str, Any]:
    """The reported model: TEI's ``/info`` object, or the entry of an OpenAI-style model list
    named like ``wanted`` (the only one when the engine serves one)."""
    if dialect is Dialect.tei:
        if not isinstance(body, dict):
            raise EngineError("GET /info did not return an object")
        return body
    entries = body.get("data") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise EngineError("the model list has no 'data' entries")
    for name in wanted:
        for entry in entries:
            if name is not None and name in (entry.get("id"), entry.get("root")):
                return entry
    if len(entries) == 1:
        return entries[0]
    names = [e.get("id") for e in entries]
    raise EngineError(f"the engine serves {names}; say which with local.engine.served_model")


def check_dialect(dialect: Dialect) -> None:
    if dialect not in INFO:
        raise EngineError(
            f"local.engine.dialect={dialect.value} is not an engine dialect; use one of "
            f"{', '.join(d.value for d in ENGINE_DIALECTS)} (hosted APIs belong in api.*)"
        )


def probe_engine(cfg: LocalScorerConfig, api_key: str | None) -> dict[str, Any]:
    """What the engine reports about the model it serves (a few stable fields, never a timestamp)."""
    import httpx

    engine = cfg.engine
    check_dialect(engine.dialect)
    path, keep = INFO[engine.dialect]
    url = engine.base_url.rstrip("/") + path
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(url, headers=headers, timeout=min(engine.timeout_s, 30.0))
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        from pipeline.api.client import sanitize_url
        from pipeline.api.errors import redact

        hint = "is the engine running?"
        if engine.base_url.rstrip("/").endswith("/v1"):
            hint = "drop the trailing /v1 from local.engine.base_url: the engines' paths carry their own"
        if isinstance(exc, httpx.HTTPStatusError):  # its text repeats the URL, credentials included
            detail = f"HTTP {exc.response.status_code}"
        else:
            detail = redact(str(exc).splitlines()[0] if str(exc) else "", api_key)
        raise EngineError(
            f"local.engine.base_url: GET {sanitize_url(url)} failed ({type(exc).__name__}: {detail}); {hint}"
        ) from None
    entry = _served_entry(body, engine.dialect, (engine.served_model, cfg.model))
    return {k: entry[k] for k in keep if entry.get(k) is not None}


def _stripping_refusal(dialect: Dialect, kind: ScorerKind, template) -> str:
    """Why a configured prompt cannot survive an engine that strips its inputs, and the setting
    that describes what it really computes."""
    from pipeline.config.local import Template

    if kind is ScorerKind.embedding:
        lost = "a query or document's surrounding whitespace (the query form included)"
    elif Template(template) is Template.vllm:
        lost = 'the query part\'s closing "\\n" and the document part\'s closing "\\n\\n" (template=vllm)'
    else:
        lost = "a query or document's surrounding whitespace (template=none)"
    return (
        f"local.engine.dialect={dialect.value} strips every text it receives (infinity-emb: strip_whitespace=True "
        f"on its inputs), so {lost} would never reach the model: it would score another prompt than the one "
        "configured. Set local.strip_prompt=true (each text stripped: the prompt the server really computes, "
        "which `python -m pipeline align` finds)"
    )


def engine_api_key(cfg: LocalScorerConfig) -> str | None:
    """The engine's bearer token from ``local.engine.api_key_env`` (sent only when set)."""
    import os

    name = cfg.engine.api_key_env
    return (os.environ.get(name, "").strip() or None) if name else None


class EngineScorer(Scorer):
    """:class:`Scorer` over an HTTP engine; ``local.engine.base_url`` selects it."""

    def __init__(self, cfg: LocalScorerConfig, text_cfg: TextConfig | None = None) -> None:
        from pipeline.api.client import ApiConfigError, sanitize_url
        from pipeline.scorers.api import ApiScorer

        cfg = coerce(cfg)
        self.cfg, self.text_cfg = cfg, text_cfg or TextConfig()
        engine = cfg.engine
        check_dialect(engine.dialect)
        kind = ScorerKind(cfg.kind)
        self.kind = kind.value
        if kind is ScorerKind.embedding:
            self.score_type = "cosine"
            self._query = lambda q: embedding_text(embedding_query(q, cfg.task), cfg.strip_prompt)
            self._document = lambda d: embedding_text(d, cfg.strip_prompt)
        else:
            self.instruction = cfg.instruction or DEFAULT_INSTRUCTION
            try:
                self._query, self._document = qwen3_pair_texts(cfg.template, self.instruction, cfg.strip_prompt)
            except ValueError as exc:  # template=official: one string, which an engine cannot be sent
                raise EngineError(str(exc)) from None
            logits = kind is ScorerKind.cross_encoder and Activation(cfg.activation) is Activation.none
            if logits and engine.dialect not in (Dialect.tei, Dialect.infinity):
                raise EngineError(
                    "local.activation=none needs raw logits, which only the tei and infinity "
                    "dialects return (raw_scores); vLLM returns activated scores"
                )
            self.score_type = "logit" if logits else "probability"
        if engine.dialect in STRIPPING_DIALECTS and not cfg.strip_prompt:
            raise EngineError(_stripping_refusal(engine.dialect, kind, cfg.template))
        api_key_env = engine.api_key_env
        self.api = ApiConfig(
            dialect=engine.dialect,
            base_url=engine.base_url,
            path=engine.path,
            model=cfg.model,
            api_key_env=api_key_env,
            api_key_required=False,
            endpoint=Endpoint.embeddings if kind is ScorerKind.embedding else Endpoint.rerank,
            top_n=TopN.all,
            server_template=False if engine.dialect in (Dialect.vllm, Dialect.vllm_score) else None,
            raw_scores=self.score_type == "logit",
            dimensions=cfg.dimensions if kind is ScorerKind.embedding else None,
            max_documents_per_request=engine.max_documents_per_request,
            concurrency=engine.concurrency,
            rpm=None,
            tpm=None,
            timeout_s=engine.timeout_s,
            retry_attempts=engine.retry_attempts,
        )
        try:
            api_key = engine_api_key(cfg)
            self.served = probe_engine(cfg, api_key)
            name = engine.served_model or self.served.get("id") or self.served.get("model_id") or cfg.model
            reported = {self.served.get(k) for k in ("id", "root", "model_id")} - {None}
            if reported and cfg.model not in reported:
                import sys

                print(
                    f"warning: local.model={cfg.model!r}, but the engine at {sanitize_url(engine.base_url)} reports "
                    f"serving {sorted(reported)}; the column is recorded under local.model (and the engine's "
                    "report, in the fingerprint): set local.model to what the engine runs",
                    file=sys.stderr,
                )
            self.api.model = name
            self.client = ApiScorer(self.api, api_key=api_key)
        except ApiConfigError as exc:
            raise EngineError(_engine_keys(str(exc))) from None
        self.where = sanitize_url(engine.base_url)

    def _prep(self, text: str) -> str:
        return scorer_text(text, self.text_cfg, self.cfg.strip_texts)

    def texts(self, query: str, documents: Sequence[str]) -> tuple[str, list[str]]:
        """The two texts of each pair as sent (query part, document parts)."""
        return self._query(self._prep(query)), [self._document(self._prep(d)) for d in documents]

    def score(self, groups: Sequence[QueryGroup], progress: ProgressCallback | None = None) -> list[np.ndarray]:
        from pipeline.api.errors import ApiError

        prepared = [self.texts(g.query, g.documents) for g in groups]
        try:
            return self.client.score_prepared(prepared, progress)
        except ApiError as exc:
            raise EngineError(f"the engine at {self.where} failed: {_engine_keys(str(exc))}") from None

    @property
    def stats(self):
        """Requests, retries, 429s and tokens so far (collect's summary shows them per column)."""
        return self.client.stats

    def fingerprint(self) -> dict[str, Any]:
        cfg = self.cfg
        fp: dict[str, Any] = {
            "kind": self.kind,
            "engine_source_version": ENGINE_SOURCE_VERSION,
            "model": cfg.model,
            "revision": cfg.revision,
            "score_type": self.score_type,
            "text": describe(self.text_cfg),
            "engine": {
                "dialect": cfg.engine.dialect.value,
                "path": adapter_for(self.api).path(self.api),
                "served_model": self.api.model,
                "reported": self.served,
            },
        }
        if self.kind == ScorerKind.embedding.value:
            fp.update(task=cfg.task, pooling=cfg.pooling.value, dimensions=cfg.dimensions)
        else:
            fp.update(
                template=cfg.template.value, instruction=None if cfg.template.value == "none" else self.instruction
            )
        if cfg.strip_texts:
            fp["strip_texts"] = True
        if cfg.strip_prompt:
            fp["strip_prompt"] = strip_prompt_mark(self.kind, cfg.template)
        return fp
