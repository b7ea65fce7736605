"""Shared test settings: never touch the network, never open a window."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent

# Property tests draw the same examples on every run (CI never passes or fails by luck);
# HYPOTHESIS_PROFILE=explore draws new ones, for hunting bugs by hand.
from hypothesis import settings  # noqa: E402

settings.register_profile("reproducible", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))

# the loopback fake API server fixtures (`fake_server`, `server`), shared by the API and collect tests
pytest_plugins = ["tests.support.servers"]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def demo_table() -> Path:
    return REPO / "data" / "demo" / "paired_scores.csv"


@pytest.fixture(scope="session")
def fresh_clone(tmp_path_factory):
    """This working tree as a new user's clone has it (tracked and not-ignored files only: no DVC
    cache, score cache or artifact), after ``dvc repro`` on the full demo profile. Built once per
    session; tests that run commands in it must leave its tracked files as they are."""

    from tests.support.dvc import Repo, copy_working_tree

    root = tmp_path_factory.mktemp("fresh-clone")
    copy_working_tree(root)
    clone = Repo(root)
    clone.env.pop("DEMO_REFERENCE_API_KEY", None)
    clone.run("git", "init", "-q")
    clone.commit("clone")
    clone.first = clone.run("dvc", "repro")
    return clone


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def reranker_dir(models_dir) -> Path:
    """A tiny Qwen3 reranker checkpoint (random weights), loaded through the real loading code."""
    from pipeline.testing import tiny_models

    return tiny_models.build_tiny_qwen3_reranker(models_dir / "qwen3-reranker")


@pytest.fixture(scope="session")
def reranker_v2_dir(models_dir) -> Path:
    """Another tiny reranker with the same tokenizer and other weights: "the next revision"."""
    from pipeline.testing import tiny_models

    return tiny_models.build_tiny_qwen3_reranker(models_dir / "qwen3-reranker-v2", seed=1)


def pytest_sessionstart(session):
    """Print the test-order seed even under -q (pytest-randomly's own header line is hidden there):
    a failure that depends on the order is rerun with the same --randomly-seed."""
    seed = getattr(session.config.option, "randomly_seed", None)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if seed is not None and reporter is not None:
        reporter.write_line(f"test order: --randomly-seed={seed} (pass it to pytest to rerun this order)")
