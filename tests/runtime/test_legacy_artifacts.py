"""Artifacts written before the package layout (#23) still load, both ways: the pickle-free spec,
and the joblib file, whose pickle names its classes by their old module paths
(``pipeline.calibrators``, ``pipeline.fusion``, ``pipeline.fusion_scale``). The two artifacts under
tests/support/legacy_artifacts/ were written by that release, with ``probe.npy`` holding inputs
and the predictions it made for them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.inference import load_calibrator
from pipeline.runtime.loader import LEGACY_MODULES

LEGACY = Path(__file__).resolve().parents[1] / "support" / "legacy_artifacts"


@pytest.mark.parametrize("name, k", [("single", 1), ("fused", 2)])
@pytest.mark.parametrize("use_joblib", [False, True])
def test_an_artifact_from_before_the_layout_predicts_what_it_did(name, k, use_joblib, monkeypatch):
    for old in LEGACY_MODULES:  # as in a fresh process: an earlier joblib load in this one aliased them
        monkeypatch.delitem(sys.modules, old, raising=False)
    probe = np.load(LEGACY / name / "probe.npy")
    x, expected = probe[:, :k], probe[:, k]
    cal = load_calibrator(LEGACY / name, use_joblib=use_joblib)
    np.testing.assert_allclose(cal(x if k > 1 else x[:, 0]), expected, rtol=0, atol=1e-12)


def test_the_old_module_names_are_only_aliased_on_the_joblib_path():
    """Loading the pickle-free spec (the default) adds no module aliases; the joblib path does,
    and only after the hash check."""
    code = (
        "import sys; from pipeline.inference import load_calibrator; "
        f"load_calibrator({str(LEGACY / 'fused')!r}); assert 'pipeline.fusion' not in sys.modules; "
        f"load_calibrator({str(LEGACY / 'fused')!r}, use_joblib=True); assert 'pipeline.fusion' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_an_artifact_with_non_ascii_text_loads_under_a_non_utf8_locale(tmp_path):
    """Export writes UTF-8 (ensure_ascii=False); the loader must read UTF-8 whatever the locale
    (mutation testing found encoding="utf-8" unguarded: under LC_ALL=C without UTF-8 mode the
    default encoding is ASCII)."""
    import os

    from pipeline.calibration.calibrators import make_calibrator
    from pipeline.calibration.fusion import ScoreCalibrationModel
    from pipeline.fit.artifacts import write_artifact

    x = np.linspace(0, 1, 30)
    model = ScoreCalibrationModel(make_calibrator("poly"), None, ["s"]).fit(x[:, None], x**2)
    path = write_artifact(tmp_path, "cal", model, {"sources": [{"column": "s", "model": "模型/rérank"}]})
    env = {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    code = (
        "import locale, sys; from pipeline.inference import load_calibrator; "
        "assert locale.getpreferredencoding(False).lower() in ('ascii', 'ansi_x3.4-1968'), locale.getpreferredencoding(False); "
        f"cal = load_calibrator({str(path)!r}); print(cal.manifest['sources'][0]['model'].encode('utf-8').hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert bytes.fromhex(out.strip()).decode("utf-8") == "模型/rérank"
