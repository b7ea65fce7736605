"""The throwaway DVC repository the repository-level tests share: built, and `dvc repro` run in it
on the reduced profile, once per session."""

from __future__ import annotations

import pytest

from tests.support.dvc import Repo, copy_working_tree


@pytest.fixture(scope="session")
def repo(tmp_path_factory) -> Repo:
    root = tmp_path_factory.mktemp("dvc-repo")
    copy_working_tree(root)
    config = root / "conf" / "config.yaml"
    config.write_text(config.read_text().replace("  - profile: full", "  - profile: quick"))
    r = Repo(root)
    r.run("git", "init", "-q")
    r.run("pipeline", "params")
    r.commit("quick profile")
    r.first = r.run("dvc", "repro")
    r.first_usage = r.usage()  # the tests run in any order (pytest-randomly): later runs rewrite it
    r.first_imports = r.imports()  # likewise: what each stage of the first repro imported
    r.commit("repro")
    return r
