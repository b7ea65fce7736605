"""Stage registry: name -> (module, one-line description).

Modules are imported only when their stage runs, so ``python -m pipeline --help`` stays fast and
a stage's heavy dependencies (torch for collect) never load for another stage.
Every stage module exposes ``run(cfg: PipelineConfig) -> int``: 0, or 1 for the stage's own
negative verdict. Anything the user has to fix is raised as a :class:`pipeline.core.errors.PipelineError`
and turned into one line and exit status 2 here, once, by :func:`run_stage` (the convention is in
:mod:`pipeline.core.errors`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    module: str
    summary: str
    #: the config sections the stage reads (listed by ``python -m pipeline <stage> --help``)
    sections: tuple[str, ...] = ()
    #: the optional installs it needs (pipeline/core/extras.py); checked before the stage is imported
    extras: tuple[str, ...] = ("fit",)


_FIT = ("data", "calibrator", "fusion", "evaluate", "export", "report", "models", "seed")
_SCORE = ("collect", "local", "api", "reference", "text", "seed")
_SCORING = ("fit", "local", "api")


STAGES: dict[str, Stage] = {
    "demo-dataset": Stage(
        "pipeline.stages.demo_dataset",
        "expand the demo's seed texts into its calibration and training datasets",
        ("demo",),
    ),
    "demo-train": Stage(
        "pipeline.stages.demo_train",
        "train the demo reranker (revisions v1 and v2) and report its NDCG@10",
        ("demo", "seed"),
        ("fit", "local"),
    ),
    "resolve": Stage(
        "pipeline.stages.resolve",
        "write the model versions in use (local revisions, API identity, preprocessing)",
        _SCORE,
        _SCORING,
    ),
    "collect": Stage(
        "pipeline.stages.collect",
        "score a dataset with the local scorer(s) and the reference API -> paired-score table",
        _SCORE,
        _SCORING,
    ),
    "plan": Stage(
        "pipeline.stages.plan",
        "before a budgeted collect: buy a pilot round, estimate the pairs and cost the target needs",
        (*_SCORE, "plan"),
        _SCORING,
    ),
    "fit": Stage(
        "pipeline.stages.fit", "fit calibrator (+ fusion), evaluate on held-out queries, export the artifact", _FIT
    ),
    "evaluate": Stage("pipeline.stages.evaluate", "held-out agreement of raw vs calibrated scores (no export)", _FIT),
    "export": Stage(
        "pipeline.stages.export", "fit on all rows and write the artifact (no cross-validation report)", _FIT
    ),
    "check": Stage(
        "pipeline.stages.check",
        "drift check: score a fresh sample now, compare with an artifact (exit 0 ok, 1 drift, 2 error)",
        ("check",) + _SCORE + ("export",),
        _SCORING,
    ),
    "align": Stage(
        "pipeline.stages.align",
        "search the local scoring configuration that reproduces the API (template, "
        "whitespace, instruction, max_length, dtype); --apply writes conf/local/aligned-<name>.yaml",
        ("align",) + _SCORE,
        _SCORING,
    ),
    "serve": Stage(
        "pipeline.stages.serve",
        "serve the local model + its calibrator as SiliconFlow's /v1/rerank (a drop-in base URL for the hosted API)",
        ("serve", "export"),
        ("serve",),
    ),
    "embed-check": Stage(
        "pipeline.stages.embed_check",
        "compare two embedding setups (local vs API, or two local "
        "configs) text by text and per category; exit 1 below embed_check.threshold",
        ("embed_check", "api", "text", "collect"),
        _SCORING,
    ),
    "params": Stage(
        "pipeline.stages.params", "write the composed config to params.yaml (what DVC's Hydra composition writes)"
    ),
}


def require_extras(module: str) -> None:
    """Called at the top of each stage module: importing a stage without its optional installs
    fails naming the extra (``pip install 'score-calibration-pipeline[fit]'``), not the first
    missing package."""
    from pipeline.core.extras import require

    for name, stage in STAGES.items():
        if stage.module == module:
            require(f"the '{name}' stage ({module})", *stage.extras)
            return
    raise KeyError(f"{module} is not a registered stage")


def run_stage(name: str, cfg) -> int:
    """Run stage ``name`` on a composed config and return its exit status: the stage's own 0/1,
    or 2 with one ``error: ...`` line on stderr for a :class:`~pipeline.core.errors.PipelineError`."""
    import importlib
    import sys

    from pipeline.core.errors import PipelineError

    try:
        module = importlib.import_module(STAGES[name].module)
        return int(module.run(cfg) or 0)
    except PipelineError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code


def one_line(message: str) -> str:
    """A message on one line: what a log line, DVC's output and a cron mail show intact."""
    return " ".join(message.split())
