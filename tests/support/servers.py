"""Helpers shared by the collect/API tests and the benchmark: the fake server fixtures, a
deterministic fake local scorer, and a config composer pointed at the fake server."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from pipeline.scorers.base import ProgressCallback, QueryGroup, Scorer
from pipeline.testing.fake_api import FakeApiServer

#: the key the fake server expects; tests also use it as the canary that must never leak
CANARY_KEY = "sk-canary-7f3a9c2e5b1d4e6f8a0b2c4d6e8f0a1b"
KEY_ENV = "FAKE_API_KEY"


class HashScorer(Scorer):
    """Deterministic fake local scorer: a hash of (salt, query, document) mapped to (0, 1)."""

    score_type = "probability"

    def __init__(self, salt: str = "local", fail_after: int | None = None) -> None:
        self.salt = salt
        self.calls: list[int] = []  # pairs per call
        self.fail_after = fail_after

    def score(self, groups: Sequence[QueryGroup], progress: ProgressCallback | None = None) -> list[np.ndarray]:
        if self.fail_after is not None and sum(self.calls) >= self.fail_after:
            raise RuntimeError("HashScorer: injected failure")
        out = []
        for g in groups:
            values = np.array([self.value(g.query, d) for d in g.documents], dtype=np.float64)
            out.append(values)
            if progress is not None:
                progress(len(values))
        self.calls.append(sum(len(g.documents) for g in groups))
        return out

    def value(self, query: str, document: str) -> float:
        digest = hashlib.sha256(f"{self.salt}|{query}|{document}".encode()).digest()
        return (int.from_bytes(digest[:8], "big") + 0.5) / 2**64

    def fingerprint(self) -> dict[str, Any]:
        return {"kind": "hash", "model": f"hash-{self.salt}", "revision": "0", "score_type": self.score_type}


class BadScorer(HashScorer):
    """An adversarial local scorer: right for every group but the one whose query contains
    ``marker``, where it returns NaN, inf, one score too few or one too many (``mode``)."""

    MODES = ("nan", "inf", "too_few", "too_many")

    def __init__(self, mode: str, marker: str) -> None:
        super().__init__()
        assert mode in self.MODES, mode
        self.mode, self.marker = mode, marker

    def score(self, groups: Sequence[QueryGroup], progress: ProgressCallback | None = None) -> list[np.ndarray]:
        out = super().score(groups, progress)
        for i, g in enumerate(groups):
            if self.marker in g.query:
                values = out[i].copy()
                if self.mode in ("nan", "inf"):
                    values[len(values) // 2] = np.nan if self.mode == "nan" else np.inf
                out[i] = (
                    values[:-1]
                    if self.mode == "too_few"
                    else (np.append(values, 0.5) if self.mode == "too_many" else values)
                )
        return out


def api_overrides(
    server: FakeApiServer, dialect: str = "siliconflow", group: str = "siliconflow", **extra: Any
) -> list[str]:
    """Hydra overrides that point ``api`` at the fake server with fast retries."""
    items = {
        "api.dialect": dialect,
        "api.base_url": server.base_url(dialect),
        "api.api_key_env": KEY_ENV,
        "api.backoff_initial_s": 0.01,
        "api.backoff_max_s": 0.05,
        "api.timeout_s": 2,
        "api.rpm": "null",
        "api.tpm": "null",
        "collect.progress": "false",
    }
    if dialect != "siliconflow":
        items["api.instruction"] = "null"
    if dialect in ("vllm", "vllm_score"):
        items["api.server_template"] = "false"  # the fake applies no template: the client formats
    items.update(extra)
    # the fake server is the reference, and only the scorers a test passes are local sources
    return (
        [f"api={group}"]
        + [f"{k}={v}" for k, v in items.items()]
        + ["reference.enabled=false", "~local@collect.extra_local.local_minilm"]
    )


@pytest.fixture(scope="session")
def fake_server():
    with FakeApiServer(api_key=CANARY_KEY) as server:
        yield server


@pytest.fixture
def server(fake_server, monkeypatch):
    """The session's fake server, reset to a well-behaved state, with the key in the env."""
    monkeypatch.setenv(KEY_ENV, CANARY_KEY)
    fake_server.reset()
    yield fake_server
    fake_server.reset()
