"""Load a calibrator artifact next to the model and apply it (public path: :mod:`pipeline.inference`).

    from pipeline.inference import load_calibrator
    cal = load_calibrator("artifacts/calibrators/qwen3-4b", model="Qwen/Qwen3-Reranker-4B",
                          revision="<commit the service runs>")
    calibrated = cal(local_scores)          # (n,) -> (n,); or (n, k) for a fused artifact
    cal.manifest["metrics"]                 # held-out agreement it was exported with

Importing this module pulls numpy and the standard library only -- no torch, transformers or
scikit-learn. The default path reads ``calibrator.json`` (no pickle) after checking its sha256
against ``manifest.json``. ``use_joblib=True`` loads the scikit-learn object instead, and only
after *its* sha256 matches; joblib/pickle can execute code, so an unverified file is never
opened. A caller that declares the model (and revision) it runs gets a clear refusal when the
artifact was fitted for something else, unless ``allow_mismatch=True``.
"""

from __future__ import annotations

import importlib
import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.files import sha256_file
from pipeline.runtime.spec import SpecError, compile_spec, score_shape

if TYPE_CHECKING:
    from pipeline.runtime.intervals import IntervalTable

SPEC_FILE = "calibrator.json"
JOBLIB_FILE = "calibrator.joblib"
MANIFEST_FILE = "manifest.json"
#: per-score intervals (pipeline.runtime.intervals); absent from artifacts fitted before them
INTERVALS_FILE = "intervals.json"
#: an artifact's name is one path component of safe characters (export writes ``<root>/<name>/``)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: where the classes of a joblib artifact lived before the package layout (#23): pickles name them
LEGACY_MODULES = {
    "pipeline.calibrators": "pipeline.calibration.calibrators",
    "pipeline.fusion": "pipeline.calibration.fusion",
    "pipeline.fusion_scale": "pipeline.calibration.fusion_scale",
    "pipeline.pairwise": "pipeline.calibration.pairwise",
    "pipeline.spec": "pipeline.runtime.spec",
}

__all__ = [
    "ArtifactError",
    "ArtifactIntegrityError",
    "CalibratorLoadError",
    "LoadedCalibrator",
    "ModelMismatchError",
    "check_name",
    "load_calibrator",
]


class ArtifactError(PipelineError, ValueError):
    """Refuse an artifact name or destination that cannot be used."""


def check_name(name: str) -> None:
    """Refuse an artifact name that is not one path component of safe characters.

    Export writes ``<root>/<name>/``; a name with ``..`` or a slash would write outside the root,
    so the config and the exporter both call this before anything is written.

    Parameters
    ----------
    name : str
        The artifact's directory name (``export.name``).

    Raises
    ------
    ArtifactError
        When ``name`` does not match ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``.
    """
    if not _NAME.match(name):
        raise ArtifactError(f"artifact name {name!r} must match {_NAME.pattern} (letters, digits, . _ -)")


class CalibratorLoadError(PipelineError):
    """Refuse an artifact directory that cannot be used (missing manifest, invalid spec)."""


class ArtifactIntegrityError(CalibratorLoadError):
    """Refuse a file that is missing or whose sha256 differs from the manifest (corrupted or tampered)."""


class ModelMismatchError(CalibratorLoadError):
    """Refuse an artifact fitted for a different model or revision than the caller runs.

    A calibrator maps one model's scores; applied to another model's, it returns confident
    numbers that mean nothing.
    """


def _verified(directory: Path, manifest: Mapping[str, Any], filename: str) -> Path:
    expected = (manifest.get("files") or {}).get(filename)
    path = directory / filename
    if not expected:
        raise ArtifactIntegrityError(
            f"{directory / MANIFEST_FILE}: no sha256 recorded for {filename}; refusing to load it"
        )
    if not path.is_file():
        raise ArtifactIntegrityError(f"{path}: missing (the manifest lists it)")
    actual = sha256_file(path)
    if actual != expected:
        raise ArtifactIntegrityError(
            f"{path}: sha256 {actual[:16]}... does not match the manifest's {str(expected)[:16]}...; the file was changed after export"
        )
    return path


