"""The small contract every local scorer backend implements.

``score(groups)`` takes (query, documents) groups and returns one float64 array per group, in
document order. ``fingerprint()`` is a stable dict of everything that changes scores (model id,
resolved revision, dtype, device type, template, instruction, max_length, preprocessing); its
hash keys the score cache and is written into manifests.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class QueryGroup:
    query: str
    documents: Sequence[str]


ProgressCallback = Callable[[int], None]  # called with the number of pairs just scored


class Scorer(ABC):
    #: what a score means: "probability", "logit" or "cosine" (recorded in table metadata)
    score_type: str = "probability"

    @abstractmethod
    def score(self, groups: Sequence[QueryGroup], progress: ProgressCallback | None = None) -> list[np.ndarray]:
        """Score every (query, document) pair; one float64 array per group, in document order."""

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes scores, as a JSON-serialisable dict."""

    def fingerprint_hash(self) -> str:
        return fingerprint_hash(self.fingerprint())

    def close(self) -> None:
        """Release the model and any accelerator memory (no-op unless a backend holds some)."""
        return None

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fingerprint_hash(fingerprint: dict[str, Any]) -> str:
    """sha256 of a fingerprint's canonical JSON: the score-cache key of every source, local or API."""
    canonical = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
