"""``python -m pipeline <stage> [key=value ...]``: thin entry point that composes the config and
calls the stage's plain ``run(cfg)`` function."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pipeline.stages import STAGES, one_line

USAGE = (
    "usage: python -m pipeline <stage> [key=value ...] [--params FILE] [--print-config] [--dry-run (collect)] "
    "[--apply (align)]"
)


def _help() -> str:
    width = max(len(name) for name in STAGES)
    lines = [USAGE, "", "stages:"]
    lines += [f"  {name:<{width}}  {stage.summary}" for name, stage in STAGES.items()]
    lines += [
        "",
        "overrides are Hydra syntax, e.g.:",
        "  python -m pipeline fit calibrator=isotonic data.sources=[local_a,local_b]",
        "  python -m pipeline collect local=qwen3-reranker-4b api=siliconflow collect.dry_run=true",
        "  python -m pipeline fit --params params.yaml     (what the DVC stages run)",
        "config groups live in conf/; --print-config shows the composed config and exits.",
    ]
    return "\n".join(lines)


def _stage_help(name: str) -> str:
    """The stage's summary and every key of the config sections it reads: default, allowed range."""
    import dataclasses
    from enum import Enum

    from pipeline.config.schema import PipelineConfig
    from pipeline.config.settings import RANGE

    stage = STAGES[name]
    lines = [USAGE.replace("<stage>", name), "", f"{name}: {stage.summary}"]
    root = PipelineConfig()

    def describe(obj, prefix: str, depth: int) -> None:
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                describe(value, f"{prefix}{f.name}.", depth + 1)
                continue
            shown = getattr(value, "value", value)
            if isinstance(value, list):
                shown = "[" + ",".join(str(getattr(v, "value", v)) for v in value) + "]"
            rng = f.metadata.get(RANGE)
            extra = f"  ({rng.describe()})" if rng is not None and rng.bounded else ""
            if isinstance(value, Enum):
                extra = "  (" + " | ".join(member.value for member in type(value)) + ")"
            lines.append(f"  {prefix}{f.name}={'null' if shown is None else shown}{extra}")

    if stage.sections:
        lines += ["", "keys (defaults of the schema; conf/ and the command line override them):"]
    for section in stage.sections:
        value = getattr(root, section)
        if dataclasses.is_dataclass(value):
            describe(value, f"{section}.", 1)
        else:
            lines.append(f"  {section}={value}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_help())
        return 0 if args else 2
    stage_name, rest = args[0], args[1:]
    if stage_name not in STAGES:
        print(f"error: unknown stage '{stage_name}'; stages: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    from pipeline.core.extras import MissingExtraError, explain, require

    try:
        require(f"the '{stage_name}' stage", *STAGES[stage_name].extras)
        return _run_stage(stage_name, rest)
    except MissingExtraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an import the extras table does not cover: still say what to install
        hint = explain(exc)
        if hint is None:
            raise
        print(f"error: {hint}", file=sys.stderr)
        return 2


def _run_stage(stage_name: str, rest: list[str]) -> int:
    if any(a in {"-h", "--help"} for a in rest):
        print(_stage_help(stage_name))
        return 0
    print_config = "--print-config" in rest
    overrides = [a for a in rest if a != "--print-config"]
    params_file = None
    if "--params" in overrides:  # read an already composed file (DVC's params.yaml) instead of conf/
        at = overrides.index("--params")
        if at + 1 >= len(overrides):
            print("error: --params needs a file (e.g. --params params.yaml)", file=sys.stderr)
            return 2
        params_file = overrides[at + 1]
        overrides = overrides[:at] + overrides[at + 2 :]
    if "--dry-run" in overrides:  # the flag spelling of collect.dry_run=true
        if stage_name != "collect":
            print(f"error: --dry-run applies to the collect stage, not '{stage_name}'", file=sys.stderr)
            return 2
        overrides = [a for a in overrides if a != "--dry-run"] + ["collect.dry_run=true"]
    if "--apply" in overrides:  # the flag spelling of align.apply=true
        if stage_name != "align":
            print(f"error: --apply applies to the align stage, not '{stage_name}'", file=sys.stderr)
            return 2
        overrides = [a for a in overrides if a != "--apply"] + ["align.apply=true"]

    from pipeline.config.compose import ConfigError, compose_config, load_params, to_yaml

    try:
        cfg = load_params(params_file, overrides) if params_file else compose_config(overrides)
    except ConfigError as exc:
        print(f"config error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    if print_config:
        print(to_yaml(cfg))
        return 0
    if not params_file and not overrides and stage_name != "params":
        _note_stale_params(to_yaml(cfg))
    from pipeline.stages import run_stage

    try:
        return run_stage(stage_name, cfg)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _note_stale_params(composed: str) -> None:
    """Say so when the workspace's params.yaml (what the DVC stages ran with) is not what this run
    uses: after `dvc exp run -S ...` applies an experiment, conf/ alone describes another setup."""
    from pathlib import Path

    path = Path("params.yaml")
    try:
        differs = path.is_file() and path.read_text(encoding="utf-8") != composed
    except OSError:
        return
    if differs:
        print(
            "note: params.yaml differs from what conf/ composes to (an applied `dvc exp run`, or conf/ edited "
            "since `python -m pipeline params`); this run uses conf/. Add --params params.yaml to run with the "
            "workspace's parameters.",
            file=sys.stderr,
        )


if __name__ == "__main__":
    sys.exit(main())
