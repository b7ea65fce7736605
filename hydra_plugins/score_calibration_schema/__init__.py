"""Registers the pipeline's config schema (``pipeline_schema``) with Hydra in processes that
compose ``conf/`` without importing the pipeline first: DVC's Hydra composition in
``dvc exp run -S ...``, which writes params.yaml.

Hydra imports every module under a ``hydra_plugins`` package when it starts, and DVC puts the
repository root (its ``hydra.plugins_path``) on ``sys.path`` for that. Without this, DVC fails with
"Could not load 'pipeline_schema'".

It also makes DVC's composition validate like ``python -m pipeline``: types alone are what a
structured config checks, so ``-S evaluate.n_bootstrap=-5`` would be written to params.yaml and
fail only in the first stage that runs, after DVC has removed that stage's outputs, and
``-S +evaluate.n_split=3`` would be written and ignored. DVC offers no hook between composing and
writing params.yaml, so the composition itself is wrapped (``Hydra.compose_config``, the method
``hydra.compose`` calls): a config whose root is the pipeline's schema is checked by
:func:`pipeline.config.compose.validate_composed` (unknown keys, ranges, cross-field rules) before DVC
writes anything, and every composition error becomes one line naming the key. Inside DVC the error
is a ``DvcException``, which DVC prints as one ``ERROR:`` line (anything else is an "unexpected
error" with a traceback hint). Compositions of other configs pass through untouched.
"""

from __future__ import annotations

import functools

from pipeline.config.schema import register_configs

register_configs()


def _error_type() -> type[Exception]:
    from pipeline.config.compose import ConfigError

    try:
        from dvc.exceptions import DvcException
    except ImportError:  # composing outside DVC (python -m pipeline): the pipeline's own error
        return ConfigError

    class ParamsError(DvcException, ConfigError):
        """A parameter the pipeline's schema refuses, reported by DVC as one ERROR line."""

    return ParamsError


def _validating(compose_config):
    if getattr(compose_config, "_validates_pipeline_schema", False):
        return compose_config

    @functools.wraps(compose_config)
    def wrapper(self, config_name, overrides, *args, **kwargs):
        from omegaconf import OmegaConf, open_dict

        from pipeline.config.compose import ConfigError, _explain, _message, validate_composed
        from pipeline.config.schema import PipelineConfig

        try:
            cfg = compose_config(self, config_name, overrides, *args, **kwargs)
        except Exception as exc:  # Hydra's override and composition errors span several lines
            if not _is_pipeline_conf(self, config_name):
                raise
            raise _error_type()(_explain(_message(exc))) from None
        if OmegaConf.get_type(cfg) is PipelineConfig:
            checked = cfg.copy()
            with open_dict(checked):
                checked.pop("hydra", None)
            try:
                validate_composed(checked)
            except ConfigError as exc:
                raise _error_type()(" ".join(str(exc).split())) from None
        return cfg

    wrapper._validates_pipeline_schema = True  # type: ignore[attr-defined]
    return wrapper


def _is_pipeline_conf(hydra, config_name) -> bool:
    """Whether this Hydra instance composes the pipeline's conf/: its primary config names the
    schema in its defaults list."""
    try:
        result = hydra.config_loader.repository.load_config(config_name or "config")
    except Exception:
        return False
    return result is not None and any(getattr(d, "path", None) == "pipeline_schema" for d in result.defaults_list or ())


def _install() -> None:
    try:
        from hydra._internal.hydra import Hydra
    except ImportError:  # a Hydra without this internal layout: composition stays unvalidated
        return
    Hydra.compose_config = _validating(Hydra.compose_config)


_install()
