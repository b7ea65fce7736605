"""Allowed ranges of the numeric settings, declared on the schema fields and checked once.

A setting out of range (``evaluate.n_splits=1``, ``calibrator.degree=0``,
``evaluate.confidence=1.5``) must fail at composition time with one line that names the key, its
value and what is allowed, before a table is read or a model loaded: not as a traceback from deep
inside scikit-learn or numpy after minutes of work.

Every ``int``/``float`` field of the schema declares its range with :func:`setting` (a field whose
value can be anything says so with no bounds); a test walks the schema and drives every bounded
field out of range, so a new field cannot forget it. Checks that involve two fields live in
:func:`validate`.
"""

from __future__ import annotations

import math
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from pipeline.errors import PipelineError

RANGE = "range"


class SettingError(PipelineError, ValueError):
    """A setting outside its allowed range; the message names the key."""


@dataclass(frozen=True)
class Range:
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    why: str = ""

    def allows(self, value: float) -> bool:
        if isinstance(value, float) and math.isnan(value):
            return False
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def describe(self) -> str:
        parts = [f"{op} {bound:g}" for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                 if bound is not None]
        return " and ".join(parts) if parts else "any value"

    @property
    def bounded(self) -> bool:
        return any(b is not None for b in (self.ge, self.gt, self.le, self.lt))


def setting(default: Any = MISSING, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None, why: str = "", default_factory: Any = MISSING) -> Any:
    """A dataclass field with an allowed range (no bounds: any value, said explicitly)."""
    return field(default=default, default_factory=default_factory,
                 metadata={RANGE: Range(ge=ge, gt=gt, le=le, lt=lt, why=why)})


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


def validate(cfg: Any) -> None:
    """Every range, then the checks that involve several settings (``cfg``: a ``PipelineConfig``)."""
    check_ranges(cfg)
    cal = cfg.calibrator
    if cal.y_min is not None and cal.y_max is not None and not cal.y_min < cal.y_max:
        raise SettingError(f"calibrator.y_min={cal.y_min:g} must be below calibrator.y_max={cal.y_max:g}")
    if cfg.evaluate.n_bootstrap and cfg.evaluate.n_bootstrap < 10:
        raise SettingError(f"evaluate.n_bootstrap={cfg.evaluate.n_bootstrap}: use 0 (no intervals) or at least 10 resamples")
    api = cfg.api
    if api.backoff_initial_s > api.backoff_max_s:
        raise SettingError(f"api.backoff_initial_s={api.backoff_initial_s:g} must not exceed api.backoff_max_s={api.backoff_max_s:g}")
    from pipeline.metrics import METRICS

    unknown = [m for m in cfg.check.metrics if m not in METRICS]
    if unknown:
        raise SettingError(f"check.metrics: unknown metric(s) {unknown}; allowed: {', '.join(METRICS)}")
    if cfg.export.name is not None:
        from pipeline.artifacts import ArtifactError, check_name

        try:
            check_name(cfg.export.name)
        except ArtifactError as exc:
            raise SettingError(f"export.name: {exc}") from None
    for key, local in [("local", cfg.local), *((f"collect.extra_local.{c}", l) for c, l in cfg.collect.extra_local.items())]:
        _check_chunking(key, local)
    t = cfg.demo.train
    if t.hidden_size % t.num_heads or t.num_heads % t.num_kv_heads:
        raise SettingError(f"demo.train: hidden_size={t.hidden_size} must be a multiple of num_heads={t.num_heads}, "
                           f"and num_heads a multiple of num_kv_heads={t.num_kv_heads}")


def _check_chunking(key: str, local: Any) -> None:
    """Chunking splits a document of a classic cross-encoder's pair encoding (SiliconFlow's
    max_chunks_per_doc for bge-reranker-v2-m3 and bce-reranker-base_v1); a prompt template would
    be cut apart with it."""
    if local.max_chunks_per_doc is None:
        return
    kind, template = getattr(local.kind, "value", local.kind), getattr(local.template, "value", local.template)
    if kind != "cross_encoder" or template != "none":
        raise SettingError(f"{key}.max_chunks_per_doc={local.max_chunks_per_doc} applies to kind=cross_encoder with "
                           f"template=none (bge-reranker-v2-m3, bce-reranker-base_v1), not kind={kind} template={template}; "
                           f"set {key}.max_chunks_per_doc=null")
    if local.engine.base_url:
        raise SettingError(f"{key}.max_chunks_per_doc: an engine column chunks as its server does; set it to null")
