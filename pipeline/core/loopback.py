"""An ASGI app served by uvicorn in a daemon thread, for servers the pipeline starts and stops
around its own work (the demo's reference API) and for the tests' fakes.

Binds 127.0.0.1 by default; port 0 asks the OS for a free port, read back after start.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class BackgroundServer:
    """``uvicorn.Server(app)`` in a daemon thread. ``start()`` returns once it accepts connections."""

    def __init__(
        self, app: Any, *, host: str = "127.0.0.1", port: int = 0, name: str = "server", **uvicorn_options: Any
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.name = name
        self.options = {"lifespan": "off", "log_level": "warning", "access_log": False, **uvicorn_options}
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 30.0) -> BackgroundServer:
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(self.app, host=self.host, port=self.port, **self.options))
        self._thread = threading.Thread(target=self._server.run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.stop()
                raise RuntimeError(f"{self.name} did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None


async def read_body(receive: Any) -> bytes:
    """The whole request body of an ASGI ``http`` request (it may arrive in several messages)."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)
