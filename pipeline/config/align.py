"""The ``align`` section: the search space and stopping rules of ``python -m pipeline align``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from pipeline.config.collect import ScoringSettings
from pipeline.config.local import DType, Template
from pipeline.config.settings import setting


@dataclass
class AlignConfig:
    """The search for the local configuration that reproduces the API (``python -m pipeline align``)."""

    #: query groups of collect.dataset searched on, and a disjoint set that confirms the winner
    sample_queries: int = setting(32, ge=2, why="per-query agreement needs queries")
    confirm_queries: int = setting(32, ge=1)
    #: candidate values per axis; the current local config's value is always tried too
    templates: list[Template] = field(default_factory=lambda: [Template.official, Template.vllm, Template.none])
    strip_texts: list[bool] = field(default_factory=lambda: [False, True])
    strip_prompt: list[bool] = field(default_factory=lambda: [False, True])
    #: besides the current one, the model's default and api.instruction (when set)
    instructions: list[str] = field(default_factory=list)
    max_lengths: list[int] = field(default_factory=list)
    #: long documents split into chunks, scored by the best one (SiliconFlow's max_chunks_per_doc for
    #: bge-reranker-v2-m3 / bce-reranker-base_v1; kind=cross_encoder, template=none); null = none.
    #: Empty: not tried. The API must be asked the same way (+api.extra_body.max_chunks_per_doc=N)
    max_chunks_per_doc: list[Optional[int]] = field(default_factory=list)
    #: text.* switches tried one at a time (e.g. [nfkc, whitespace]); each changes what the API
    #: is sent too, so each costs one more API pass over the samples. Empty: none tried
    text_switches: list[str] = field(default_factory=list)
    dtypes: list[DType] = field(default_factory=lambda: [DType.float32, DType.bfloat16])
    #: coordinate search: passes over the axes (each pass tries every value of one axis at a time)
    max_passes: int = setting(2, ge=1)
    #: pairs sent twice, bypassing the cache, to measure the API's disagreement with itself
    noise_pairs: int = setting(16, ge=0, why="0 = no noise-floor measurement")
    #: stop when a candidate's max |delta| is within the noise floor plus this
    tolerance: float = setting(1e-5, ge=0)
    #: no candidate within this max |delta| and below rank_close per-query Spearman: unalignable
    close_delta: float = setting(0.02, gt=0)
    rank_close: float = setting(0.98, ge=-1, le=1)
    n_bootstrap: int = setting(1000, ge=0, why="0 = no intervals")
    #: reports/align/<name>/ and conf/local/aligned-<name>.yaml
    name: str = "${name}"
    root: str = "reports/align"
    #: copy the winner into conf/local/ (also `--apply`); without it nothing under conf/ changes
    apply: bool = False


@dataclass
class AlignSettings(ScoringSettings):
    """What ``align`` reads: how pairs are scored, and the search."""

    align: AlignConfig
