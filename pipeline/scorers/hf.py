"""What the transformers backends share: config, text preprocessing, device, fingerprint, batching loop.

A backend implements three steps, in the spirit of infinity's transformer backends:
``_encode`` (pairs to token-id rows, CPU), ``_forward`` (a padded batch to one float per row, on
the device, under ``torch.inference_mode``) and, through :meth:`score`, the scatter back into
the caller's groups and order. A backend that does not pad (the packed Qwen3 reranker) sets
``packed`` and replaces :meth:`_batch_runner` instead of implementing ``_forward``.
"""

from __future__ import annotations

from pipeline.core.extras import require

require("local scorers (pipeline.scorers)", "local")

import gc
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from pipeline.config.local import LocalScorerConfig, coerce
from pipeline.runtime.text import TextConfig, describe
from pipeline.scorers.base import ProgressCallback, QueryGroup, Scorer
from pipeline.scorers.batching import pad, plan_batches
from pipeline.scorers.cpu_memory import reuse_freed_memory
from pipeline.scorers.loading import ModelSource, resolve_device, resolve_source
from pipeline.scorers.texts import scorer_text, strip_prompt_mark

#: bump when a backend's computation changes in a way that changes scores
SCORER_VERSION = 1


def validate_common(cfg: LocalScorerConfig) -> None:
    """Config errors that can be reported before anything is loaded; messages name the key."""
    if cfg.batch_size < 1:
        raise ValueError(f"local.batch_size must be >= 1, got {cfg.batch_size}")
    if cfg.max_batch_tokens < 1:
        raise ValueError(f"local.max_batch_tokens must be >= 1, got {cfg.max_batch_tokens}")
    if cfg.max_length < 2:
        raise ValueError(f"local.max_length must be >= 2, got {cfg.max_length}")


class TransformersScorer(Scorer):
    """Base of the transformers backends (not itself a backend)."""

    kind: str = ""
    #: which side the backend pads on; decoder-only models read the last position, so "left"
    padding_side: str = "left"
    #: batches are packed without padding: the token budget counts real tokens
    packed: bool = False

    def __init__(self, cfg: LocalScorerConfig, text_cfg: TextConfig | None = None) -> None:
        cfg = coerce(cfg)
        validate_common(cfg)
        self.cfg = cfg
        self.text_cfg = text_cfg or TextConfig()
        self.device = resolve_device(cfg.device)
        if cfg.reuse_cpu_memory and self.device.type == "cpu":
            reuse_freed_memory()
        self.source: ModelSource = resolve_source(cfg)
        self.model: Any = None
        self.tokenizer: Any = None

    # -- text ---------------------------------------------------------------------------------
    def _prep(self, text: str) -> str:
        return scorer_text(text, self.text_cfg, self.cfg.strip_texts)

    # -- backend steps ------------------------------------------------------------------------
    @abstractmethod
    def _encode(self, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
        """Token ids of each (query, document) pair, text already preprocessed."""

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One float per row of a padded batch (on the device)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither _forward nor _batch_runner")

    def _batch_runner(self, rows: Sequence[Sequence[int]]) -> Callable[[list[Sequence[int]]], torch.Tensor]:
        """What scores one batch of ``rows`` (called once per scoring call, under inference mode):
        by default, pad the batch and call :meth:`_forward`."""
        pad_id = self._pad_id()

        def run(batch: list[Sequence[int]]) -> torch.Tensor:
            ids, mask = pad(batch, pad_id, self.padding_side)
            return self._forward(ids.to(self.device), mask.to(self.device))

        return run

    def _pad_id(self) -> int:
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = self.tokenizer.eos_token_id
        return 0 if pad_id is None else int(pad_id)

    # -- public -------------------------------------------------------------------------------
    def score(self, groups: Sequence[QueryGroup], progress: ProgressCallback | None = None) -> list[np.ndarray]:
        pairs = []
        for g in groups:
            query = self._prep(g.query)
            pairs.extend((query, self._prep(d)) for d in g.documents)
        flat = self.score_pairs(pairs, progress)
        out, start = [], 0
        for g in groups:
            out.append(flat[start : start + len(g.documents)])
            start += len(g.documents)
        return out

    def score_pairs(self, pairs: Sequence[tuple[str, str]], progress: ProgressCallback | None = None) -> np.ndarray:
        """Scores of already-preprocessed pairs, in order (float64)."""
        if not pairs:
            return np.empty(0, dtype=np.float64)
        return self._score_rows(self._encode(pairs), progress)

    def _score_rows(self, rows: Sequence[Sequence[int]], progress: ProgressCallback | None = None) -> np.ndarray:
        """One float64 per token row, in order, batched by length (never changes a value)."""
        scores = np.empty(len(rows), dtype=np.float64)
        lengths = [len(r) for r in rows]
        batches = plan_batches(lengths, self.cfg.batch_size, self.cfg.max_batch_tokens, packed=self.packed)
        with torch.inference_mode():
            run = self._batch_runner(rows)
            for batch in batches:
                values = run([rows[i] for i in batch])
                scores[batch] = values.float().cpu().numpy().astype(np.float64)
                if progress is not None:
                    progress(len(batch))
        return scores

    def fingerprint(self) -> dict[str, Any]:
        fp = {
            "kind": self.kind,
            "scorer_version": SCORER_VERSION,
            "model": self.cfg.model,
            "revision": self.source.revision,
            "revision_source": self.source.revision_source,
            "dtype": self.cfg.dtype.value,
            "device_type": self.device.type,
            "max_length": self.cfg.max_length,
            "score_type": self.score_type,
            "text": describe(self.text_cfg),
        }
        if self.cfg.attn_implementation:
            fp["attn_implementation"] = self.cfg.attn_implementation
        if self.cfg.strip_texts:  # only when set: older fingerprints stay valid
            fp["strip_texts"] = True
        if self.cfg.strip_prompt:
            fp["strip_prompt"] = strip_prompt_mark(getattr(self.cfg.kind, "value", self.cfg.kind), self.cfg.template)
        fp.update(self._fingerprint_extra())
        return fp

    def _fingerprint_extra(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        """Release the model (and the accelerator memory it holds)."""
        self.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
