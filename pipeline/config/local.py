"""Schema of the ``local`` config group (conf/local/*.yaml). Owned by the scorers package.

One dataclass for every backend so ``local=<entry>`` swaps backends from the command line; each
backend reads the fields that apply to it and says in its fingerprint which ones it used. Every
field has a type OmegaConf validates (Enums for choices, ``Optional`` for nullable values), so a
typo such as ``local.dtype=bf16`` fails at composition time and names the allowed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from pipeline.config.api import Dialect
from pipeline.config.settings import SettingError, setting


class ScorerKind(Enum):
    """Which backend scores the pairs."""

    qwen3_reranker = "qwen3_reranker"  # causal LM, P(yes) from the yes/no logits
    cross_encoder = "cross_encoder"  # AutoModelForSequenceClassification, one logit per pair
    embedding = "embedding"  # bi-encoder, cosine of query and document embeddings


class DType(Enum):
    float32 = "float32"  # default: the agreement study needed float32
    bfloat16 = "bfloat16"
    float16 = "float16"


class Device(Enum):
    auto = "auto"  # cuda, then mps, then cpu
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Template(Enum):
    """How a (query, document) pair becomes the model input."""

    official = "official"  # the model card's transformers recipe (prefix + body + suffix)
    vllm = "vllm"  # vLLM's example: query part and document part tokenised separately
    none = "none"  # no prompt: the query and document tokens back to back


class Activation(Enum):
    sigmoid = "sigmoid"
    none = "none"


class Pooling(Enum):
    last = "last"  # last real token (Qwen3-Embedding)
    mean = "mean"  # mean over real tokens (sentence-transformers MiniLM and friends)
    cls = "cls"  # first token (BGE-style encoders)


@dataclass
class EngineConfig:
    """``local.engine``: the column's scores come from an HTTP scoring engine (vLLM, TEI,
    infinity) that runs the model, instead of from this process; see docs/scale-out.md.

    The client formats the prompt (``local.template``, ``local.instruction``, ``local.task``) and
    sends the two texts of each pair, so start the engine *without* a chat template. Everything
    here is how to reach the engine; what it computes is fingerprinted from ``local.*`` and from
    what the engine reports about itself (model, revision, dtype where it says).
    """

    #: null = score in this process with transformers; else the engine's base URL, e.g.
    #: http://127.0.0.1:8000 (vLLM), http://127.0.0.1:8080 (TEI), http://127.0.0.1:7997 (infinity)
    base_url: Optional[str] = None
    #: vllm_score (POST /score), vllm (POST /rerank), tei, infinity; embedding models use each
    #: one's embeddings endpoint
    dialect: Dialect = Dialect.vllm_score
    #: null = the dialect's default path
    path: Optional[str] = None
    #: the model name sent in requests; null = the one the engine reports, else local.model
    served_model: Optional[str] = None
    #: environment variable holding the engine's bearer token; null = none (sent when set)
    api_key_env: Optional[str] = None
    concurrency: int = setting(8, ge=1)
    max_documents_per_request: int = setting(32, ge=2)
    timeout_s: float = setting(300.0, gt=0)
    retry_attempts: int = setting(6, ge=1, why="attempts per request, the first included")


@dataclass
class LocalScorerConfig:
    """Everything needed to build a local scorer; see docs/scorers.md."""

    kind: ScorerKind = ScorerKind.qwen3_reranker
    #: hub id (``Qwen/Qwen3-Reranker-0.6B``) or a local directory written by ``save_pretrained``
    model: str = "Qwen/Qwen3-Reranker-0.6B"
    #: hub branch/tag/commit; for a local directory, optionally ``sha256:<hex>`` of its files
    revision: Optional[str] = None
    dtype: DType = DType.float32
    device: Device = Device.auto
    # -- prompt (qwen3_reranker; cross_encoder for seq-cls conversions of Qwen3 rerankers) --
    template: Template = Template.official
    #: null = the model's default instruction; ignored by template=none
    instruction: Optional[str] = None
    #: tokens per pair, prompt included (the document is truncated to fit)
    max_length: int = setting(8192, ge=2)
    #: strip leading and trailing whitespace from the query and each document before they enter
    #: the template, as several serving stacks do (infinity, the demo reference); local only --
    #: unlike text.*, it does not change what is sent to the API
    strip_texts: bool = False
    #: strip every text the tokenizer receives, as servers that strip their inputs do: the whole
    #: prompt (template official: its trailing "\n\n" after </think>), each text of the pair
    #: (vllm: the query part and the document part; none), each text embedded (embedding).
    #: infinity strips every input this way (local.engine.dialect=infinity requires it)
    strip_prompt: bool = False
    # -- batching (never changes what is computed, only how fast) --
    batch_size: int = setting(8, ge=1)
    #: upper bound on tokens in one batch: padded (rows x longest row), or the rows' own tokens for
    #: the packed backends (qwen3_reranker, Qwen2/Qwen3 cross-encoders); a longer pair runs alone
    max_batch_tokens: int = setting(32768, ge=1)
    #: on CPU (Linux, glibc): keep freed memory for reuse instead of page-faulting every new tensor
    #: (process-wide; see pipeline/scorers/cpu_memory.py). Never changes scores.
    reuse_cpu_memory: bool = True
    # -- cross_encoder --
    activation: Activation = Activation.sigmoid
    #: long documents split into chunks, each scored with the query, the document scored by its
    #: best chunk: SiliconFlow's `max_chunks_per_doc` for BAAI/bge-reranker-v2-m3 and
    #: netease-youdao/bce-reranker-base_v1 (template none only). A chunk is as many document tokens
    #: as fit beside the query in max_length; that length is an assumption, unverified against the
    #: hosted API. null = no chunking: a long document is truncated
    max_chunks_per_doc: Optional[int] = setting(None, ge=1, why="null = no chunking (truncate)")
    #: tokens shared by consecutive chunks (SiliconFlow's `overlap_tokens`, at most 80 there)
    overlap_tokens: int = setting(80, ge=0)
    # -- embedding --
    pooling: Pooling = Pooling.last
    #: query instruction: queries become "Instruct: {task}\nQuery:{query}"; null = bare queries
    task: Optional[str] = None
    #: Matryoshka truncation: keep the first `dimensions` coordinates, then re-normalise
    dimensions: Optional[int] = setting(None, ge=1, why="null = the native size")
    normalize: bool = True
    # -- loading --
    #: attention kernel passed to from_pretrained ("sdpa", "eager", "flash_attention_2"); null = default
    attn_implementation: Optional[str] = None
    cache_dir: Optional[str] = None
    local_files_only: bool = False
    #: provenance: the align report that chose this configuration (written by `align`; recorded in
    #: the table sidecar, never in the score fingerprint)
    aligned_by: Optional[str] = None
    # -- where the model runs --
    #: an HTTP engine instead of this process (local.engine.base_url); see EngineConfig
    engine: EngineConfig = field(default_factory=EngineConfig)


_ENUM_FIELDS = {
    "kind": ScorerKind,
    "dtype": DType,
    "device": Device,
    "template": Template,
    "activation": Activation,
    "pooling": Pooling,
}


def coerce(cfg: LocalScorerConfig) -> LocalScorerConfig:
    """A copy with string choices turned into their Enums (for configs built in code).

    Hydra already validates composed configs; this gives code-built ones the same clear error.
    """
    from dataclasses import replace

    updates = {}
    for name, enum in _ENUM_FIELDS.items():
        value = getattr(cfg, name)
        if not isinstance(value, enum):
            try:
                updates[name] = enum(getattr(value, "value", value))
            except ValueError:
                allowed = ", ".join(e.value for e in enum)
                raise ValueError(f"local.{name}={value!r} is not one of: {allowed}") from None
    engine = cfg.engine
    if isinstance(engine, dict):
        engine = EngineConfig(**engine)
    if not isinstance(engine.dialect, Dialect):
        try:
            engine = replace(engine, dialect=Dialect(getattr(engine.dialect, "value", engine.dialect)))
        except ValueError:
            raise ValueError(
                f"local.engine.dialect={engine.dialect!r} is not one of: {', '.join(d.value for d in Dialect)}"
            ) from None
    if engine is not cfg.engine:
        updates["engine"] = engine
    return replace(cfg, **updates) if updates else cfg


def check_chunking(key: str, local: Any) -> None:
    """Chunking splits a document of a classic cross-encoder's pair encoding (SiliconFlow's
    max_chunks_per_doc for bge-reranker-v2-m3 and bce-reranker-base_v1); a prompt template would
    be cut apart with it."""
    if local.max_chunks_per_doc is None:
        return
    kind, template = getattr(local.kind, "value", local.kind), getattr(local.template, "value", local.template)
    if kind != "cross_encoder" or template != "none":
        raise SettingError(
            f"{key}.max_chunks_per_doc={local.max_chunks_per_doc} applies to kind=cross_encoder with "
            f"template=none (bge-reranker-v2-m3, bce-reranker-base_v1), not kind={kind} template={template}; "
            f"set {key}.max_chunks_per_doc=null"
        )
    if local.engine.base_url:
        raise SettingError(f"{key}.max_chunks_per_doc: an engine column chunks as its server does; set it to null")
