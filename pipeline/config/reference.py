"""The ``reference`` section: the loopback reference API (:mod:`pipeline.reference.server`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pipeline.config.local import DType, Template
from pipeline.config.settings import setting


@dataclass
class ReferenceConfig:
    """The loopback reference API (:mod:`pipeline.reference.server`).

    With ``enabled``, ``collect`` and ``check`` start it on 127.0.0.1 at a free port for the API
    side and stop it afterwards; ``api.base_url``'s host and port are replaced by the live ones
    for the requests (the configured value stays in the fingerprint, so the cache key does not
    depend on the port). The key, if any, is the one named by ``api.api_key_env``.
    """

    enabled: bool = False
    #: the weights it serves: a local directory or a hub id (pinned by ``revision``)
    model: str = "models/demo-reranker/v1"
    revision: Optional[str] = None
    #: the model name requests must carry (= api.model)
    served_model: str = "demo/qwen3-reranker-tiny"
    template: Template = Template.vllm
    #: strip leading/trailing whitespace of the query and each document before templating
    strip: bool = True
    dtype: DType = DType.bfloat16
    #: the instruction used when a request carries none; null = the model card's default
    instruction: Optional[str] = None
    max_length: int = setting(512, ge=16)
    max_documents: int = setting(256, ge=1)
    max_text_chars: int = setting(20000, ge=1)
