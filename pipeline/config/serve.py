"""Schema of the ``serve`` config section (``python -m pipeline serve serve.port=8001 ...``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pipeline.config.fit import DataConfig, ExportConfig
from pipeline.config.local import Device
from pipeline.config.settings import SectionView, setting


@dataclass
class ServeConfig:
    """One local model + its calibrator as a SiliconFlow-compatible service (docs/serve.md)."""

    #: the artifact directory; null = export.root/<artifact name> (what `fit` wrote for this run)
    artifact: Optional[str] = None
    #: loopback by default: binding another interface is a deliberate choice (set api_key_env too)
    host: str = "127.0.0.1"
    port: int = setting(8000, ge=0, le=65535, why="0 = any free port (printed at start)")
    #: the `model` clients send; null = the API model the calibration was collected against, so a
    #: client that called the hosted API keeps its request body and only changes the base URL
    served_model: Optional[str] = None
    #: environment variable holding the bearer token clients must send; null = no authentication
    api_key_env: Optional[str] = None
    #: request limits, answered with 413 in the API's error shape: documents per request, and the
    #: request body's size, (max_documents + 1) x max_text_chars x 12 bytes (a text longer than
    #: the model takes is truncated, or chunked where the API chunks, never refused)
    max_documents: int = setting(256, ge=1)
    max_text_chars: int = setting(20000, ge=1)
    #: dynamic batching: pairs from concurrent requests share a model call of up to this many
    #: pairs; the first request waits at most batch_wait_ms for company
    max_batch_pairs: int = setting(64, ge=1)
    batch_wait_ms: float = setting(2.0, ge=0)
    #: the local model to serve; null = the one the manifest records (single-source artifacts).
    #: Another model or revision makes the service not ready, unless allow_mismatch
    model: Optional[str] = None
    revision: Optional[str] = None
    device: Device = Device.auto
    #: the scorer's batch size; null = the one the local config used at collect time
    batch_size: Optional[int] = setting(None, ge=1, why="null = as collected")
    #: serve even when the loaded model differs from what the calibrator was fitted on (readiness
    #: then lists the differences as warnings)
    allow_mismatch: bool = False


@dataclass
class ServeSettings(SectionView):
    """What ``serve`` reads: its section, and where ``fit`` put the artifact when ``serve.artifact``
    is null (``name``, ``data``, ``export``: :func:`pipeline.config.fit.artifact_name`)."""

    serve: ServeConfig
    name: str
    data: DataConfig
    export: ExportConfig
