"""Export -> load round trip, integrity and model checks, and the inference module's imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.calibration.calibrators import make_calibrator
from pipeline.calibration.fusion import NonNegativeFusion, ScoreCalibrationModel
from pipeline.fit.artifacts import write_artifact
from pipeline.inference import ArtifactIntegrityError, CalibratorLoadError, ModelMismatchError, load_calibrator
from pipeline.runtime.loader import ArtifactError

MANIFEST = {
    "sources": [{"column": "local", "model": "Qwen/Qwen3-Reranker-4B", "revision": "abc123"}],
    "preprocessing": {"nfkc": True},
}


def _data(seed=0, k=1, n_queries=30):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_queries), 6)
    r = rng.normal(size=groups.size)
    X = np.column_stack([1 / (1 + np.exp(-(r + rng.normal(0, 0.3, r.size)))) for _ in range(k)])
    y = 1 / (1 + np.exp(-2 * r))
    return X, y, groups


def _model(family, k=1):
    X, y, groups = _data(k=k)
    fusion = NonNegativeFusion() if k > 1 else None
    sources = ["local", "embed", "bm25"][:k]
    return ScoreCalibrationModel(make_calibrator(family), fusion, sources).fit(X, y, groups=groups), X


@pytest.mark.parametrize("family", ["poly", "isotonic", "sigmoid", "identity", "auto"])
@pytest.mark.parametrize("k", [1, 3])
def test_round_trip_json_and_joblib_agree_with_the_fitted_model(tmp_path, family, k):
    model, X = _model(family, k)
    path = write_artifact(tmp_path, "cal", model, MANIFEST)
    grid = np.random.default_rng(9).uniform(-0.5, 1.5, size=(500, k))
    expected = model.predict(grid)
    by_json = load_calibrator(path)
    by_joblib = load_calibrator(path, use_joblib=True)
    assert by_json.backend == "json" and by_joblib.backend == "joblib"
    scores = grid[:, 0] if k == 1 else grid
    np.testing.assert_allclose(by_json(scores), expected, atol=1e-9, rtol=0)
    np.testing.assert_allclose(by_joblib(scores), expected, atol=1e-9, rtol=0)
    assert by_json.sources == model.sources_
    assert by_json.manifest["sources"][0]["model"] == "Qwen/Qwen3-Reranker-4B"


def _documented_formula(spec: dict, X: np.ndarray) -> np.ndarray:
    """calibrator.json evaluated from its documented meaning, written out plainly here (closed
    forms, no code shared with pipeline/runtime/spec.py): the fused score, then the calibrator."""

    def logit(x, eps):
        p = np.clip(x, eps, 1 - eps)
        return np.log(p / (1 - p))

    fusion = spec["fusion"]
    if fusion is None:
        z = X[:, 0]
    else:
        z = np.zeros(X.shape[0])
        for j in range(X.shape[1]):
            x = X[:, j]
            m = (fusion.get("maps") or [{"map": "identity"}] * X.shape[1])[j]
            x = {
                "identity": lambda: x,
                "logit": lambda: logit(x, m.get("eps")),
                "knots": lambda: np.interp(x, m.get("x"), m.get("y")),
            }[m["map"]]()
            z += fusion["weights"][j] * (x - fusion["mean"][j]) / fusion["scale"][j]
    cal = spec["calibrator"]
    if cal["family"] == "identity":
        return z
    y_lo, y_hi = cal["y_range"]
    if cal["family"] == "poly":
        lo, hi = cal["x_range"]
        t = (np.clip(z, lo, hi) - lo) / (hi - lo)
        return np.clip(sum(c * t**i for i, c in enumerate(cal["coef"])), y_lo, y_hi)
    if cal["family"] == "isotonic":
        return np.clip(np.interp(z, cal["x"], cal["y"]), y_lo, y_hi)
    u = logit(z, cal["eps"]) if cal["input"] == "logit" else z
    return y_lo + (y_hi - y_lo) / (1 + np.exp(-(cal["a"] * u + cal["b"])))


@pytest.mark.parametrize("family", ["poly", "isotonic", "sigmoid", "identity"])
@pytest.mark.parametrize("k", [1, 3])
def test_an_artifact_computes_its_documented_formula(tmp_path, family, k):
    """The round trip above compares the spec with model.predict, which runs the same spec.py
    arithmetic; this pins the maths itself against the formula each field is documented to mean."""
    model, _ = _model(family, k)
    path = write_artifact(tmp_path, "cal", model, MANIFEST)
    spec = json.loads((path / "calibrator.json").read_text())
    assert spec["calibrator"]["family"] == family
    grid = np.random.default_rng(9).uniform(-0.5, 1.5, size=(500, k))
    got = load_calibrator(path)(grid[:, 0] if k == 1 else grid)
    np.testing.assert_allclose(got, _documented_formula(spec, grid), atol=1e-9, rtol=0)


def test_wrong_input_shape_is_a_clear_error(tmp_path):
    model, _ = _model("poly", 3)
    cal = load_calibrator(write_artifact(tmp_path, "cal", model, MANIFEST))
    with pytest.raises(ValueError, match=r"\(n, 3\) array with columns \['local', 'embed', 'bm25'\]"):
        cal(np.ones(5))


@pytest.fixture
def artifact(tmp_path) -> Path:
    model, _ = _model("poly")
    return write_artifact(tmp_path, "cal", model, MANIFEST)


@pytest.mark.parametrize("filename", ["calibrator.json", "calibrator.joblib"])
def test_a_changed_byte_is_refused(artifact, filename):
    path = artifact / filename
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="does not match the manifest"):
        load_calibrator(artifact, use_joblib=filename.endswith("joblib"))


def test_tampered_joblib_is_never_unpickled(artifact, monkeypatch):
    (artifact / "calibrator.joblib").write_bytes(b"not a pickle")
    import joblib

    monkeypatch.setattr(joblib, "load", lambda *a, **k: pytest.fail("joblib.load called on an unverified file"))
    with pytest.raises(ArtifactIntegrityError):
        load_calibrator(artifact, use_joblib=True)


@pytest.mark.parametrize("filename", ["calibrator.json", "manifest.json"])
def test_missing_file_is_refused(artifact, filename):
    (artifact / filename).unlink()
    with pytest.raises(CalibratorLoadError, match="missing"):
        load_calibrator(artifact)


@pytest.mark.parametrize("filename", ["calibrator.json", "calibrator.joblib"])
def test_a_file_the_manifest_records_no_sha256_for_is_refused(artifact, filename):
    manifest = json.loads((artifact / "manifest.json").read_text())
    del manifest["files"][filename]
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match=f"no sha256 recorded for {filename}"):
        load_calibrator(artifact, use_joblib=filename.endswith("joblib"))


def test_manifest_hash_mismatch_is_refused(artifact):
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["files"]["calibrator.json"] = "0" * 64
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match="does not match"):
        load_calibrator(artifact)


def test_a_spec_that_would_reverse_order_is_refused_even_with_matching_hash(artifact):
    from pipeline.core.files import atomic_write_json, sha256_file

    spec = json.loads((artifact / "calibrator.json").read_text())
    spec["calibrator"] = {"family": "sigmoid", "input": "identity", "a": -1.0, "b": 0.0, "y_range": [0, 1]}
    atomic_write_json(artifact / "calibrator.json", spec)
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["files"]["calibrator.json"] = sha256_file(artifact / "calibrator.json")
    atomic_write_json(artifact / "manifest.json", manifest)
    with pytest.raises(CalibratorLoadError, match="must be >= 0"):
        load_calibrator(artifact)


def test_model_and_revision_mismatch_refused_unless_overridden(artifact):
    assert load_calibrator(artifact, model="Qwen/Qwen3-Reranker-4B", revision="abc123")
    with pytest.raises(
        ModelMismatchError, match="fitted for model 'Qwen/Qwen3-Reranker-4B', you declared 'Qwen/Qwen3-Reranker-8B'"
    ):
        load_calibrator(artifact, model="Qwen/Qwen3-Reranker-8B")
    with pytest.raises(ModelMismatchError, match="revision 'abc123'.*you declared revision 'def456'"):
        load_calibrator(artifact, revision="def456")
    assert load_calibrator(artifact, model="Qwen/Qwen3-Reranker-8B", allow_mismatch=True)


def test_crash_while_writing_leaves_the_previous_artifact_loadable(tmp_path, monkeypatch):
    model, X = _model("poly")
    path = write_artifact(tmp_path, "cal", model, MANIFEST)
    before = load_calibrator(path)(X[:, 0])
    other, _ = _model("isotonic")
    import joblib

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(joblib, "dump", crash)
    with pytest.raises(KeyboardInterrupt):
        write_artifact(tmp_path, "cal", other, MANIFEST)
    np.testing.assert_array_equal(load_calibrator(path)(X[:, 0]), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cal"]  # no staging leftovers


def test_crash_on_first_export_leaves_nothing_that_loads(tmp_path, monkeypatch):
    model, _ = _model("poly")
    import pipeline.fit.artifacts as artifacts

    monkeypatch.setattr(artifacts, "_swap_into_place", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_artifact(tmp_path, "cal", model, MANIFEST)
    assert not (tmp_path / "cal").exists()


def test_bad_artifact_names_rejected(tmp_path):
    model, _ = _model("identity")
    for name in ["../escape", ".hidden", "a/b", ""]:
        with pytest.raises(ArtifactError, match=r"artifact name .* must match .*\(letters, digits, \. _ -\)"):
            write_artifact(tmp_path, name, model, MANIFEST)
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_preprocess_uses_manifest_settings(artifact):
    from pipeline.runtime.text import TextConfig, preprocess

    cal = load_calibrator(artifact)  # manifest: {"nfkc": true}
    text = "ＡＢＣ１２３ “quoted”"
    assert cal.preprocess(text) == "ABC123 “quoted”"  # NFKC folds full-width forms, not quotes
    assert cal.preprocess(text) == preprocess(text, TextConfig(nfkc=True))


def test_importing_inference_pulls_no_heavy_library():
    code = (
        "import sys, pipeline.inference as m; "
        "heavy = [x for x in ('torch', 'transformers', 'sklearn', 'scipy', 'hydra', 'joblib', 'pandas') if x in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# -- what mutation testing found unguarded (make mutate, pipeline/runtime/loader.py) -----------------
# A user acts on these messages: each names the file or the fix, so each is pinned.


def test_a_manifest_without_sources_names_the_way_out(artifact):
    manifest = json.loads((artifact / "manifest.json").read_text())
    manifest["sources"] = []
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelMismatchError) as info:
        load_calibrator(artifact, model="Qwen/Qwen3-Reranker-4B")
    assert str(info.value) == "the manifest records no source model; pass allow_mismatch=True to use it anyway"


def test_mismatch_messages_name_what_was_fitted_and_the_way_out(artifact):
    with pytest.raises(ModelMismatchError) as model:
        load_calibrator(artifact, model="other/model")
    assert str(model.value) == (
        "artifact was fitted for model 'Qwen/Qwen3-Reranker-4B', you declared 'other/model'; "
        "re-fit for this model (python -m pipeline fit) or pass allow_mismatch=True"
    )
    with pytest.raises(ModelMismatchError) as revision:
        load_calibrator(artifact, revision="def456")
    assert str(revision.value) == (
        "artifact was fitted for revision 'abc123' of 'Qwen/Qwen3-Reranker-4B', you declared "
        "revision 'def456'; scores change between revisions: re-fit, or pass allow_mismatch=True"
    )
    manifest = json.loads((artifact / "manifest.json").read_text())
    del manifest["sources"][0]["revision"]
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ModelMismatchError, match="^artifact records no revision of 'Qwen/Qwen3-Reranker-4B', you declared"
    ):
        load_calibrator(artifact, revision="def456")


def test_a_hash_mismatch_shows_both_hashes_first_16_characters(artifact):
    from pipeline.core.files import sha256_file

    manifest = json.loads((artifact / "manifest.json").read_text())
    recorded = "0123456789abcdef" + "f" * 48
    manifest["files"]["calibrator.json"] = recorded
    (artifact / "manifest.json").write_text(json.dumps(manifest))
    actual = sha256_file(artifact / "calibrator.json")
    with pytest.raises(ArtifactIntegrityError) as info:
        load_calibrator(artifact)
    assert str(info.value) == (
        f"{artifact / 'calibrator.json'}: sha256 {actual[:16]}... does not match the manifest's "
        "0123456789abcdef...; the file was changed after export"
    )


@pytest.mark.parametrize("content, message", [("{not json", "not valid JSON ("), ("[1, 2]", "expected a JSON object")])
def test_a_manifest_that_is_not_a_json_object_names_the_file(artifact, content, message):
    (artifact / "manifest.json").write_text(content)
    with pytest.raises(ArtifactIntegrityError) as info:
        load_calibrator(artifact)
    assert str(info.value).startswith(f"{artifact / 'manifest.json'}: {message}")


def test_joblib_without_scikit_learn_says_what_to_install(artifact, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_joblib(name, *args, **kwargs):
        if name == "joblib":
            raise ModuleNotFoundError("No module named 'joblib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_joblib)
    with pytest.raises(CalibratorLoadError) as info:
        load_calibrator(artifact, use_joblib=True)
    assert str(info.value) == (
        "use_joblib=True needs joblib and scikit-learn: pip install "
        "'score-calibration-pipeline[fit]' (the default JSON path needs neither)"
    )


@pytest.mark.parametrize("backend", ["json", "joblib"])
def test_a_loaded_calibrator_says_what_it_is(artifact, backend):
    cal = load_calibrator(artifact, use_joblib=backend == "joblib")
    assert cal.path == artifact and cal.backend == backend and cal.sources == ["local"]
    assert cal.spec == json.loads((artifact / "calibrator.json").read_text())
    assert cal.manifest["sources"][0]["model"] == "Qwen/Qwen3-Reranker-4B"
    assert repr(cal) == f"LoadedCalibrator({str(artifact)!r}, family='poly', sources=['local'], backend={backend!r})"


@pytest.mark.parametrize("backend", ["json", "joblib"])
def test_the_wrong_shape_is_refused_by_both_backends_in_the_same_words(tmp_path, backend):
    one = load_calibrator(write_artifact(tmp_path, "one", _model("poly")[0], MANIFEST), use_joblib=backend == "joblib")
    three = load_calibrator(
        write_artifact(tmp_path, "three", _model("poly", 3)[0], MANIFEST), use_joblib=backend == "joblib"
    )
    with pytest.raises(
        ValueError,
        match=r"expected an \(n, 3\) array with columns \['local', 'embed', 'bm25'\], got "
        r"shape \(4,\)",
    ):
        three(np.zeros(4))
    with pytest.raises(ValueError, match=r"expected an \(n, 3\) array with columns .*, got shape \(4, 2\)"):
        three(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"expected a 1-D array of scores, got shape \(4, 2\)"):
        one(np.zeros((4, 2)))
    with pytest.raises(
        ValueError,
        match=r"a single score is ambiguous for 3 sources \['local', 'embed', 'bm25'\]; "
        r"pass an \(n, k\) array",
    ):
        three(0.5)
    with pytest.raises(ValueError, match="the first at index 2; fix or drop those pairs before calibrating"):
        one([0.1, 0.2, float("nan")])