class LoadedCalibrator:
    """Apply a verified calibrator artifact to scores; ``.manifest`` says where it came from.

    Built by :func:`load_calibrator`, which has checked the files against the manifest; not
    meant to be constructed directly.

    Parameters
    ----------
    path : pathlib.Path
        The artifact directory.
    manifest : dict
        The parsed ``manifest.json``: source models, metrics, preprocessing, file hashes.
    spec : dict
        The parsed ``calibrator.json``.
    apply : callable
        Maps an (n,) or (n, k) float64 array to (n,) calibrated scores.
    sources : list of str
        Input column order for (n, k) calls.
    backend : {"json", "joblib"}
        Which file ``apply`` evaluates.

    Attributes
    ----------
    path, manifest, spec, sources, backend
        As passed.
    """

    def __init__(
        self, path: Path, manifest: dict[str, Any], spec: dict[str, Any], apply, sources: list[str], backend: str
    ):
        self.path = path
        self.manifest = manifest
        self.spec = spec
        self.sources = sources
        self.backend = backend
        self._apply = apply
        self._intervals = None

    def __call__(self, scores: Any) -> np.ndarray | float:
        """Calibrate (n,) scores, or fuse+calibrate an (n, k) array with columns ``self.sources``.

        Takes anything numpy can read as numbers (a list, a float32 array); a single score gives a
        float back. NaN or infinite scores raise ``ValueError``: no calibrator maps them to a
        meaningful value, and passing them through would hide a scorer failure downstream.

        Parameters
        ----------
        scores : array-like or float
            Local scores: shape (n,) (or (n, 1)) for a single-source artifact, (n, k) with the
            columns of ``sources`` for a fused one, or one number.

        Returns
        -------
        ndarray of shape (n,) or float
            Scores on the reference scale; a float for a single score.

        Raises
        ------
        ValueError
            When the scores are not numbers, contain NaN or infinity, have the wrong shape, or a
            single score is given to a fused artifact.

        Examples
        --------
        >>> cal = load_calibrator("artifacts/calibrators/demo")  # doctest: +SKIP
        >>> cal([0.1, 0.7]).shape, type(cal(0.5))  # doctest: +SKIP
        ((2,), <class 'float'>)
        """
        try:
            arr = np.asarray(scores, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"scores must be numbers: {exc}") from None
        scalar = arr.ndim == 0
        if scalar:
            if len(self.sources) != 1:
                raise ValueError(
                    f"a single score is ambiguous for {len(self.sources)} sources {self.sources}; pass an (n, k) array"
                )
            arr = arr.reshape(1)
        flat = arr.reshape(-1)
        # x.x is NaN/inf whenever an x is (one BLAS pass, faster than isfinite().all() on small
        # calls); it also overflows for |x| > 1e154, so the exact check decides
        if not math.isfinite(flat.dot(flat)) and not (finite := np.isfinite(arr)).all():
            where = np.argwhere(~finite)[0]
            raise ValueError(
                f"scores must be finite: {int((~finite).sum())} NaN/inf value(s), the first at index "
                f"{tuple(int(i) for i in where) if arr.ndim > 1 else int(where[0])}; fix or drop those "
                "pairs before calibrating"
            )
        out = self._apply(arr)
        return float(out[0]) if scalar else out

    def interval(self, scores: Any, coverage: float = 0.9) -> tuple[np.ndarray, np.ndarray] | tuple[float, float]:
        """Lower and upper bounds of the reference score for each score, at ``coverage``.

        Split-conformal intervals over whole queries (:mod:`pipeline.calibration.conformal`):
        for a new pair like the training pairs, the reference lies inside with probability at
        least ``coverage``; noisy regions of the score get wider intervals. The table
        (``intervals.json``) is checked against the manifest's sha256 before it is read.

        Parameters
        ----------
        scores : array-like or float
            As for calling the calibrator.
        coverage : float, default=0.9
            In (0, 1); a coverage between the stored ones (0.5, 0.8, 0.9, 0.95, 0.99) uses the
            next stored one up.

        Returns
        -------
        (ndarray, ndarray) or (float, float)
            Lower and upper bounds on the reference scale.

        Raises
        ------
        CalibratorLoadError
            When the artifact has no intervals (fitted before they existed, or exported without
            the held-out evaluation): one line saying to re-fit.
        ValueError
            For a coverage outside (0, 1) or above the largest stored, or bad scores.
        """
        table = self.interval_table()
        calibrated = self(scores)
        low, high = table(np.atleast_1d(calibrated), coverage)
        if np.ndim(calibrated) == 0:
            return float(low[0]), float(high[0])
        return low, high

    def interval_table(self) -> IntervalTable:
        """The artifact's per-score interval table, verified and read on first use.

        What :meth:`interval` applies, for callers that already hold calibrated scores (``serve``
        calibrates once and bounds the same scores) or need the stored coverages up front.

        Returns
        -------
        IntervalTable
            ``table(calibrated, coverage) -> (lower, upper)``; ``table.coverages`` the stored
            coverages, ``table.level(c)`` the one a request for ``c`` uses.

        Raises
        ------
        CalibratorLoadError
            When the artifact has no intervals: one line saying to re-fit.
        """
        if self._intervals is None:
            import json

            from pipeline.runtime.intervals import compile_intervals

            if INTERVALS_FILE not in (self.manifest.get("files") or {}):
                raise CalibratorLoadError(
                    f"{self.path}: no per-score intervals in this artifact (fitted before they existed, or exported "
                    "without the held-out evaluation); re-fit with `python -m pipeline fit`"
                )
            path = _verified(self.path, self.manifest, INTERVALS_FILE)
            self._intervals = compile_intervals(json.loads(path.read_text(encoding="utf-8")))
        return self._intervals

    def threshold(self, t: float) -> float:
        """The raw-score cut that reproduces the reference's keep/drop decision at ``t``.

        ``fit`` records, for each threshold of ``evaluate.thresholds`` on the reference scale, the
        cut on the raw score (the fused pre-calibration score for a fused artifact: the
        manifest's ``thresholds.applies_to`` says which) whose decisions ``raw >= cut`` agree most
        often with ``reference >= t``; the report gives that cut's held-out accuracy. A user who
        never applies the calibrator can still cut where the API would.

        Parameters
        ----------
        t : float
            A threshold on the reference scale, one of those the artifact was fitted with.

        Returns
        -------
        float
            The raw cut; ``-inf`` when keeping everything reproduces the decision best, ``inf``
            when keeping nothing does.

        Raises
        ------
        CalibratorLoadError
            When the artifact has no cut for ``t`` (or none at all: fitted before thresholds
            existed); the message lists those it has and says how to re-fit.
        """
        recorded = (self.manifest.get("thresholds") or {}).get("cuts") or []
        for entry in recorded:
            if abs(float(entry["reference"]) - float(t)) <= 1e-12 * max(1.0, abs(float(t))):
                if entry.get("raw") is not None:
                    return float(entry["raw"])
                return float("-inf") if entry.get("keeps") == "all" else float("inf")
        have = (
            ", ".join(f"{float(e['reference']):g}" for e in recorded) or "none (fitted before thresholds were recorded)"
        )
        raise CalibratorLoadError(
            f"{self.path}: no transferred threshold for t={float(t):g}; this artifact has: {have}; re-fit with "
            f"`python -m pipeline fit evaluate.thresholds=[...,{float(t):g}]`"
        )

    def preprocess(self, text: str) -> str:
        """Apply the text preprocessing the paired scores were collected with (same function).

        The calibrator is only valid for scores of text prepared the same way (normalisation,
        truncation) as the training pairs; the manifest records how.

        Parameters
        ----------
        text : str
            A query or document as the service receives it.

        Returns
        -------
        str
            The text as the scorer saw it during collection.
        """
        from pipeline.runtime.text import TextConfig, preprocess

        settings = self.manifest.get("preprocessing") or {}
        known = TextConfig.__dataclass_fields__
        return preprocess(text, TextConfig(**{k: v for k, v in settings.items() if k in known}))

    def __repr__(self) -> str:
        fam = self.spec.get("calibrator", {}).get("family")
        return f"LoadedCalibrator({str(self.path)!r}, family={fam!r}, sources={self.sources}, backend={self.backend!r})"


