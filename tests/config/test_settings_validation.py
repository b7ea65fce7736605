"""Every numeric setting has a declared range, and a value outside it is one `config error:` line
with exit status 2 before any work. The cases are generated from the schema itself, so a new
field is covered (or this test says it declares no range)."""

from __future__ import annotations

import copy
import dataclasses
import typing

import pytest

from pipeline.__main__ import main
from pipeline.config.compose import compose_config
from pipeline.config.schema import PipelineConfig, validate
from pipeline.config.settings import SettingError, _base_type, numeric_fields


def _schema_fields(cls=PipelineConfig, prefix=""):
    """(key, type, range) of every numeric field reachable from the root config, extra_local included."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = _base_type(hints[f.name])
        if dataclasses.is_dataclass(kind):
            out += _schema_fields(kind, f"{prefix}{f.name}.")
        elif typing.get_origin(kind) in (dict, dict) and dataclasses.is_dataclass(typing.get_args(kind)[1]):
            out += _schema_fields(typing.get_args(kind)[1], f"{prefix}{f.name}.local_minilm.")  # the demo's entry
    out += [(prefix + name, kind, rng) for name, kind, rng in numeric_fields(cls)]
    return out


FIELDS = _schema_fields()


def _out_of_range(kind, rng) -> list:
    """Just outside each bound: one step below a minimum or above a maximum; an excluded bound itself."""
    step = 1 if kind is int else 0.5
    values = []
    if rng.ge is not None:
        values.append(rng.ge - step)
    if rng.gt is not None:
        values.append(rng.gt)
    if rng.le is not None:
        values.append(rng.le + step)
    if rng.lt is not None:
        values.append(rng.lt)
    return [kind(v) for v in values]


def test_every_numeric_setting_declares_its_range():
    missing = [key for key, _, rng in FIELDS if rng is None]
    assert not missing, f"declare a range with pipeline.config.settings.setting(...) for: {missing}"
    assert len(FIELDS) > 60


CASES = [
    (key, value) for key, kind, rng in FIELDS if rng is not None and rng.bounded for value in _out_of_range(kind, rng)
]


@pytest.fixture(scope="module")
def composed():
    """The demo's composed config (extra_local.local_minilm included), composed once."""
    return compose_config()


def _with(cfg, key: str, value):
    """A copy of ``cfg`` with the dotted ``key`` set (dict entries by name, dataclasses by field)."""
    cfg = copy.deepcopy(cfg)
    *path, last = key.split(".")
    node = cfg
    for part in path:
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    setattr(node, last, value)
    return cfg


@pytest.mark.parametrize("key, value", CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_validation_refuses_each_bound_and_names_the_key(composed, key, value):
    """The unit-level drive of every bound (milliseconds each): what the CLI test below does through
    Hydra for both entry points, minutes in all."""
    with pytest.raises(SettingError) as caught:
        validate(_with(composed, key, value))
    assert str(caught.value).startswith(f"{key}={value!r} is out of range: it must be ")


@pytest.mark.slow
@pytest.mark.parametrize("key, value", CASES, ids=[f"{k}={v}" for k, v in CASES])
def test_an_out_of_range_setting_is_one_line_and_exit_2(key, value, capsys):
    assert main(["fit", f"{key}={value}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"config error: {key}={value!r} is out of range: it must be ") and "\n" not in err
    assert main(["check", "--params", "params.yaml", f"{key}={value}"]) == 2  # the DVC path validates the same way
    assert f"{key}={value!r} is out of range" in capsys.readouterr().err


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["calibrator.y_min=0.9", "calibrator.y_max=0.1"], "calibrator.y_min=0.9 must be below calibrator.y_max=0.1"),
        (["evaluate.n_bootstrap=5"], "use 0 (no intervals) or at least 10 resamples"),
        (["api.backoff_initial_s=5", "api.backoff_max_s=1"], "must not exceed api.backoff_max_s=1"),
        (["check.metrics=[pearson,typo]"], "check.metrics: unknown metric(s) ['typo']"),
        (["export.name=../x"], "export.name: artifact name '../x' must match"),
        (["demo.train.hidden_size=60", "demo.train.num_heads=8"], "must be a multiple of num_heads=8"),
    ],
)
def test_settings_that_only_fail_together(overrides, message, capsys):
    assert main(["fit", *overrides]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
