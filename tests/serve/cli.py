"""Start `python -m pipeline serve` as a user does, wait until /ready, stop it (shared by the serve
tests and the DVC demo test)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def serve_process(args: list[str], cwd: Path, env: dict[str, str], timeout_s: float = 180.0):
    """Yields ``(process, base url)`` once /ready answers 200; stops the process on exit and
    checks that it shut down without a traceback (output in ``process.output`` afterwards)."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "serve", "serve.port=0", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        url = f"http://127.0.0.1:{match.group(1)}"
        deadline = time.monotonic() + timeout_s
        while (ready := httpx.get(url + "/ready")).status_code != 200:
            assert ready.json()["state"] == "loading", ready.text
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        yield proc, url
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
        proc.output = out + err
    # uvicorn shuts down gracefully, then re-raises the signal: the conventional exit for SIGTERM
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err, err
