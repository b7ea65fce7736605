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


#: where a wheel installs conf/ (pyproject.toml's data-files), under the environment's prefix
INSTALLED_CONF = Path("share") / "score-calibration-pipeline" / "conf"


def default_config_dir() -> Path:
    """``$PIPELINE_CONF_DIR``, else the repository's ``conf/`` next to the package, else ``./conf``,
    else the copy a wheel installed under ``<sys.prefix>/share/``."""
    import sys

    env = os.environ.get("PIPELINE_CONF_DIR")
    if env:
        return Path(env).resolve()
    beside = Path(__file__).resolve().parent.parent / "conf"
    if beside.is_dir():
        return beside
    here = Path.cwd() / "conf"
    installed = Path(sys.prefix) / INSTALLED_CONF
    return installed if not here.is_dir() and installed.is_dir() else here


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


def _compose(overrides: Sequence[str], config_dir: str | os.PathLike | None):
    """Hydra's composition of ``conf/config.yaml`` + ``overrides`` (a DictConfig), errors explained."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    directory = Path(config_dir) if config_dir else default_config_dir()
    if not (directory / "config.yaml").is_file():
        raise ConfigError(f"no config.yaml in config directory {directory} (run from the repository, or set "
                          "PIPELINE_CONF_DIR to a conf/ directory)")
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(directory), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except Exception as exc:  # Hydra/OmegaConf raise several unrelated types
        raise ConfigError(_explain(_message(exc))) from None
    finally:
        GlobalHydra.instance().clear()


def _message(exc: BaseException) -> str:
    text = str(exc)
    if exc.__cause__ is not None and str(exc.__cause__) not in text:
        text = f"{text}\n{exc.__cause__}"
    return text


def _to_object(cfg) -> PipelineConfig:
    try:
        obj = OmegaConf.to_object(cfg)
    except Exception as exc:  # interpolation and validation errors surface here
        raise ConfigError(_explain(_message(exc))) from None
    assert isinstance(obj, PipelineConfig)
    return _validated(obj)


def _validated(cfg: PipelineConfig) -> PipelineConfig:
    """Ranges and cross-field rules (:mod:`pipeline.validation`), once, before any stage runs."""
    from pipeline.validation import SettingError, validate

    try:
        validate(cfg)
    except SettingError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def compose_config(overrides: Sequence[str] = (), config_dir: str | os.PathLike | None = None) -> PipelineConfig:
    """Compose ``conf/config.yaml`` with ``overrides`` and validate it against the schema."""
    return _to_object(_compose(overrides, config_dir))


def load_params(path: str | os.PathLike, overrides: Sequence[str] = ()) -> PipelineConfig:
    """A config from an already composed YAML file (DVC's ``params.yaml``), validated against the
    schema, with ``key=value`` overrides on top.

    This is how the DVC stages read their parameters: ``dvc exp run -S key=value`` re-composes
    ``conf/`` into ``params.yaml`` (through Hydra, with the same schema), and a stage that composed
    ``conf/`` again by itself would never see the override. Group selections (``calibrator=poly``)
    need the config groups, so they are refused here with a pointer to where they work.
    """
    from omegaconf.errors import OmegaConfBaseException

    register_configs()
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"--params {file}: no such file (write it with `python -m pipeline params` or `dvc exp run`)")
    groups = {p.name for p in default_config_dir().iterdir() if p.is_dir()} if default_config_dir().is_dir() else set()
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if "=" not in item or key in groups:
            raise ConfigError(f"{item!r}: with --params only key=value overrides apply (a group choice such as "
                              f"calibrator=poly needs composition: drop --params, or use dvc exp run -S {item})")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(PipelineConfig), OmegaConf.load(file),
                                 OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]))
        obj = OmegaConf.to_object(merged)
    except (OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(f"{file}: {_explain(str(exc))}") from None
    assert isinstance(obj, PipelineConfig)
    return _validated(obj)


def to_yaml(cfg: PipelineConfig) -> str:
    """Resolved config as YAML (for ``--print-config`` and for the run's record)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