def _check_model(manifest: Mapping[str, Any], model: str | None, revision: str | None) -> None:
    sources = manifest.get("sources") or []
    if not sources:
        raise ModelMismatchError("the manifest records no source model; pass allow_mismatch=True to use it anyway")
    primary = sources[0]
    if model is not None and primary.get("model") != model:
        raise ModelMismatchError(
            f"artifact was fitted for model {primary.get('model')!r}, you declared {model!r}; "
            "re-fit for this model (python -m pipeline fit) or pass allow_mismatch=True"
        )
    if revision is not None and primary.get("revision") != revision:
        recorded = primary.get("revision")
        what = "records no revision" if recorded is None else f"was fitted for revision {recorded!r}"
        raise ModelMismatchError(
            f"artifact {what} of {primary.get('model')!r}, you declared revision {revision!r}; "
            "scores change between revisions: re-fit, or pass allow_mismatch=True"
        )


def load_calibrator(
    path: str | Path,
    *,
    model: str | None = None,
    revision: str | None = None,
    allow_mismatch: bool = False,
    use_joblib: bool = False,
) -> LoadedCalibrator:
    """Verify and load ``path`` (an artifact directory written by ``python -m pipeline fit``).

    Every file is checked against the sha256 the manifest records before it is read, so a
    corrupted or replaced file fails here, not as wrong scores in production.

    Parameters
    ----------
    path : str or pathlib.Path
        The artifact directory (``manifest.json``, ``calibrator.json``, optionally
        ``calibrator.joblib``).
    model, revision : str, optional
        The source model id / revision the caller runs; compared with the manifest's first source.
    allow_mismatch : bool, default=False
        Load even when the declared model or revision differs (the mismatch is not checked).
    use_joblib : bool, default=False
        Load ``calibrator.joblib`` (needs scikit-learn) instead of the pickle-free JSON spec; it
        is unpickled only after its hash matched, since unpickling can run code.

    Returns
    -------
    LoadedCalibrator
        Call it on scores.

    Raises
    ------
    CalibratorLoadError
        When the manifest is missing, the spec is invalid, or ``use_joblib`` lacks joblib.
    ArtifactIntegrityError
        When the manifest is not a JSON object, or a file is missing, unlisted or changed.
    ModelMismatchError
        When the declared model or revision differs from the artifact's (unless
        ``allow_mismatch``).

    Examples
    --------
    >>> from pipeline.inference import load_calibrator
    >>> cal = load_calibrator("artifacts/calibrators/demo", model="models/demo-reranker/v1")  # doctest: +SKIP
    >>> calibrated = cal(local_scores)  # doctest: +SKIP
    """
    import json  # here, not at import: the module's import cost is numpy's plus ~1 ms

    directory = Path(path)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise CalibratorLoadError(f"{manifest_path}: missing; {directory} is not a complete calibrator artifact")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArtifactIntegrityError(f"{manifest_path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArtifactIntegrityError(f"{manifest_path}: expected a JSON object")
    if not allow_mismatch and (model is not None or revision is not None):
        _check_model(manifest, model, revision)
    spec_path = _verified(directory, manifest, SPEC_FILE)
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        apply, sources = compile_spec(spec)
    except (ValueError, SpecError) as exc:
        raise CalibratorLoadError(f"{spec_path}: {exc}") from None
    if not use_joblib:
        return LoadedCalibrator(directory, manifest, spec, apply, sources, "json")
    joblib_path = _verified(directory, manifest, JOBLIB_FILE)
    try:
        import joblib  # only now: the file's hash matched the manifest
    except ModuleNotFoundError:
        raise CalibratorLoadError(
            "use_joblib=True needs joblib and scikit-learn: pip install "
            "'score-calibration-pipeline[fit]' (the default JSON path needs neither)"
        ) from None

    _alias_legacy_modules()
    estimator = joblib.load(joblib_path)

    def apply_joblib(scores: Any) -> np.ndarray:
        arr = score_shape(np.asarray(scores, dtype=np.float64), sources)  # as the JSON path, same words
        return estimator.predict(arr[:, None] if arr.ndim == 1 else arr)

    return LoadedCalibrator(directory, manifest, spec, apply_joblib, sources, "joblib")


def _alias_legacy_modules() -> None:
    """Let a joblib artifact written before the package layout unpickle: its classes are named by
    their old module paths (``pipeline.calibrators.PolynomialCalibrator``). Only called on the
    joblib path, after the file's hash matched, and only adds names no module owns."""
    for old, new in LEGACY_MODULES.items():
        if old not in sys.modules:
            sys.modules[old] = importlib.import_module(new)
