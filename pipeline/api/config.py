"""Schemas of the ``api`` config group (conf/api/*.yaml) and of the collect stage."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ApiConfig:
    # placeholder until the API clients land; extended by pipeline/api
    dialect: str = "siliconflow"
    base_url: str = "https://api.siliconflow.cn/v1"
    model: str = "Qwen/Qwen3-Reranker-0.6B"
    api_key_env: str = "SILICONFLOW_API_KEY"


@dataclass
class CollectConfig:
    # placeholder until the collect stage lands
    dataset: str = "data/demo/dataset.jsonl"
    output: str = "data/collected/paired_scores.parquet"
