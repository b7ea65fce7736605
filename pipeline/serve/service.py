"""The served model: a verified calibrator artifact and the local scorer(s) it was fitted on.

The artifact's manifest records each source's full scorer fingerprint (model, revision, dtype,
template, instruction, max_length, text preprocessing, ...). The service rebuilds each scorer
from it, so the scores it calibrates are computed exactly as the calibration's local column was,
and then compares the loaded scorer's own fingerprint with the recorded one. Any difference
(another revision of the weights, another dtype) means the calibrator does not apply: the service
is not ready and says which keys differ, unless ``allow_mismatch`` is set.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config.local import LocalScorerConfig
from pipeline.config.serve import ServeConfig
from pipeline.core.errors import PipelineError
from pipeline.runtime.loader import CalibratorLoadError, LoadedCalibrator, load_calibrator
from pipeline.runtime.text import TextConfig
from pipeline.scorers.base import QueryGroup, Scorer

#: fingerprint keys that never change a score's meaning (where it ran)
PLACEMENT_KEYS = {"device_type"}
#: fingerprint keys that are also LocalScorerConfig fields, copied when rebuilding a scorer
_REBUILT = (
    "kind",
    "model",
    "dtype",
    "max_length",
    "template",
    "instruction",
    "strip_texts",
    "strip_prompt",
    "attn_implementation",
    "activation",
    "pooling",
    "task",
    "dimensions",
    "normalize",
)


class ServeError(PipelineError):
    """The artifact cannot be served as configured (the message names the key to change)."""


def scorer_config(source: dict[str, Any], cfg: ServeConfig) -> tuple[LocalScorerConfig, TextConfig]:
    """The local config and text preprocessing that reproduce a manifest source's column."""
    fp = source.get("fingerprint")
    if source.get("kind") != "local" or not isinstance(fp, dict):
        raise ServeError(
            f"source {source.get('column')!r} is not a local scorer with a recorded fingerprint; "
            "serve needs every source of the artifact to be a local model"
        )
    if isinstance(fp.get("engine"), dict):
        raise ServeError(
            f"source {source.get('column')!r} was scored by an HTTP engine ({fp['engine'].get('dialect')}); serve runs "
            "the model in this process, which that calibration was not fitted on. Serve it with the engine and "
            "pipeline.inference, or re-collect that column in-process (the same local.*, local.engine.base_url=null) "
            "and re-fit"
        )
    known = {f.name for f in fields(LocalScorerConfig)}
    values = {k: fp[k] for k in _REBUILT if k in fp and k in known}
    local = LocalScorerConfig(**values)
    # a hub commit pins what gets downloaded; a local directory is identified by its files' hash,
    # compared after loading (a changed directory is reported as a mismatch, not a load failure)
    revision = fp.get("revision") if fp.get("revision_source") == "hub-commit" else None
    local = replace(local, revision=revision, device=cfg.device)
    if cfg.model is not None:
        local = replace(local, model=cfg.model, revision=cfg.revision)
    elif cfg.revision is not None:
        local = replace(local, revision=cfg.revision)
    if cfg.batch_size is not None:
        local = replace(local, batch_size=cfg.batch_size)
    text_known = {f.name for f in fields(TextConfig)}
    text = TextConfig(**{k: v for k, v in (fp.get("text") or {}).items() if k in text_known})
    return local, text


def fingerprint_differences(fitted: dict[str, Any], serving: dict[str, Any]) -> list[str]:
    """``key: fitted X, serving Y`` for every key that changes scores. A local directory is
    identified by its files' hash, so its path may differ (the artifact was fitted elsewhere)."""
    ignore = set(PLACEMENT_KEYS)
    if fitted.get("revision_source") == serving.get("revision_source") == "sha256-files":
        ignore.add("model")
    out = []
    for key in sorted((set(fitted) | set(serving)) - ignore):
        if fitted.get(key) != serving.get(key):
            out.append(f"{key}: fitted {fitted.get(key)!r}, serving {serving.get(key)!r}")
    return out


@dataclass
class Readiness:
    """``loading`` -> ``ready`` | ``not_ready`` (the reason says why); what ``/ready`` returns."""

    state: str = "loading"
    reason: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return self.state == "ready"


