"""Allowed ranges of the numeric settings, declared on the schema fields and checked once.

A setting out of range (``evaluate.n_splits=1``, ``calibrator.degree=0``,
``evaluate.confidence=1.5``) must fail at composition time with one line that names the key, its
value and what is allowed, before a table is read or a model loaded: not as a traceback from deep
inside scikit-learn or numpy after minutes of work.

Every ``int``/``float`` field of the schema declares its range with :func:`setting` (a field whose
value can be anything says so with no bounds); a test walks the schema and drives every bounded
field out of range, so a new field cannot forget it. Checks that involve two fields live beside
their section (``check_<section>``), and :func:`pipeline.config.schema.validate` runs them all.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, field, fields, is_dataclass
from typing import Any

from pipeline.calibration.ranges import ParamRange as Range  # one range type: the config's and the estimators'
from pipeline.core.errors import PipelineError

RANGE = "range"


class SettingError(PipelineError, ValueError):
    """A setting outside its allowed range; the message names the key."""


def setting(
    default: Any = MISSING,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    why: str = "",
    default_factory: Any = MISSING,
) -> Any:
    """A dataclass field with an allowed range (no bounds: any value, said explicitly)."""
    return field(
        default=default, default_factory=default_factory, metadata={RANGE: Range(ge=ge, gt=gt, le=le, lt=lt, why=why)}
    )


def numeric_fields(cls: type) -> list[tuple[str, type, Range | None]]:
    """(name, int or float, declared range or None) of every numeric field of a dataclass."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        kind = _base_type(hints[f.name])
        if kind in (int, float):
            out.append((f.name, kind, f.metadata.get(RANGE)))
    return out


def _base_type(hint: Any) -> Any:
    args = typing.get_args(hint)
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0] if len(rest) == 1 else hint
    return hint


def check_ranges(obj: Any, prefix: str = "") -> None:
    """Raise :class:`SettingError` for the first numeric field of ``obj`` (recursively) outside its range."""
    for f in fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        rng = f.metadata.get(RANGE)
        if rng is not None and value is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not rng.allows(value):
                why = f" ({rng.why})" if rng.why else ""
                raise SettingError(f"{key}={value!r} is out of range: it must be {rng.describe()}{why}")
        if is_dataclass(value):
            check_ranges(value, key + ".")
        elif isinstance(value, dict):
            for name, item in value.items():
                if is_dataclass(item):
                    check_ranges(item, f"{key}.{name}.")


class SectionView:
    """Base of the per-package settings views (``FitSettings``, ``ScoringSettings``, ...): a
    dataclass whose fields are named after the config sections a package reads. ``View.of(cfg)``
    takes those sections from the whole config, so the package's functions see nothing else and
    still read ``settings.calibrator.degree`` as ``cfg.calibrator.degree``."""

    @classmethod
    def of(cls, cfg: Any) -> Any:
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})  # type: ignore[arg-type]
