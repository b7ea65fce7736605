"""A loopback fake of every reference-API wire format the client speaks, with fault injection.

Run in-process (tests)::

    with FakeApiServer(api_key="k") as server:
        base = server.base_url("siliconflow")          # http://127.0.0.1:<port>/siliconflow/v1
        server.push_faults("429:1", "503", "reset")    # consumed one per request, in order

or as a subprocess (benchmarks, so the server does not share the client's GIL)::

    python -m pipeline.testing.fake_api --latency 0.1 --rate-limit 100 --rate-window 5
    # prints {"port": N} on stdout, serves GET /_stats and POST /_reset

Each dialect lives under its own prefix (``/<dialect>/...``) so one server speaks all of them.
Request bodies are validated strictly per dialect (required and allowed fields), so an adapter
that sends the wrong field name fails here just as it would against the real API. Scores are a
deterministic hash of (query, document) (:func:`expected_score`), results come back sorted by
score (never in request order), and ``top_n``/``top_k`` cut them like the real APIs do.

SiliconFlow's format is not written here: its requests are validated and answered by
:mod:`pipeline.wire`, as ``serve`` and the loopback reference do. What this module adds is what
is fake: faults, latency, rate limits, counters, and the hosted service's per-model rules
(:data:`SF_DIMENSIONS`, instructions for Qwen3 rerankers only).

Fault specs (``push_faults`` / ``fault_fn``): ``429``, ``429:<retry-after>``, ``400``, ``401``,
``403``, ``404``, ``500``, ``502``, ``503``, ``504``, ``timeout:<seconds>`` (answer late),
``reset`` (TCP RST, no response), ``drop`` (headers then a cut body), ``malformed`` (not JSON),
``truncated`` (JSON cut in half, correct Content-Length), ``missing_index``, ``duplicate_index``,
``out_of_range_index``, ``nan_score``, ``tokens_meta`` (SiliconFlow usage under ``meta``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import math
import random
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipeline import wire
from pipeline.core.loopback import read_body

NATIVE_DIMS = 32

# transports by client address, so the app can reset the TCP connection of a request
_TRANSPORTS: dict[tuple[str, int], asyncio.Transport] = {}


class _TrackingH11(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.client:
            _TRANSPORTS[tuple(self.client)] = transport  # type: ignore[index]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client:
            _TRANSPORTS.pop(tuple(self.client), None)  # type: ignore[arg-type]
        super().connection_lost(exc)


def expected_score(query: str, document: str, raw: bool = False) -> float:
    """The fake model: a uniform hash of the pair in (0, 1); its logit when ``raw``."""
    digest = hashlib.sha256(f"{query}\x00{document}".encode()).digest()
    p = (int.from_bytes(digest[:8], "big") + 0.5) / 2**64
    return math.log(p / (1 - p)) if raw else p


def expected_embedding(text: str, dimensions: int | None = None) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    vec = np.random.default_rng(seed).standard_normal(max(NATIVE_DIMS, dimensions or 0))
    if dimensions is not None:
        vec = vec[:dimensions]
    return vec / np.linalg.norm(vec)


def _tokens(*texts: str) -> int:
    return sum(len(t) // 4 + 1 for t in texts)


@dataclass
class Record:
    """One request as the server saw it."""

    dialect: str
    endpoint: str
    body: Any
    arrived: float
    fault: str | None = None
    status: int = 0
    peer: int = 0  # client port: distinct values = distinct TCP connections
    finished: float = float("inf")
    deprecated_path: bool = False

    @property
    def pairs(self) -> list[tuple[str, str]]:
        """(query, document) pairs a rerank request asked about."""
        if not isinstance(self.body, dict) or self.endpoint != "rerank":
            return []
        query = self.body.get("query", self.body.get("text_1"))
        docs = self.body.get("documents", self.body.get("texts", self.body.get("text_2"))) or []
        return [(query, d) for d in docs]


# --- per-dialect request schemas: (required, optional) ----------------------------------------
# Each from the provider's own reference, so a client that sends a field the real server rejects
# fails here too. Re-check against these sources when a provider changes its API:
# (SiliconFlow's are pipeline.wire's, checked there against
# https://docs.siliconflow.cn/cn/api-reference/rerank/create-rerank and
# https://api-docs.siliconflow.cn/docs/api/embeddings-post)
RERANK_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # https://docs.cohere.com/reference/rerank (v2)
    "cohere": ({"model", "query", "documents"}, {"top_n", "max_tokens_per_doc"}),
    # https://api.jina.ai/openapi.json  RankAPIInput
    "jina": ({"model", "query", "documents"}, {"top_n", "return_documents"}),
    # https://docs.voyageai.com/reference/reranker-api
    "voyage": ({"model", "query", "documents"}, {"top_k", "return_documents", "truncation"}),
    # text-embeddings-inference router/src/http/types.rs  RerankRequest
    "tei": ({"query", "texts"}, {"raw_scores", "return_text", "truncate", "truncation_direction"}),
    # vllm/entrypoints/openai/protocol.py  RerankRequest / ScoreRequest
    "vllm": ({"query", "documents"}, {"model", "top_n", "truncate_prompt_tokens"}),
    "vllm_score": ({"text_1", "text_2"}, {"model", "truncate_prompt_tokens"}),
    # infinity libs/infinity_emb/infinity_emb/fastapi_schemas/pymodels.py  RerankInput
    "infinity": ({"query", "documents"}, {"model", "top_n", "return_documents", "raw_scores"}),
}
EMBED_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # https://platform.openai.com/docs/api-reference/embeddings (TEI, vLLM, infinity)
    "openai": ({"input"}, {"model", "encoding_format", "dimensions", "user"}),
    # https://docs.voyageai.com/reference/embeddings-api
    "voyage": ({"input", "model"}, {"output_dimension", "input_type", "truncation"}),
    # https://api.jina.ai/openapi.json  TextEmbeddingInput: extra fields are rejected with
    # 400 "extra fields not permitted"; its format field is `embedding_type`, not `encoding_format`
    "jina": ({"input", "model"}, {"embedding_type", "task", "dimensions", "normalized", "late_chunking", "truncate"}),
}
#: SiliconFlow accepts `dimensions` only from these lists (Qwen3-Embedding); other values get a 400.
#: A rule of the hosted service's models, not of the format (``serve`` answers one size): kept
#: apart from the client's copy on purpose (a fake that imported it could not catch it), from
#: the newer reference https://api-docs.siliconflow.cn/docs/api/embeddings-post
SF_DIMENSIONS = {
    "Qwen/Qwen3-Embedding-0.6B": (64, 128, 256, 512, 768, 1024),
    "Qwen/Qwen3-Embedding-4B": (64, 128, 256, 512, 768, 1024, 1536, 2048, 2560),
    "Qwen/Qwen3-Embedding-8B": (64, 128, 256, 512, 768, 1024, 1536, 2048, 2560, 4096),
}
#: vLLM paths: /rerank and /score are canonical, the /v1 forms deprecated aliases
#: (vllm/entrypoints/openai/api_server.py); requests to an alias are flagged in the record
DEPRECATED_PATHS = {"vllm/v1/rerank", "vllm/v1/score"}
# path under the dialect prefix -> (dialect, endpoint)
ROUTES: dict[str, tuple[str, str]] = {
    f"siliconflow{wire.API_PREFIX}{wire.RERANK_PATH}": ("siliconflow", "rerank"),
    f"siliconflow{wire.API_PREFIX}{wire.EMBEDDINGS_PATH}": ("siliconflow", "embeddings"),
    "cohere/v2/rerank": ("cohere", "rerank"),
    "jina/v1/rerank": ("jina", "rerank"),
    "jina/v1/embeddings": ("jina", "embeddings"),
    "voyage/v1/rerank": ("voyage", "rerank"),
    "voyage/v1/embeddings": ("voyage", "embeddings"),
    "tei/rerank": ("tei", "rerank"),
    "tei/v1/embeddings": ("tei", "embeddings"),
    "vllm/rerank": ("vllm", "rerank"),
    "vllm/v1/rerank": ("vllm", "rerank"),
    "vllm/score": ("vllm_score", "rerank"),
    "vllm/v1/score": ("vllm_score", "rerank"),
    "vllm/v1/embeddings": ("vllm", "embeddings"),
    "infinity/rerank": ("infinity", "rerank"),
    "infinity/embeddings": ("infinity", "embeddings"),
}
#: where engines say which model they serve (vLLM GET /v1/models, TEI GET /info, infinity GET /models)
INFO_ROUTES = {"vllm/v1/models", "tei/info", "infinity/models"}
# base_url each dialect's default path expects
BASE_PREFIX = {
    "siliconflow": "/siliconflow" + wire.API_PREFIX,
    "cohere": "/cohere",
    "jina": "/jina/v1",
    "voyage": "/voyage/v1",
    "tei": "/tei",
    "vllm": "/vllm",
    "vllm_score": "/vllm",
    "infinity": "/infinity",
}


class BadRequest(Exception):
    """A request the server refuses: 400, or 422 where the real server validates with pydantic
    under FastAPI (infinity); ``payload`` is the error body where the dialect has its own shape."""

    def __init__(self, message: str, status: int = 400, payload: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload

    @classmethod
    def siliconflow(cls, exc: wire.RequestError) -> BadRequest:
        return cls(str(exc), exc.status, wire.error_body(exc))


#: servers whose request models ignore unknown fields instead of refusing them: infinity's
#: pydantic models keep BaseModel's default extra="ignore" (fastapi_schemas/pymodels.py RerankInput,
#: _OpenAIEmbeddingInput; checked against a real 0.0.78 server in tests/peers/test_infinity_conformance.py);
#: vLLM's OpenAIBaseModel sets model_config = ConfigDict(extra="allow") and only logs the ignored
#: fields (vllm/entrypoints/openai/protocol.py). Tests that care what the client sends read the record.
IGNORES_UNKNOWN_FIELDS = {"infinity", "vllm", "vllm_score"}
#: servers that strip leading and trailing whitespace of every input text: infinity
#: (fastapi_schemas/pydantic_v2.py: INPUT_STRING = StringConstraints(..., strip_whitespace=True))
STRIPS_INPUTS = {"infinity"}
#: servers that answer a malformed request with FastAPI's 422 and a pydantic "detail" list: infinity
VALIDATION_STATUS = {"infinity": 422}


@dataclass
class FakeState:
    """Everything a test may configure or inspect; safe to touch from the test thread."""

    api_key: str | None = None
    latency_s: float = 0.0
    rate_limit: int | None = None  # max requests per rate_window_s (sliding), else 429
    rate_window_s: float = 60.0
    rate_limit_retry_after: float | None = None
    echo_auth_in_errors: bool = False  # a careless server that echoes the Authorization header
    sf_usage_shape: str = "tokens"  # "tokens" (top level) or "meta" for SiliconFlow responses
    # vLLM started with --chat-template (True) or without (False); None: no prompt checks. A
    # prompt the client already formatted, sent to a server that formats it again, scores every
    # document alike (clustered at one value), as a twice-wrapped Qwen3 prompt does
    vllm_server_template: bool | None = None
    # reported usage = the fake's token count x this (a server whose tokenizer counts fewer
    # tokens than the client's conservative estimate; the pacing benchmark uses 1/18)
    token_report_ratio: float = 1.0
    # a real model behind the wire (the vLLM stand-in): (query text, document texts) -> scores,
    # and texts -> vectors; None = the deterministic hash model
    pair_scorer: Callable[[str, list[str]], list[float]] | None = None
    embedder: Callable[[list[str]], list[list[float]]] | None = None
    # what GET /vllm/v1/models, /tei/info and /infinity/models report (None: 404, like an old server)
    served_model: dict[str, Any] | None = None
    faults: collections.deque = field(default_factory=collections.deque)
    fault_fn: Callable[[int, str, Any], str | None] | None = None
    records: list[Record] = field(default_factory=list)
    arrivals: collections.deque = field(default_factory=collections.deque)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear_records(self) -> None:
        with self.lock:
            self.records.clear()
            self.arrivals.clear()
            self.max_in_flight = self.in_flight

    def reset(self) -> None:
        """Back to a well-behaved server (keeps api_key); for the next test."""
        with self.lock:
            self.faults.clear()
            self.fault_fn = None
        self.clear_records()
        self.latency_s = 0.0
        self.rate_limit = None
        self.rate_window_s = 60.0
        self.rate_limit_retry_after = None
        self.echo_auth_in_errors = False
        self.sf_usage_shape = "tokens"
        self.vllm_server_template = None
        self.token_report_ratio = 1.0
        self.pair_scorer = None
        self.embedder = None
        self.served_model = None

    def stats(self) -> dict[str, Any]:
        with self.lock:
            statuses = collections.Counter(r.status for r in self.records)
            return {
                "requests": len(self.records),
                "statuses": {str(k): v for k, v in sorted(statuses.items())},
                "rate_limited": statuses.get(429, 0),
                "max_in_flight": self.max_in_flight,
                "arrivals": [r.arrived for r in self.records],
                "documents": sum(len(r.pairs) for r in self.records),
            }


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/json", **(headers or {})}, json.dumps(payload).encode()


class FakeApp:
    """Raw ASGI app (so a fault can abort the connection instead of answering)."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        raw_body = await read_body(receive)
        path = scope["path"].strip("/")
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if path == "_stats":
            return await self._send(send, *_json(200, self.state.stats()))
        if path == "_reset":
            self.state.clear_records()
            return await self._send(send, *_json(200, {"ok": True}))
        if path in INFO_ROUTES and scope["method"] == "GET":
            return await self._send(send, *self._info(path))
        route = ROUTES.get(path)
        if route is None:
            return await self._send(send, *_json(404, {"message": f"no route /{path}"}))
        dialect, endpoint = route
        try:
            body = json.loads(raw_body)
        except ValueError:
            body = None
        st = self.state
        with st.lock:
            record = Record(
                dialect,
                endpoint,
                body,
                time.monotonic(),
                peer=(scope.get("client") or ("", 0))[1],
                deprecated_path=path in DEPRECATED_PATHS,
            )
            st.records.append(record)
            number = len(st.records)
            fault = st.faults.popleft() if st.faults else None
            if fault is None and st.fault_fn is not None:
                fault = st.fault_fn(number, dialect, body)
            record.fault = fault
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            await self._handle(scope, send, record, headers, dialect, endpoint, body, fault)
        finally:
            record.finished = time.monotonic()
            with st.lock:
                st.in_flight -= 1

    def _info(self, path: str) -> tuple[int, dict[str, str], bytes]:
        served = self.state.served_model
        if served is None:
            return _json(404, {"message": f"no route /{path}"})
        if path == "tei/info":  # router/src/http/types.rs Info
            return _json(
                200,
                {
                    "model_id": served.get("id"),
                    "model_sha": served.get("revision"),
                    "model_dtype": served.get("dtype", "float32"),
                    "max_input_length": 8192,
                    "version": "1.8.0",
                    "max_concurrent_requests": 512,
                },
            )
        entry = {
            "id": served.get("id"),
            "object": "model",
            "created": int(time.time()),
            "owned_by": "vllm",
            "root": served.get("root", served.get("id")),
            "parent": None,
            "max_model_len": 40960,
            "permission": [{"id": f"modelperm-{time.time_ns()}", "created": int(time.time())}],
        }
        if path == "infinity/models":
            entry = {
                "id": served.get("id"),
                "object": "model",
                "created": int(time.time()),
                "backend": "torch",
                "owned_by": "infinity",
                "capabilities": ["rerank"],
            }
        return _json(200, {"object": "list", "data": [entry]})

    async def _send(self, send: Callable, status: int, headers: dict[str, str], body: bytes) -> None:
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    def _abort(self, scope: dict) -> None:
        transport = _TRANSPORTS.get(tuple(scope["client"]))
        if transport is None:
            return
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        transport.abort()

    async def _handle(self, scope, send, record: Record, headers, dialect, endpoint, body, fault) -> None:
        st = self.state
        if st.rate_limit is not None:  # counted on arrival, like a real gateway
            now = time.monotonic()
            with st.lock:
                while st.arrivals and st.arrivals[0] <= now - st.rate_window_s:
                    st.arrivals.popleft()
                limited = len(st.arrivals) >= st.rate_limit
                if not limited:
                    st.arrivals.append(now)
            if limited:
                extra = {} if st.rate_limit_retry_after is None else {"retry-after": f"{st.rate_limit_retry_after:g}"}
                record.status = 429
                return await self._send(send, *_json(429, {"message": "rate limit exceeded (RPM)"}, extra))
        if st.latency_s:
            await asyncio.sleep(st.latency_s)
        if st.api_key is not None and headers.get("authorization") != f"Bearer {st.api_key}":
            record.status = 401
            message = {"message": "Invalid token"}
            if st.echo_auth_in_errors:
                message["received"] = headers.get("authorization", "")
            return await self._send(send, *_json(401, message))
        kind, _, arg = (fault or "").partition(":")
        if kind == "reset":
            record.status = -1
            self._abort(scope)
            return
        if kind == "drop":
            record.status = -2
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
                }
            )
            await send({"type": "http.response.body", "body": b'{"results": [', "more_body": True})
            await asyncio.sleep(0.01)
            self._abort(scope)
            return
        if kind == "timeout":
            await asyncio.sleep(float(arg or 5))
        if kind.isdigit():
            status = int(kind)
            record.status = status
            extra = {"retry-after": arg} if arg else {}
            payload = {"code": status, "message": f"injected {status}"}
            if status == 403:
                payload["message"] = "Sorry, your account has not completed real-name verification"
            if status == 401 and st.echo_auth_in_errors:
                payload["received"] = headers.get("authorization", "")
            return await self._send(send, *_json(status, payload, extra))
        if kind == "malformed":
            record.status = 200
            return await self._send(
                send, 200, {"content-type": "text/html"}, b"<html><body>502 Bad Gateway</body></html>"
            )
        try:
            if endpoint == "rerank":
                payload = self._rerank(dialect, body, fault)
            else:
                payload = self._embed(dialect, body, fault)
        except BadRequest as exc:
            record.status = exc.status
            payload = exc.payload or ({"detail": [{"msg": str(exc)}]} if exc.status == 422 else {"message": str(exc)})
            return await self._send(send, *_json(exc.status, payload))
        headers = {"content-type": "application/json"}
        if dialect == "tei" and endpoint == "rerank":  # TEI reports usage in a header only
            headers["x-compute-tokens"] = str(self._reported(_tokens(*[body["query"] + t for t in body["texts"]])))
        data = json.dumps(payload).encode()
        if kind == "truncated":
            data = data[: len(data) // 2]
        record.status = 200
        await self._send(send, 200, headers, data)

    # -- well-formed answers -----------------------------------------------------------------

    @staticmethod
    def _check_fields(body: Any, schema: tuple[set[str], set[str]], dialect: str) -> None:
        status = VALIDATION_STATUS.get(dialect, 400)
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object", status)
        required, optional = schema
        missing = required - set(body)
        unknown = set() if dialect in IGNORES_UNKNOWN_FIELDS else set(body) - required - optional
        if missing or unknown:
            raise BadRequest(f"{dialect}: missing {sorted(missing)} unknown {sorted(unknown)}", status)

    def _reported(self, tokens: int) -> int:
        return max(1, int(round(tokens * self.state.token_report_ratio)))

    def _pair_scores(self, query: str, docs: list[str], raw: bool = False) -> list[float]:
        if self.state.pair_scorer is not None:
            return self.state.pair_scorer(query, list(docs))
        return [expected_score(query, d, raw) for d in docs]

    def _siliconflow_rerank(self, body: Any, fault: str | None) -> Any:
        """SiliconFlow's rerank, format and all from pipeline.wire; the hosted service's rule on top:
        ``instruction`` is for Qwen3 rerankers only."""
        try:
            request = wire.parse_rerank(body, None)
            if request["instruction"] is not None and "qwen3-reranker" not in str(body["model"]).lower():
                raise wire.RequestError(
                    400,
                    wire.INVALID_REQUEST,
                    f"instruction is only supported by Qwen3 reranker models, not {body['model']}",
                )
        except wire.RequestError as exc:
            raise BadRequest.siliconflow(exc) from None
        query, docs = request["query"], request["documents"]
        results = wire.rerank_results(
            self._pair_scores(query, docs), request["top_n"], docs if request["return_documents"] else None
        )
        tokens = self._reported(_tokens(*[query + d for d in docs]))
        usage_at = ("meta",) if fault == "tokens_meta" or self.state.sf_usage_shape == "meta" else ("tokens",)
        return wire.rerank_body(_faulty(results, fault, len(docs), wire.SCORE), tokens, id="sf-1", usage_at=usage_at)

    def _rerank(self, dialect: str, body: Any, fault: str | None) -> Any:
        if dialect == "siliconflow":
            return self._siliconflow_rerank(body, fault)
        self._check_fields(body, RERANK_FIELDS[dialect], dialect)
        query = body.get("query", body.get("text_1"))
        docs = body.get("documents", body.get("texts", body.get("text_2")))
        if (
            not isinstance(query, str)
            or not isinstance(docs, list)
            or not docs
            or not all(isinstance(d, str) for d in docs)
        ):
            raise BadRequest(
                "query must be a string and documents a non-empty list of strings", VALIDATION_STATUS.get(dialect, 400)
            )
        if dialect in STRIPS_INPUTS:
            query, docs = query.strip(), [d.strip() for d in docs]
        top = body.get("top_n", body.get("top_k"))
        if dialect == "infinity" and top is not None and (not isinstance(top, int) or top < 1):
            raise BadRequest("top_n: Input should be greater than 0", 422)  # RerankInput: Field(gt=0)
        values = self._pair_scores(query, docs, bool(body.get("raw_scores", False)))
        items = [{"index": i, "score": v} for i, v in enumerate(values)]
        if dialect in {"vllm", "vllm_score"} and self.state.vllm_server_template and "<|im_start|>" in query:
            items = [{"index": i, "score": 0.9990 + 1e-6 * (i % 3)} for i in range(len(docs))]  # wrapped twice
        items.sort(key=lambda it: -it["score"])  # real APIs sort by relevance
        if isinstance(top, int):
            items = items[:top]
        tokens = self._reported(_tokens(*[query + d for d in docs]))
        key = "score" if dialect in {"tei", "vllm_score"} else "relevance_score"
        results = _faulty([{"index": it["index"], key: it["score"]} for it in items], fault, len(docs), key)
        if dialect == "vllm":  # vLLM always returns the document (protocol.py RerankResult.document)
            results = [dict(r, document={"text": docs[r["index"]]}) for r in results]
        if dialect == "infinity":  # _ReRankObject.document: Optional[str], null unless return_documents
            results = [dict(r, document=docs[r["index"]] if body.get("return_documents") else None) for r in results]
        if dialect == "cohere":  # one search unit per query with up to 100 documents
            return {
                "id": "co-1",
                "results": results,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": -(-len(docs) // 100)}},
            }
        if dialect == "jina":
            return {"model": body["model"], "usage": {"total_tokens": tokens}, "results": results}
        if dialect == "voyage":
            return {"object": "list", "data": results, "model": body["model"], "usage": {"total_tokens": tokens}}
        if dialect == "tei":
            return results
        if dialect == "vllm":
            return {"id": "rerank-1", "model": body.get("model"), "usage": {"total_tokens": tokens}, "results": results}
        if dialect == "vllm_score":
            return {
                "id": "score-1",
                "object": "list",
                "created": 0,
                "model": body.get("model"),
                "data": [dict(r, object="score") for r in results],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        return {
            "object": "rerank",
            "results": results,
            "model": body.get("model"),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            "id": "inf-1",
            "created": 0,
        }

    def _siliconflow_embed_request(self, body: Any) -> tuple[list[str], Any, str]:
        """(texts, dimensions, encoding) of a SiliconFlow embeddings request, validated by
        pipeline.wire; the hosted service's rule on top: ``dimensions`` from :data:`SF_DIMENSIONS`."""
        try:
            request = wire.parse_embeddings(body, None)
            dims = body.get("dimensions")
            if dims is not None and dims not in SF_DIMENSIONS.get(body["model"], ()):
                raise wire.RequestError(
                    400, wire.INVALID_REQUEST, f"dimensions {dims} is not supported for model {body['model']}"
                )
        except wire.RequestError as exc:
            raise BadRequest.siliconflow(exc) from None
        return request["input"], dims, request["encoding_format"]

    def _embed(self, dialect: str, body: Any, fault: str | None) -> Any:
        if dialect == "siliconflow":
            texts, dims, encoding = self._siliconflow_embed_request(body)
        else:
            schema = EMBED_FIELDS[dialect if dialect in EMBED_FIELDS else "openai"]
            self._check_fields(body, schema, dialect)
            texts, encoding = body["input"], "float"
            if isinstance(texts, str):
                texts = [texts]
            if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
                raise BadRequest(
                    "input must be a string or a non-empty list of strings", VALIDATION_STATUS.get(dialect, 400)
                )
            if dialect in STRIPS_INPUTS:
                texts = [t.strip() for t in texts]
            dims = body.get("output_dimension" if dialect == "voyage" else "dimensions")
            if dims is not None and (not isinstance(dims, int) or not 1 <= dims <= NATIVE_DIMS):
                raise BadRequest(f"dimensions must be in 1..{NATIVE_DIMS}")
        if self.state.embedder is not None:
            vectors = self.state.embedder(list(texts))
        else:
            vectors = [expected_embedding(t, dims).tolist() for t in texts]
        # every dialect here answers in OpenAI's shape, which is SiliconFlow's (pipeline.wire)
        data = wire.embedding_items(vectors, encoding)
        random.Random(len(texts)).shuffle(data)
        tokens = self._reported(_tokens(*texts))
        return wire.embeddings_body(body.get("model"), _faulty(data, fault, len(texts)), tokens)


def _faulty(
    items: list[dict[str, Any]], fault: str | None, n: int, score_key: str | None = None
) -> list[dict[str, Any]]:
    """``items`` (sorted results, or embeddings; answering ``n`` inputs) with the index or score
    fault ``fault`` names: one item left out, an index repeated or out of range, a NaN score."""
    items = list(items)
    if fault == "missing_index" and len(items) > 1:
        items = items[:-1]
    elif fault == "duplicate_index" and len(items) > 1:
        items[-1] = dict(items[-1], index=items[0]["index"])
    elif fault == "out_of_range_index":
        items[-1] = dict(items[-1], index=n + 3)
    elif fault == "nan_score" and score_key is not None:
        items[0] = dict(items[0], **{score_key: float("nan")})
    return items


def max_overlap(records: list[Record]) -> int:
    """Most requests the server was handling at once among ``records``."""
    events = sorted([(r.arrived, 1) for r in records] + [(r.finished, -1) for r in records], key=lambda e: (e[0], e[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


class FakeApiServer:
    """uvicorn serving :class:`FakeApp` on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, **state: Any) -> None:
        self.state = FakeState(**state)
        self._server = None
        self.port = 0

    # configuration shortcuts
    def push_faults(self, *specs: str) -> None:
        with self.state.lock:
            self.state.faults.extend(specs)

    @property
    def records(self) -> list[Record]:
        with self.state.lock:
            return list(self.state.records)

    def reset(self) -> None:
        key = self.state.api_key
        self.state.reset()
        self.state.api_key = key

    def base_url(self, dialect: str) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_PREFIX[dialect]}"

    def start(self) -> FakeApiServer:
        from pipeline.core.loopback import BackgroundServer

        self._server = BackgroundServer(
            FakeApp(self.state), name="fake API", http=_TrackingH11, log_level="critical", timeout_keep_alive=30
        ).start(timeout_s=10)
        self.port = self._server.port
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=int, default=None)
    parser.add_argument("--rate-window", type=float, default=60.0)
    parser.add_argument("--api-key-env", default=None, help="require the key held by this env var")
    parser.add_argument(
        "--token-report-ratio",
        type=float,
        default=1.0,
        help="reported usage = the fake's token count x this (e.g. 0.0556 = 1/18)",
    )
    args = parser.parse_args(argv)
    import os

    state = FakeState(
        api_key=os.environ.get(args.api_key_env) if args.api_key_env else None,
        latency_s=args.latency,
        rate_limit=args.rate_limit,
        rate_window_s=args.rate_window,
        token_report_ratio=args.token_report_ratio,
    )
    config = uvicorn.Config(
        FakeApp(state),
        host="127.0.0.1",
        port=args.port,
        http=_TrackingH11,
        lifespan="off",
        log_level="critical",
        access_log=False,
        timeout_keep_alive=30,
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                return await task
            await asyncio.sleep(0.01)
        print(json.dumps({"port": server.servers[0].sockets[0].getsockname()[1]}), flush=True)
        await task

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
