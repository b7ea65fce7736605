"""The public import path for production code: load an exported calibrator next to the model.

    from pipeline.inference import load_calibrator
    cal = load_calibrator("artifacts/calibrators/qwen3-4b", model="Qwen/Qwen3-Reranker-4B",
                          revision="<commit the service runs>")
    calibrated = cal(local_scores)

The code lives in :mod:`pipeline.runtime` (numpy and the standard library only); this module
keeps the path users import stable whatever the package layout.
"""

from pipeline.runtime.loader import (
    JOBLIB_FILE,
    MANIFEST_FILE,
    SPEC_FILE,
    ArtifactIntegrityError,
    CalibratorLoadError,
    LoadedCalibrator,
    ModelMismatchError,
    load_calibrator,
)

__all__ = [
    "ArtifactIntegrityError",
    "CalibratorLoadError",
    "LoadedCalibrator",
    "ModelMismatchError",
    "load_calibrator",
    "JOBLIB_FILE",
    "MANIFEST_FILE",
    "SPEC_FILE",
]
