"""``python -m pipeline serve``: the local model + its calibrator as a drop-in for SiliconFlow's
``/v1/rerank`` (and ``/v1/embeddings`` for embedding models). Point a client's base URL at
``http://127.0.0.1:8000/v1`` instead of ``https://api.siliconflow.cn/v1``."""

from __future__ import annotations

import os
import socket
import sys

from pipeline.config.serve import ServeSettings
from pipeline.serve.service import ServeError, artifact_path


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"serve.host={host} serve.port={port}: cannot listen ({exc.strerror}); "
            "choose another port (serve.port=0 takes any free one)"
        ) from None
    sock.listen(2048)
    return sock


def run_serve(cfg: ServeSettings) -> int:
    import uvicorn

    from pipeline.serve.app import create_app
    from pipeline.serve.runtime import ServeRuntime

    serve = cfg.serve
    api_key = None
    if serve.api_key_env:
        api_key = os.environ.get(serve.api_key_env) or None
        if api_key is None:
            raise ServeError(
                f"serve.api_key_env={serve.api_key_env}: the variable is not set (export the token "
                "clients must send, or drop serve.api_key_env)"
            )
    artifact = artifact_path(cfg)
    if not artifact.is_dir():
        raise ServeError(
            f"serve.artifact={artifact}: no such artifact directory (run `python -m pipeline fit`, or set "
            "serve.artifact)"
        )
    if serve.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        print(
            f"warning: serve.host={serve.host} exposes the service beyond this machine without a token; set "
            "serve.api_key_env",
            file=sys.stderr,
        )
    sock = _listen(serve.host, serve.port)
    host, port = sock.getsockname()[:2]
    runtime = ServeRuntime(serve, artifact, api_key=api_key).start_loading()
    shown = f"[{host}]" if ":" in host else host
    print(
        f"serve: {artifact} on http://{shown}:{port}/v1 (POST /v1/rerank; GET /ready says when the model is loaded)",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), log_level="warning", access_log=False,
                                           lifespan="off"))  # fmt: skip
    try:
        server.run(sockets=[sock])
    finally:
        runtime.close()
        sock.close()
    return 0
