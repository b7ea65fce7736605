"""Write calibrator artifact directories atomically, with a manifest of hashes and provenance.

Layout of ``<root>/<name>/``::

    calibrator.json     pickle-free spec (pipeline.runtime.spec), the default thing production loads
    calibrator.joblib   the fitted scikit-learn object (optional; loaded only after hash check)
    intervals.json      per-score intervals (pipeline.runtime.intervals), when the run evaluated
    manifest.json       provenance, held-out metrics, library versions, sha256 of each file

The directory is assembled under a temporary name in the same parent and renamed into place
only once every file (manifest last) is written and fsynced, so a crash never leaves a directory
under the final name that could load. The loader (``pipeline.inference``) re-checks every hash.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.core.files import atomic_write_json, dumps_json, release_mode, sha256_file
from pipeline.runtime.loader import INTERVALS_FILE, JOBLIB_FILE, MANIFEST_FILE, SPEC_FILE, check_name

MANIFEST_FORMAT = "score-calibrator-manifest/v1"


def library_versions() -> dict[str, str]:
    import joblib
    import numpy
    import scipy
    import sklearn

    return {
        "python": platform.python_version(),
        "pipeline": __version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
    }


def write_artifact(
    root: str | os.PathLike,
    name: str,
    model: Any,
    manifest: dict[str, Any],
    *,
    write_joblib: bool = True,
    intervals: dict[str, Any] | None = None,
) -> Path:
    """Write spec (+ joblib) + manifest under ``root/name`` atomically; returns the final path.

    ``manifest`` holds provenance; this function adds ``files`` (sha256 of each file), ``format``
    and ``name``. No timestamp: the same inputs give the same bytes, so a re-fit that changed
    nothing leaves ``dvc.lock`` (which hashes the directory) as it was.
    """
    import joblib

    check_name(name)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
    try:
        os.chmod(staging, release_mode(directory=True))  # mkdtemp is 0700: readable like a release
        atomic_write_json(staging / SPEC_FILE, model.to_spec())
        files = {SPEC_FILE: sha256_file(staging / SPEC_FILE)}
        if write_joblib:
            joblib.dump(model, staging / JOBLIB_FILE)
            with open(staging / JOBLIB_FILE, "rb+") as fh:
                os.fsync(fh.fileno())
            files[JOBLIB_FILE] = sha256_file(staging / JOBLIB_FILE)
        if intervals is not None:
            atomic_write_json(staging / INTERVALS_FILE, intervals)
            files[INTERVALS_FILE] = sha256_file(staging / INTERVALS_FILE)
        full = dict(manifest)
        full.update({"format": MANIFEST_FORMAT, "name": name, "files": files})
        dumps_json(full)  # fail before anything is renamed if the manifest is not valid JSON
        atomic_write_json(staging / MANIFEST_FILE, full)
        _swap_into_place(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _swap_into_place(staging: Path, final: Path) -> None:
    """Rename ``staging`` to ``final``; an existing ``final`` is moved aside first, then removed."""
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.rmdir(old)
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
