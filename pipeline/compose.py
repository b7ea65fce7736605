"""Compose the Hydra config for a stage and turn it into the typed :class:`PipelineConfig`.

The CLI and the tests go through this one function, so what a test composes is exactly what a
user's command line composes. Composition errors are rewritten to name the offending key and the
keys (or values) that are allowed there.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Sequence

from omegaconf import OmegaConf

from pipeline.config import SCHEMAS, PipelineConfig, register_configs


class ConfigError(ValueError):
    """A config key or value the schema does not allow; the message says what is allowed."""


def default_config_dir() -> Path:
    """``$PIPELINE_CONF_DIR``, else the repository's ``conf/`` next to the package, else ``./conf``."""
    env = os.environ.get("PIPELINE_CONF_DIR")
    if env:
        return Path(env).resolve()
    beside = Path(__file__).resolve().parent.parent / "conf"
    return beside if beside.is_dir() else Path.cwd() / "conf"


_KEY_NOT_IN = re.compile(r"Key '([^']+)' not in '([^']+)'")


def _explain(message: str) -> str:
    match = _KEY_NOT_IN.search(message)
    if match:
        key, schema_name = match.groups()
        for schema in SCHEMAS:
            if schema.__name__ == schema_name:
                allowed = ", ".join(f.name for f in dataclasses.fields(schema))
                return f"unknown config key '{key}' in {schema_name}; allowed keys: {allowed}\n({message.strip()})"
    return message.strip()


def compose_config(overrides: Sequence[str] = (), config_dir: str | os.PathLike | None = None) -> PipelineConfig:
    """Compose ``conf/config.yaml`` with ``overrides`` and validate it against the schema."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    directory = Path(config_dir) if config_dir else default_config_dir()
    if not (directory / "config.yaml").is_file():
        raise ConfigError(f"no config.yaml in config directory {directory}")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
        obj = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # Hydra/OmegaConf raise several unrelated types
        text = str(exc)
        if exc.__cause__ is not None and str(exc.__cause__) not in text:
            text = f"{text}\n{exc.__cause__}"
        raise ConfigError(_explain(text)) from None
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(obj, PipelineConfig)
    return obj


def to_yaml(cfg: PipelineConfig) -> str:
    """Resolved config as YAML (for ``--print-config`` and for the run's record)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
