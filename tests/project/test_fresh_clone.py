"""A fresh clone reproduces what is committed: ``dvc repro`` on the full demo profile, in a copy of
this working tree that has none of its ignored files (no DVC cache, no score cache, no artifact),
re-runs only what the clone lacks -- the dataset's DVC-cached training part, ``resolve`` (always),
``fit`` (the artifact is DVC-cached) -- and changes no tracked file: the committed weights are
the ones the committed table was scored with, so ``train`` and ``collect`` are skipped and the
reference is asked nothing. It also fails when ``dvc.lock`` is stale for the code (a change under
a stage's deps without ``make repro``), which a fresh clone would otherwise discover by re-running.

Then the quick start's next commands work on that clone at once: ``check`` (exit 0).
"""

from __future__ import annotations

import pytest

from tests.support.dvc import ran

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def clone(fresh_clone):
    return fresh_clone


def test_repro_in_a_fresh_clone_changes_no_tracked_file_and_asks_the_reference_nothing(clone):
    stdout = clone.first.stdout
    assert ran(clone.first) <= {"dataset", "resolve", "fit"}, stdout
    for stage in ("train", "collect"):
        assert f"Stage '{stage}' didn't change, skipping" in stdout, stdout
    assert "data/demo/versions.json: unchanged" in stdout
    assert not (clone.root / "data/demo/paired_scores.csv.run.json").exists()  # collect never ran
    status = clone.status()
    assert status == "", f"tracked files changed (is dvc.lock stale? run `make repro` and commit):\n{status}"


def test_check_works_right_after_the_repro(clone):
    proc = clone.run("pipeline", "check", "--params", "params.yaml", ok=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("check: OK: fingerprints unchanged")
    assert clone.status() == ""  # check.json is an untracked report
