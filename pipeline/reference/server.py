"""A loopback reference API: SiliconFlow's ``POST /v1/rerank`` served by a local Qwen3 reranker.

The demo needs a reference that behaves like a hosted API without a network or a key. This
server speaks SiliconFlow's rerank wire format as :mod:`pipeline.wire` writes it (the client,
``serve`` and the test fake use the same module) and scores with the project's Qwen3 reranker
backend. Its switches reproduce the ways real deployments differ from a local transformers run:

* ``template``: ``vllm`` formats the prompt as vLLM's Qwen3 reranker example does (query part
  and document part tokenised separately), ``official`` as the model card, ``none`` not at all;
* ``strip``: strip leading and trailing whitespace from the query and each document before they
  enter the template, as several serving stacks do;
* ``dtype``: e.g. ``bfloat16`` weights and activations, as GPU deployments run;
* ``instruction``: the default instruction used when a request carries none;
* ``model``: the weights it serves (pinned: a path or hub id plus revision).

The demo serves ``models/demo-reranker/v1`` with the vLLM template, stripping and bfloat16, so
raw local/reference agreement is imperfect for real reasons and calibration has work to do.
Other stages (drift check, align, the embedding report) reuse this module instead of writing
their own server.

Security: it binds to 127.0.0.1 by default; with ``api_key`` set it requires
``Authorization: Bearer <key>`` and never echoes the key. A request may hold at most
``max_documents`` documents.

Run it by hand::

    python -m pipeline.reference.server --model models/demo-reranker/v1 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.config.local import DType, Template
from pipeline.config.reference import ReferenceConfig
from pipeline.core.errors import PipelineError
from pipeline.wire import (
    API_PREFIX,
    EMBEDDINGS_PATH,
    MODELS_PATH,
    RERANK_PATH,
    RequestError,
    check_auth,
    embeddings_response,
    error_body,
    internal_error,
    models_response,
    parse_embeddings,
    parse_json,
    parse_rerank,
    rerank_response,
)


class ReferenceConfigError(PipelineError, ValueError):
    """The ``api`` config cannot talk to the loopback reference as configured."""


def reference_fingerprint(cfg: ReferenceConfig) -> dict[str, Any]:
    """What the server's answers depend on: the weights' resolved revision (hub commit or sha256
    of the files, never just a path) and every switch. Goes into the API column's fingerprint."""
    from pipeline.scorers import LocalScorerConfig
    from pipeline.scorers.loading import ScorerLoadError, resolve_source

    try:
        source = resolve_source(LocalScorerConfig(model=cfg.model, revision=cfg.revision))
    except ScorerLoadError as exc:
        raise ReferenceConfigError(f"reference.model: {exc}") from None
    return {
        "model": cfg.model,
        "revision": source.revision,
        "served_model": cfg.served_model,
        "template": Template(cfg.template).value,
        "strip": cfg.strip,
        "dtype": DType(cfg.dtype).value,
        "instruction": cfg.instruction,
        "max_length": cfg.max_length,
    }


def check_api_matches(api: Any, cfg: ReferenceConfig) -> None:
    """Fail early, naming the keys, when ``api`` could not talk to the loopback server."""
    if api.dialect.value != "siliconflow" or api.endpoint.value != "rerank":
        raise ReferenceConfigError(
            f"reference.enabled: the loopback reference speaks SiliconFlow's rerank format, but api.dialect="
            f"{api.dialect.value} api.endpoint={api.endpoint.value}; use api=demo-reference, or reference.enabled=false"
        )
    if api.model != cfg.served_model:
        raise ReferenceConfigError(
            f"reference.enabled: api.model={api.model!r} but the loopback reference serves "
            f"reference.served_model={cfg.served_model!r}"
        )


class RerankModel:
    """The scorer behind the server: the project's Qwen3 reranker backend under the switches."""

    def __init__(self, settings: ReferenceConfig) -> None:
        from pipeline.scorers import LocalScorerConfig, build_scorer

        self.settings = settings
        self.scorer = build_scorer(LocalScorerConfig(
            model=settings.model, revision=settings.revision, dtype=settings.dtype, device="cpu",
            template=settings.template, instruction=settings.instruction, max_length=settings.max_length,
            batch_size=16,
        ))  # fmt: skip
        self._lock = threading.Lock()

    def score(self, query: str, documents: Sequence[str], instruction: str | None) -> tuple[list[float], int]:
        """Scores in document order and the number of tokens the model read."""
        if self.settings.strip:
            query, documents = query.strip(), [d.strip() for d in documents]
        pairs = [(query, d) for d in documents]
        with self._lock, self.scorer.using_instruction(instruction):
            tokens = sum(len(r) for r in self.scorer.encode_pairs(pairs))
            scores = self.scorer.score_pairs(pairs)
        return [float(s) for s in scores], tokens

    def close(self) -> None:
        self.scorer.close()


