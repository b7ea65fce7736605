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
from typing import Any, Sequence

from omegaconf import OmegaConf

from pipeline.config.schema import SCHEMAS, PipelineConfig, register_configs
from pipeline.core.errors import PipelineError


class ConfigError(PipelineError, ValueError):
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
    beside = Path(__file__).resolve().parents[2] / "conf"
    if beside.is_dir():
        return beside
    here = Path.cwd() / "conf"
    installed = Path(sys.prefix) / INSTALLED_CONF
    return installed if not here.is_dir() and installed.is_dir() else here


_KEY_NOT_IN = re.compile(r"Key '([^']+)' not in '([^']+)'")
_FULL_KEY = re.compile(r"full_key: (\S+)")
#: Hydra's advice for an unknown key; following it would add a key the schema then ignores
_APPEND_HINT = re.compile(r"To append to your config use \S+")


def _unknown_key_message(full_key: str, schema: type) -> str:
    """``unknown config key 'evaluate.n_split' (did you mean 'evaluate.n_splits'?); evaluate takes: ...``"""
    import difflib

    allowed = [f.name for f in dataclasses.fields(schema)]
    key = full_key.rsplit(".", 1)[-1]
    parent = full_key[: -len(key)]
    close = difflib.get_close_matches(key, allowed, n=1)
    guess = f" (did you mean '{parent}{close[0]}'?)" if close else ""
    section = parent.rstrip(".") or "the top level"
    return f"unknown config key '{full_key}'{guess}; {section} takes: {', '.join(allowed)}"


def _explain(message: str) -> str:
    """Hydra/OmegaConf's message, on one line, naming the key and what is allowed there; never
    Hydra's suggestion to append an unknown key with ``+`` (the schema would refuse it)."""
    match = _KEY_NOT_IN.search(message)
    if match:
        key, schema_name = match.groups()
        full = _FULL_KEY.search(message)
        for schema in SCHEMAS:
            if schema.__name__ == schema_name:
                return _unknown_key_message(full.group(1) if full else key, schema)
    full = _FULL_KEY.search(message)
    if full and full.group(1).startswith("collect.extra_local."):  # entries are whole `local` configs
        column = full.group(1).split(".")[2]
        return (
            f"'collect.extra_local.{column}' is not configured: add the column with a conf/local entry, "
            f"+local@collect.extra_local.{column}=<entry> (e.g. minilm-bundled)"
        )
    if full and _in_dict_field(full.group(1)):  # a new key of a dict (data.score_types.<column>): + is right
        key = full.group(1)
        value = re.search(rf"{re.escape(key)}=(\S+)", message)
        return (
            f"'{key}' is not set yet: add a key to the dict '{key.rsplit('.', 1)[0]}' with "
            f"+{key}={value.group(1) if value else '<value>'}"
        )
    text = _APPEND_HINT.sub("", message)
    parts = [p.strip() for p in text.splitlines() if p.strip()]
    return " ".join(
        p for p in parts if not p.startswith(("reference_type=", "object_type=", "Config search path", "provider="))
    )


def _in_dict_field(full_key: str) -> bool:
    """Whether ``full_key`` names an entry of a dict-typed field (``data.score_types.logits``,
    ``api.extra_body.x``), where Hydra's ``+key=value`` is the right way to add it."""
    import typing

    schema: Any = PipelineConfig
    for part in full_key.split(".")[:-1]:
        if not dataclasses.is_dataclass(schema):
            return False
        hints = typing.get_type_hints(schema)
        if part not in hints:
            return False
        schema = hints[part]
        origin = typing.get_origin(schema)
        if origin is typing.Union:  # Optional[...]
            schema = next(a for a in typing.get_args(schema) if a is not type(None))
            origin = typing.get_origin(schema)
        if origin in (dict, typing.Dict):
            return True
    return False


def unknown_keys(node: Any, path: str = "") -> list[str]:
    """Messages for keys of the composed config that its schema does not have.

    Hydra's ``+key=value`` adds a key even to a structured node, and ``OmegaConf.to_object`` then
    drops it without a word: ``+evaluate.n_split=3`` would run with the default ``n_splits``. The
    walk reads nodes without resolving interpolations; dict-typed fields (``collect.extra_local``,
    ``api.extra_body``) take any key, and their structured values are checked in turn.
    """
    from omegaconf import DictConfig, ListConfig

    found: list[str] = []
    if isinstance(node, DictConfig):
        schema = OmegaConf.get_type(node)
        fields = {f.name for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
        for key in node.keys():
            full = f"{path}{key}"
            if fields is not None and key not in fields:
                found.append(_unknown_key_message(full, schema))
            else:
                found += unknown_keys(node._get_node(key), f"{full}.")
    elif isinstance(node, ListConfig):
        for i in range(len(node)):
            found += unknown_keys(node._get_node(i), f"{path.rstrip('.')}[{i}].")
    return found


def validate_composed(cfg: Any) -> PipelineConfig:
    """The typed, validated config from a composed DictConfig: unknown keys (in any spelling),
    types, ranges and cross-field rules. Used by this module and by the Hydra plugin that DVC's
    composition loads (``hydra_plugins/``), so ``dvc exp run -S`` is checked like the CLI."""
    unknown = unknown_keys(cfg)
    if unknown:
        raise ConfigError(unknown[0] + (f" (and {len(unknown) - 1} more unknown key(s))" if len(unknown) > 1 else ""))
    return _to_object(cfg)


def _compose(overrides: Sequence[str], config_dir: str | os.PathLike | None):
    """Hydra's composition of ``conf/config.yaml`` + ``overrides`` (a DictConfig), errors explained."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    directory = Path(config_dir) if config_dir else default_config_dir()
    if not (directory / "config.yaml").is_file():
        raise ConfigError(
            f"no config.yaml in config directory {directory} (run from the repository, or set "
            "PIPELINE_CONF_DIR to a conf/ directory)"
        )
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
    """Ranges and cross-field rules (:mod:`pipeline.config.settings`), once, before any stage runs."""
    from pipeline.config.schema import validate
    from pipeline.config.settings import SettingError

    try:
        validate(cfg)
    except SettingError as exc:
        raise ConfigError(str(exc)) from None
    return cfg


def compose_config(overrides: Sequence[str] = (), config_dir: str | os.PathLike | None = None) -> PipelineConfig:
    """Compose ``conf/config.yaml`` with ``overrides`` and validate it against the schema."""
    return validate_composed(_compose(overrides, config_dir))


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
            raise ConfigError(
                f"{item!r}: with --params only key=value overrides apply (a group choice such as "
                f"calibrator=poly needs composition: drop --params, or use dvc exp run -S {item})"
            )
    try:
        merged = OmegaConf.merge(
            OmegaConf.structured(PipelineConfig),
            OmegaConf.load(file),
            OmegaConf.from_dotlist([o.lstrip("+") for o in overrides]),
        )
        obj = OmegaConf.to_object(merged)
    except (OmegaConfBaseException, ValueError) as exc:
        raise ConfigError(f"{file}: {_explain(str(exc))}") from None
    assert isinstance(obj, PipelineConfig)
    return _validated(obj)


def to_yaml(cfg: PipelineConfig) -> str:
    """Resolved config as YAML (for ``--print-config`` and for the run's record)."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))