class CalibratedModel:
    """Local scorer(s) + calibrator: query groups in, calibrated scores out (one model call per
    scorer for a whole batch of groups, one calibrator call)."""

    def __init__(self, calibrator: LoadedCalibrator, scorers: Sequence[Scorer], served_model: str) -> None:
        self.calibrator = calibrator
        self.scorers = list(scorers)
        self.served_model = served_model
        self._lock = threading.Lock()  # the model runs one call at a time (batcher, embeddings)
        self.embedder = next((s for s in self.scorers if hasattr(s, "embed")), None)
        self.tokenizer = getattr(self.scorers[0], "tokenizer", None)
        target = calibrator.manifest.get("target") or {}
        #: the instruction the API scores were collected with (null: the API's default)
        self.instruction = target.get("instruction")

    def raw_scores(self, groups: Sequence[QueryGroup]) -> np.ndarray:
        """The local scores, concatenated over groups: (n,) or (n, k) in the artifact's source order."""
        with self._lock:
            columns = [np.concatenate(s.score(groups)) if groups else np.empty(0) for s in self.scorers]
        return columns[0] if len(columns) == 1 else np.column_stack(columns)

    def score_groups(self, groups: Sequence[QueryGroup]) -> list[np.ndarray]:
        calibrated = np.asarray(self.calibrator(self.raw_scores(groups)), dtype=np.float64)
        bounds = np.cumsum([0] + [len(g.documents) for g in groups])
        return [calibrated[a:b] for a, b in zip(bounds[:-1], bounds[1:])]

    @property
    def chunks(self) -> bool:
        """Whether requests' ``max_chunks_per_doc``/``overlap_tokens`` apply: SiliconFlow honours
        them for a few classic cross-encoders only (``pipeline.wire.CHUNKING_MODELS``)."""
        from pipeline.wire import CHUNKING_MODELS

        return (
            self.served_model in CHUNKING_MODELS and len(self.scorers) == 1 and hasattr(self.scorers[0], "score_long")
        )

    def score_chunked(self, group: QueryGroup, max_chunks: int | None, overlap: int | None) -> np.ndarray:
        """Calibrated scores with each document scored by its best chunk. The calibrator is monotone,
        so calibrating the best chunk's score is the best calibrated chunk score: a chunking other
        than the calibration's keeps scores on the reference scale. Unset fields: the local
        config's chunking (as collected), else SiliconFlow's overlap of 80 and no chunk limit."""
        scorer = self.scorers[0]
        cfg = scorer.cfg
        max_chunks = max_chunks or cfg.max_chunks_per_doc or 1024
        overlap = cfg.overlap_tokens if overlap is None else overlap
        with self._lock:
            (raw,) = scorer.score_long([group], max_chunks, overlap)
        return np.asarray(self.calibrator(raw), dtype=np.float64)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.embedder is None:
            raise ServeError("this model is not an embedding model")
        with self._lock:
            return self.embedder.embed(list(texts), is_query=False)

    @property
    def dimensions(self) -> int | None:
        return getattr(self.embedder, "dimensions", None)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model's tokenizer splits it (no special tokens); without a
        tokenizer, whitespace words. What usage reports are computed from."""
        if not texts:
            return []
        if self.tokenizer is None:
            return [len(t.split()) for t in texts]
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def close(self) -> None:
        for scorer in self.scorers:
            scorer.close()


def artifact_path(cfg: Any) -> Path:
    """``serve.artifact``, else ``export.root/<artifact name>`` of the composed run config."""
    if cfg.serve.artifact:
        return Path(cfg.serve.artifact)
    from pipeline.config.fit import artifact_name

    return Path(cfg.export.root) / artifact_name(cfg)


def load_model(cfg: ServeConfig, artifact: Path) -> tuple[CalibratedModel, Readiness]:
    """Verify the artifact, build its scorer(s), compare fingerprints. Raises ServeError (or the
    scorer's load error) when nothing can be served; returns a not-ready state on a mismatch."""
    from pipeline.scorers import build_scorer

    try:
        calibrator = load_calibrator(artifact)
    except CalibratorLoadError as exc:
        raise ServeError(f"serve.artifact={artifact}: {exc}") from None
    sources = calibrator.manifest.get("sources") or []
    if len(sources) != len(calibrator.sources):
        raise ServeError(
            f"{artifact}: the manifest records {len(sources)} sources, the calibrator takes {len(calibrator.sources)}"
        )
    if len(sources) > 1 and (cfg.model is not None or cfg.revision is not None):
        raise ServeError(
            f"serve.model/serve.revision override one model, but {artifact} fuses {len(sources)} "
            f"sources {calibrator.sources}"
        )
    target = calibrator.manifest.get("target") or {}
    served_model = cfg.served_model or target.get("model") or calibrator.manifest.get("name") or artifact.name
    scorers: list[Scorer] = []
    problems: list[str] = []
    try:
        for source in sources:
            local, text = scorer_config(source, cfg)
            scorer = build_scorer(local, text)
            scorers.append(scorer)
            differences = fingerprint_differences(source["fingerprint"], scorer.fingerprint())
            problems += [f"{source.get('column')}: {d}" for d in differences]
    except BaseException:
        for scorer in scorers:
            scorer.close()
        raise
    model = CalibratedModel(calibrator, scorers, served_model)
    if not problems:
        return model, Readiness("ready")
    summary = (
        "the loaded model differs from the one the calibrator was fitted on ("
        + "; ".join(problems)
        + "); re-fit for this model (python -m pipeline collect + fit) or serve the one it was fitted on"
    )
    if cfg.allow_mismatch:
        return model, Readiness("ready", warnings=(summary,))
    return model, Readiness("not_ready", reason=summary)


__all__ = [
    "CalibratedModel",
    "Readiness",
    "ServeError",
    "artifact_path",
    "fingerprint_differences",
    "load_model",
    "scorer_config",
]
