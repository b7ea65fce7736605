"""The two sides of an embedding check: what embeds the texts, and how (for the report).

* :class:`LocalSide`: the project's embedding scorer (pooling, query instruction, Matryoshka
  ``dimensions``, dtype) on a local configuration;
* :class:`ApiSide`: the existing API client (limits, retries, pacing, key from the environment),
  queries formatted by ``api.query_template`` as collect formats them, vectors cached in the score
  cache's ``vectors`` table under the API fingerprint (keyed like scores: by the text sent).

Both return one row per text of a :class:`~pipeline.embed_check.texts.TextSet`, queries embedded
as queries and documents as documents.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from typing import Any

import numpy as np

from pipeline.config.local import LocalScorerConfig, ScorerKind, coerce
from pipeline.core.errors import PipelineError
from pipeline.embed_check.texts import TextSet
from pipeline.runtime.text import TextConfig, preprocess


class EmbedCheckError(PipelineError, ValueError):
    """The check cannot run as configured (the message names the key to change)."""


class LocalSide:
    def __init__(self, cfg: LocalScorerConfig, text_cfg: TextConfig | None = None, label: str = "local") -> None:
        from pipeline.scorers import build_scorer

        cfg = coerce(cfg)
        if cfg.kind is not ScorerKind.embedding:
            raise EmbedCheckError(
                f"{label}: kind={cfg.kind.value}; the embedding check needs kind=embedding "
                "(e.g. local@embed_check.local=qwen3-embedding-0.6b)"
            )
        self.cfg = cfg
        self.label = label
        self.scorer = build_scorer(cfg, text_cfg)

    @property
    def dimensions(self) -> int | None:
        return self.scorer.dimensions

    def embed(self, texts: TextSet) -> np.ndarray:
        queries = [i for i, t in enumerate(texts.texts) if t.is_query]
        documents = [i for i, t in enumerate(texts.texts) if not t.is_query]
        out: np.ndarray | None = None
        for rows, is_query in ((queries, True), (documents, False)):
            if not rows:
                continue
            vectors = self.scorer.embed([texts.texts[i].text for i in rows], is_query=is_query)
            if out is None:
                out = np.empty((len(texts.texts), vectors.shape[1]))
            out[rows] = vectors
        assert out is not None
        return out

    def describe(self) -> dict[str, Any]:
        fp = self.scorer.fingerprint()
        task = self.cfg.task
        return {
            "side": self.label,
            "model": fp["model"],
            "revision": fp["revision"],
            "dtype": fp["dtype"],
            "device": fp["device_type"],
            "pooling": fp["pooling"],
            "dimensions": self.dimensions,
            "normalize": fp["normalize"],
            "query_prompt": None if task is None else fp["query_template"].replace("{task}", task),
        }

    def close(self) -> None:
        self.scorer.close()


def _text_key(sent: str) -> str:
    return hashlib.sha256(sent.encode("utf-8")).hexdigest()


class ApiSide:
    def __init__(self, api_cfg: Any, text_cfg: TextConfig | None, cache_path: str, label: str = "api") -> None:
        from pipeline.api.client import validate_api_config
        from pipeline.api.collector import api_fingerprint
        from pipeline.config.api import Endpoint
        from pipeline.scorers.base import fingerprint_hash

        if Endpoint(getattr(api_cfg.endpoint, "value", api_cfg.endpoint)) is not Endpoint.embeddings:
            raise EmbedCheckError(
                f"api.endpoint={api_cfg.endpoint.value}: the embedding check compares embeddings; "
                "use an embeddings config (api=siliconflow-embeddings) or embed_check.against=local"
            )
        validate_api_config(api_cfg)
        self.cfg = api_cfg
        self.text_cfg = text_cfg or TextConfig()
        self.label = label
        self.cache_path = cache_path
        self.fingerprint = api_fingerprint(api_cfg)
        self.hash = fingerprint_hash(self.fingerprint)

    def sent_texts(self, texts: TextSet) -> list[str]:
        """What goes over the wire: preprocessed; queries through ``api.query_template``."""
        from pipeline.api.client import format_document, format_query

        return [
            format_query(self.cfg, preprocess(t.text, self.text_cfg))
            if t.is_query
            else format_document(self.cfg, preprocess(t.text, self.text_cfg))
            for t in texts.texts
        ]

    def missing(self, texts: TextSet) -> list[str]:
        from pipeline.core.cache import ScoreCache

        sent = self.sent_texts(texts)
        with ScoreCache(self.cache_path) as cache:
            have = cache.get_vectors(self.hash, [_text_key(s) for s in sent])
        return [s for s in dict.fromkeys(sent) if _text_key(s) not in have]

    def embed(self, texts: TextSet) -> np.ndarray:
        from pipeline.core.cache import ScoreCache

        sent = self.sent_texts(texts)
        keys = [_text_key(s) for s in sent]
        with ScoreCache(self.cache_path) as cache:
            cache.register(self.hash, self.fingerprint)
            have = cache.get_vectors(self.hash, keys)
            todo = [s for s in dict.fromkeys(sent) if _text_key(s) not in have]
            if todo:
                print(
                    f"{self.label}: embedding {len(todo)} text(s) through the API ({len(sent) - len(todo)} cached)",
                    file=sys.stderr,
                    flush=True,
                )
                asyncio.run(self._fetch(todo, cache))
                have = cache.get_vectors(self.hash, keys)
        widths = {v.size for v in have.values()}
        if len(widths) > 1:
            raise EmbedCheckError(f"{self.label}: the API returned vectors of different lengths {sorted(widths)}")
        return np.stack([have[k] for k in keys])

    async def _fetch(self, todo: list[str], cache: Any) -> None:
        from pipeline.api.client import ApiClient

        size = max(1, self.cfg.max_documents_per_request)
        batches = [todo[i : i + size] for i in range(0, len(todo), size)]
        async with ApiClient(self.cfg) as client:

            async def one(batch: list[str]) -> None:
                vectors, _ = await client.embed(batch)
                cache.put_vectors(self.hash, [(_text_key(s), v) for s, v in zip(batch, vectors)])

            await asyncio.gather(*(one(b) for b in batches))

    def describe(self, dimensions: int | None = None) -> dict[str, Any]:
        from pipeline.api.client import client_formats_prompt, sanitize_url

        template = self.cfg.query_template if client_formats_prompt(self.cfg) else None
        prompt = template.replace("{instruction}", self.cfg.instruction or "") if template else None
        return {
            "side": self.label,
            "model": self.cfg.model,
            "base_url": sanitize_url(self.cfg.base_url),
            "dialect": self.cfg.dialect.value,
            "dtype": "as served",
            "pooling": "as served",
            "dimensions": self.cfg.dimensions or dimensions,
            "query_prompt": prompt,
        }

    def close(self) -> None:
        pass
