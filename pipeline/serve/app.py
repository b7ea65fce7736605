"""The HTTP side of ``serve``: FastAPI routes in SiliconFlow's wire format (``pipeline.wire``).

* ``POST /v1/rerank``: calibrated scores, sorted, with ``index`` and token usage; with the
  opt-in ``return_interval`` (``serve``'s one extension), each result's ``interval`` too;
* ``POST /v1/embeddings``: the raw vectors, for an embedding model (calibrators map pair scores,
  not vectors);
* ``GET /v1/models``: the served name;
* ``GET /health``: the process answers; ``GET /ready``: the model and the calibrator are loaded,
  verified and fitted for each other (503 with the reason otherwise).

Every error, FastAPI's own 404/405 included, comes back in the API's error shape
``{"code", "message", "data"}``, so a client's error handling works unchanged.
"""

from __future__ import annotations

from pipeline.core.extras import require

require("python -m pipeline serve (pipeline.serve.app)", "serve")

import asyncio
from types import SimpleNamespace

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from pipeline.runtime.intervals import IntervalError
from pipeline.runtime.loader import INTERVALS_FILE, CalibratorLoadError
from pipeline.scorers.base import QueryGroup
from pipeline.serve.runtime import ServeRuntime
from pipeline.wire import (
    API_PREFIX,
    EMBEDDINGS_PATH,
    INTERNAL_ERROR,
    INVALID_REQUEST,
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

#: JSON overhead allowed on top of the texts a request may carry
_BODY_SLACK = 64 * 1024

#: request fields ``serve`` takes on top of SiliconFlow's (the reference server and the fake refuse them)
EXTENSIONS = frozenset({"return_interval"})
#: the coverage ``"return_interval": true`` asks for
DEFAULT_COVERAGE = 0.9


def interval_coverage(value, calibrator) -> float | None:
    """The stored coverage a request's ``return_interval`` asks for, or None when it asks for none.

    ``true`` is 0.9, a number in (0, 1) that coverage (the next stored one up: never less than
    asked); ``false``/``null``/absent: no interval, the response is SiliconFlow's exactly. A
    calibrator without intervals, or a coverage it does not hold, is the request's 400, checked
    before the model runs."""
    if value is None or value is False:
        return None
    if value is True:
        value = DEFAULT_COVERAGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
        raise RequestError(
            400, INVALID_REQUEST, "return_interval must be true, false or a coverage in (0, 1) such as 0.9"
        )
    if INTERVALS_FILE not in (calibrator.manifest.get("files") or {}):
        raise RequestError(
            400,
            INVALID_REQUEST,
            "return_interval: the served calibrator carries no per-score intervals (fitted before they "
            "existed); re-fit it with `python -m pipeline fit` to serve them",
        )
    try:
        return calibrator.interval_table().level(value)
    except CalibratorLoadError as exc:  # a table that fails its hash: the server's fault, not the request's
        raise RequestError(500, INTERNAL_ERROR, f"return_interval: {exc}") from None
    except IntervalError as exc:
        raise RequestError(400, INVALID_REQUEST, f"return_interval: {exc}") from None


def interval_fields(calibrator, scores: list[float], coverage: float) -> list[dict]:
    """Each document's ``interval`` result field: bounds of the reference score around its
    calibrated score (the artifact's split-conformal table), and the coverage they hold."""
    lower, upper = calibrator.interval_table()(np.asarray(scores, dtype=np.float64), coverage)
    return [
        {"interval": {"lower": float(lo), "upper": float(hi), "coverage": coverage}} for lo, hi in zip(lower, upper)
    ]


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(error_body(RequestError(status, code, message)), status_code=status)


def create_app(runtime: ServeRuntime) -> FastAPI:
    cfg = runtime.cfg
    # each character is at most 4 bytes of UTF-8 (12 as a \\u escape pair in JSON)
    max_body = (cfg.max_documents + 1) * cfg.max_text_chars * 12 + _BODY_SLACK
    app = FastAPI(title="score-calibration serve", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(RequestError)
    async def request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse(error_body(exc), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")

    @app.exception_handler(Exception)
    async def unexpected_error(_: Request, exc: Exception) -> JSONResponse:  # never a hang, never a stack trace
        return JSONResponse(error_body(internal_error(exc)), status_code=500)

    def authorize(request: Request) -> None:
        check_auth(request.headers.get("authorization", ""), runtime.api_key)

    def ready_model():
        if not runtime.readiness.ready or runtime.model is None or runtime.batcher is None:
            state = runtime.readiness
            raise RequestError(503, 50300, f"not ready ({state.state})" + (f": {state.reason}" if state.reason else ""))
        return runtime.model

    async def json_body(request: Request):
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise RequestError(413, INVALID_REQUEST, f"request body of {declared} bytes exceeds {max_body}")
        raw = await request.body()
        if len(raw) > max_body:
            raise RequestError(413, INVALID_REQUEST, f"request body of {len(raw)} bytes exceeds {max_body}")
        return parse_json(raw)

    def limits(model) -> SimpleNamespace:
        return SimpleNamespace(
            served_model=model.served_model, max_documents=cfg.max_documents, max_text_chars=cfg.max_text_chars
        )

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/ready")
    async def ready() -> JSONResponse:
        state = runtime.readiness
        body = {
            "ready": state.ready,
            "state": state.state,
            "reason": state.reason,
            "warnings": list(state.warnings),
            "artifact": str(runtime.artifact),
            "model": runtime.served_model,
        }
        if runtime.model is not None:
            manifest = runtime.model.calibrator.manifest
            body["calibrator"] = (manifest.get("calibrator") or {}).get("family")
            try:  # what `return_interval` can ask for
                body["interval_coverages"] = list(runtime.model.calibrator.interval_table().coverages)
            except (CalibratorLoadError, IntervalError):
                body["interval_coverages"] = []
            body["sources"] = [
                {k: s.get(k) for k in ("column", "model", "revision")} for s in manifest.get("sources") or []
            ]
            body["serving"] = [
                {k: fp.get(k) for k in ("model", "revision", "dtype", "device_type")}
                for fp in (scorer.fingerprint() for scorer in runtime.model.scorers)
            ]
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @app.get(API_PREFIX + MODELS_PATH)
    async def models(request: Request) -> dict:
        authorize(request)
        name = runtime.served_model
        return models_response(*([name] if name else []))

    @app.post(API_PREFIX + RERANK_PATH)
    async def rerank(request: Request) -> dict:
        authorize(request)
        model = ready_model()
        parsed = parse_rerank(await json_body(request), limits(model), EXTENSIONS)
        coverage = interval_coverage(parsed["extensions"].get("return_interval"), model.calibrator)
        instruction = parsed["instruction"]
        if instruction is not None and instruction != model.instruction:
            fitted = "the API's default" if model.instruction is None else repr(model.instruction)
            raise RequestError(
                400,
                INVALID_REQUEST,
                f"instruction differs from the one this calibrator was fitted "
                f"with ({fitted}); scores under another instruction are not "
                "calibrated",
            )
        group = QueryGroup(parsed["query"], parsed["documents"])
        if model.chunks and (parsed["max_chunks_per_doc"] or model.scorers[0].cfg.max_chunks_per_doc):
            scores = await asyncio.to_thread(
                model.score_chunked, group, parsed["max_chunks_per_doc"], parsed["overlap_tokens"]
            )
        else:  # Qwen3 rerankers and others: SiliconFlow accepts the chunk fields and ignores them
            scores = await runtime.batcher.submit(group)
        query, *documents = await asyncio.to_thread(model.token_counts, [parsed["query"], *parsed["documents"]])
        tokens = query * len(documents) + sum(documents)  # the query is read once per document
        scores = [float(s) for s in scores]
        extra = None if coverage is None else interval_fields(model.calibrator, scores, coverage)
        return rerank_response(parsed, scores, tokens, extra)

    @app.post(API_PREFIX + EMBEDDINGS_PATH)
    async def embeddings(request: Request) -> dict:
        authorize(request)
        model = ready_model()
        if model.embedder is None:
            raise RequestError(404, 404, f"{model.served_model!r} is a reranker: this server has no embeddings")
        parsed = parse_embeddings(await json_body(request), limits(model), model.dimensions)
        vectors = await asyncio.to_thread(model.embed, parsed["input"])
        if model.dimensions is not None and vectors.shape[1] != model.dimensions:  # never silently reshaped
            raise RequestError(
                500, INTERNAL_ERROR, f"the model returned {vectors.shape[1]}-d vectors, expected {model.dimensions}"
            )
        tokens = sum(await asyncio.to_thread(model.token_counts, parsed["input"]))
        return embeddings_response(model.served_model, vectors.tolist(), tokens, parsed["encoding_format"])

    return app
