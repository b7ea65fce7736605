"""Text preprocessing: the one function used at collect time and at inference time.

Placeholder contract (implementation lands with the local scorers): ``preprocess(text, cfg)``
applies the switches in :class:`TextConfig` and is pure-Python (importable without numpy/torch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class TextConfig:
    nfkc: bool = False
    whitespace: bool = False
    quotes: bool = False


def preprocess(text: str, cfg: TextConfig | None = None) -> str:
    return text


def describe(cfg: TextConfig) -> dict:
    """The settings as a plain dict, recorded in fingerprints and manifests."""
    return asdict(cfg)
