"""Schema of the ``embed_check`` config section (``python -m pipeline embed-check``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from pipeline.config.collect import ScoringSettings
from pipeline.config.local import Device, DType, LocalScorerConfig, Pooling, ScorerKind
from pipeline.config.settings import setting


class OtherSide(Enum):
    local = "local"  # the same local config with embed_check.other applied (dtype, revision, pooling, ...)
    api = "api"  # the `api` config (an embeddings endpoint: api=siliconflow-embeddings)


@dataclass
class LocalChanges:
    """What the other local side changes (``against=local``): each key that is set replaces the
    same ``local.*`` key of ``embed_check.local``; null keys are left as they are."""

    #: the default demo: float16 moves MiniLM by ~2e-6 in cosine, well inside the 0.9999 gate
    #: (bfloat16's ~1e-4 sits on it: PASS or FAIL by the last bits of the machine's kernels)
    dtype: Optional[DType] = DType.float16
    model: Optional[str] = None
    revision: Optional[str] = None
    device: Optional[Device] = None
    pooling: Optional[Pooling] = None
    task: Optional[str] = None
    dimensions: Optional[int] = setting(None, ge=1, why="null = unchanged")
    normalize: Optional[bool] = None
    max_length: Optional[int] = setting(None, ge=2, why="null = unchanged")
    attn_implementation: Optional[str] = None


@dataclass
class EmbedCheckConfig:
    """Two embedding setups, text by text (docs/embed-check.md)."""

    #: this side: an embedding config (conf/local/*: `local@embed_check.local=qwen3-embedding-0.6b`)
    local: LocalScorerConfig = field(
        default_factory=lambda: LocalScorerConfig(kind=ScorerKind.embedding, model="Qwen/Qwen3-Embedding-0.6B")
    )
    against: OtherSide = OtherSide.local
    #: against=local: the keys of embed_check.local the other side changes (default: dtype only;
    #: e.g. `embed_check.other.dtype=null embed_check.other.pooling=cls` for pooling only)
    other: LocalChanges = field(default_factory=LocalChanges)
    #: the texts: a collect dataset (queries + documents with meta.category)
    dataset: str = "${collect.dataset}"
    #: query groups sampled from it (by hash of query_id); null = all
    max_queries: Optional[int] = setting(16, ge=1, why="null = every query")
    #: the gate: exit 1 when the minimum cosine over all texts is below this
    threshold: float = setting(0.9999, ge=-1, le=1)
    top_k: int = setting(5, ge=1)
    worst: int = setting(10, ge=1)
    #: against=api and the gate fails: try local variants (no query instruction, other pooling,
    #: other dtype) to name the cause
    diagnose: bool = True
    #: print what the API side would send (texts not cached, tokens, cost) and send nothing
    dry_run: bool = False
    report_dir: str = "reports/embed-check/${name}"


@dataclass
class EmbedCheckSettings(ScoringSettings):
    """What ``embed-check`` reads: the check, and the API side's settings when it compares against it."""

    embed_check: EmbedCheckConfig
