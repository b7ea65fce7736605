"""Shared test settings: never touch the network, never open a window."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent

# the loopback fake API server fixtures (`fake_server`, `server`), shared by the API and collect tests
pytest_plugins = ["tests.servers.helpers"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def demo_table() -> Path:
    return REPO / "data" / "demo" / "paired_scores.csv"
