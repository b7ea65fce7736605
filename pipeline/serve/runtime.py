"""The service's lifecycle: load in the background, report readiness, batch, shut down.

Loading a model takes from seconds to minutes; the HTTP server answers ``/health`` and ``/ready``
from the start, so an orchestrator sees ``loading`` and then ``ready`` or ``not_ready`` with its
reason, instead of a port that does not answer or a process that exits.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from pipeline.config.serve import ServeConfig
from pipeline.serve.batcher import DynamicBatcher
from pipeline.serve.service import CalibratedModel, Readiness, load_model


class ServeRuntime:
    """What the routes share: the config, the readiness, the model and its batcher."""

    def __init__(
        self, cfg: ServeConfig, artifact: Path, *, api_key: str | None = None, model_loader=load_model
    ) -> None:
        self.cfg = cfg
        self.artifact = Path(artifact)
        self.api_key = api_key
        self.readiness = Readiness("loading")
        self.model: CalibratedModel | None = None
        self.batcher: DynamicBatcher | None = None
        self._model_loader = model_loader
        self._thread: threading.Thread | None = None

    def start_loading(self, *, background: bool = True) -> ServeRuntime:
        if background:
            self._thread = threading.Thread(target=self.load, name="serve-loader", daemon=True)
            self._thread.start()
        else:
            self.load()
        return self

    def wait_loaded(self, timeout_s: float | None = None) -> Readiness:
        if self._thread is not None:
            self._thread.join(timeout_s)
        return self.readiness

    def load(self) -> None:
        try:
            model, readiness = self._model_loader(self.cfg, self.artifact)
        except Exception as exc:  # a missing model or a tampered artifact: not ready, and why
            self.readiness = Readiness("not_ready", reason=f"{type(exc).__name__}: {exc}")
            print(f"serve: not ready: {self.readiness.reason}", file=sys.stderr, flush=True)
            return
        self.model = model
        self.batcher = DynamicBatcher(
            model.score_groups, max_pairs=self.cfg.max_batch_pairs, wait_s=self.cfg.batch_wait_ms / 1000.0
        )
        self.readiness = readiness
        if readiness.ready:
            for warning in readiness.warnings:
                print(f"serve: warning: {warning}", file=sys.stderr, flush=True)
            print(f"serve: ready: {model.served_model} ({self.artifact})", file=sys.stderr, flush=True)
        else:
            print(f"serve: not ready: {readiness.reason}", file=sys.stderr, flush=True)

    @property
    def served_model(self) -> str | None:
        return self.model.served_model if self.model is not None else self.cfg.served_model

    def close(self) -> None:
        self.wait_loaded(timeout_s=600)
        if self.batcher is not None:
            self.batcher.close()
        if self.model is not None:
            self.model.close()
        self.batcher = self.model = None