class ReferenceApp:
    """Raw ASGI app: ``POST /v1/rerank``, ``GET /v1/models`` and, for a model that embeds,
    ``POST /v1/embeddings``; everything else is a 404."""

    def __init__(self, model: RerankModel, api_key: str | None) -> None:
        self.model = model
        self.api_key = api_key

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        from pipeline.core.loopback import read_body

        status, payload = await self._handle(scope, await read_body(receive))
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, scope: dict, raw: bytes) -> tuple[int, dict[str, Any]]:
        path, method = scope["path"].rstrip("/"), scope["method"]
        try:
            if self.api_key is not None:
                headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
                check_auth(headers.get("authorization", ""), self.api_key)
            if path == API_PREFIX + MODELS_PATH and method == "GET":
                return 200, models_response(self.model.settings.served_model)
            if path == API_PREFIX + EMBEDDINGS_PATH and hasattr(self.model, "embed"):
                return await self._embeddings(method, raw)
            if path != API_PREFIX + RERANK_PATH:
                raise RequestError(404, 404, f"no route {method} {path}")
            if method != "POST":
                raise RequestError(405, 405, f"{method} not allowed on {path}")
            request = parse_rerank(parse_json(raw), self.model.settings)
            scores, tokens = await asyncio.to_thread(self.model.score, request["query"], request["documents"],
                                                     request["instruction"])  # fmt: skip
            return 200, rerank_response(request, scores, tokens)
        except RequestError as exc:
            return exc.status, error_body(exc)
        except Exception as exc:  # a bug or a model failure: a 500 in the API's shape, never a hang
            return 500, error_body(internal_error(exc))

    async def _embeddings(self, method: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        """``POST /v1/embeddings`` for a model with ``embed(texts) -> (vectors, tokens)`` and a
        ``dimensions`` attribute (the tests' plain-transformers embedding servers)."""
        if method != "POST":
            raise RequestError(405, 405, f"{method} not allowed on {API_PREFIX + EMBEDDINGS_PATH}")
        request = parse_embeddings(parse_json(raw), self.model.settings, getattr(self.model, "dimensions", None))
        vectors, tokens = await asyncio.to_thread(self.model.embed, request["input"])
        return 200, embeddings_response(self.model.settings.served_model, vectors, tokens, request["encoding_format"])


class ReferenceServer:
    """The app on uvicorn in a daemon thread, on ``host``:<free port>. Use as a context manager."""

    def __init__(
        self,
        settings: ReferenceConfig,
        *,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        model_factory: Callable[[ReferenceConfig], Any] | None = None,
    ) -> None:
        """``model_factory`` replaces :class:`RerankModel` (anything with its ``settings``, ``score(query,
        documents, instruction) -> (scores, tokens)`` and ``close()``): tests serve an implementation
        independent of the project's scorer behind the same wire format."""
        self.settings = settings
        self.model_factory = model_factory or RerankModel
        self.api_key = api_key
        self.host = host
        self.port = port
        self._model: RerankModel | None = None
        self._app: ReferenceApp | None = None
        self._server: Any = None

    @property
    def base_url(self) -> str:
        """What ``api.base_url`` must be for the SiliconFlow dialect to reach this server."""
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    def live_url(self, configured: str) -> str:
        """``configured`` (a base URL) with its scheme, host and port replaced by this server's."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(configured)
        return urlunsplit(("http", f"{self.host}:{self.port}", parts.path, parts.query, parts.fragment))

    def redeploy(self, settings: ReferenceConfig) -> None:
        """Serve other weights or switches behind the same URL from now on, as a provider updates a
        hosted model under the same name (used to test drift detection)."""
        model = self.model_factory(settings)
        old, self._model, self.settings = self._model, model, settings
        if self._app is not None:
            self._app.model = model
        if old is not None:
            old.close()

    def start(self) -> ReferenceServer:
        from pipeline.core.loopback import BackgroundServer

        self._model = self.model_factory(self.settings)
        self._app = ReferenceApp(self._model, self.api_key)
        self._server = BackgroundServer(self._app, host=self.host, port=self.port, name="reference server")
        try:
            self._server.start()
        except BaseException:
            self.stop()
            raise
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        if self._model is not None:
            self._model.close()
        self._server = self._model = self._app = None

    def __enter__(self) -> ReferenceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=ReferenceConfig.model, help="weights: local directory or hub id")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--served-model", default=ReferenceConfig.served_model)
    parser.add_argument("--template", default="vllm", choices=[t.value for t in Template])
    parser.add_argument("--no-strip", action="store_true", help="keep surrounding whitespace")
    parser.add_argument("--dtype", default="bfloat16", choices=[d.value for d in DType])
    parser.add_argument("--instruction", default=None, help="default instruction when a request has none")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key-env", default=None, help="require the bearer token held by this variable")
    args = parser.parse_args(argv)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env) or None
        if api_key is None:
            parser.error(f"--api-key-env {args.api_key_env}: the variable is not set")
    settings = ReferenceConfig(model=args.model, revision=args.revision, served_model=args.served_model,
                                 template=Template(args.template), strip=not args.no_strip, dtype=DType(args.dtype),
                                 instruction=args.instruction)  # fmt: skip
    with ReferenceServer(settings, api_key=api_key, host=args.host, port=args.port) as server:
        print(json.dumps({"base_url": server.base_url, "model": settings.served_model}), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
