"""Stage registry: name -> (module, one-line description).

Modules are imported only when their stage runs, so ``python -m pipeline --help`` stays fast and
a stage's heavy dependencies (torch for collect) never load for another stage.
Every stage module exposes ``run(cfg: PipelineConfig) -> int`` (the exit status).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    module: str
    summary: str
    #: the config sections the stage reads (listed by ``python -m pipeline <stage> --help``)
    sections: tuple[str, ...] = ()


_FIT = ("data", "calibrator", "fusion", "evaluate", "export", "report", "models", "seed")
_SCORE = ("collect", "local", "api", "reference", "text", "seed")


STAGES: dict[str, Stage] = {
    "demo-dataset": Stage("pipeline.stages.demo_dataset", "expand the demo's seed texts into its calibration and training datasets", ("demo",)),
    "demo-train": Stage("pipeline.stages.demo_train", "train the demo reranker (revisions v1 and v2) and report its NDCG@10", ("demo", "seed")),
    "resolve": Stage("pipeline.stages.resolve", "write the model versions in use (local revisions, API identity, preprocessing)", _SCORE),
    "collect": Stage("pipeline.stages.collect", "score a dataset with the local scorer(s) and the reference API -> paired-score table", _SCORE),
    "fit": Stage("pipeline.stages.fit", "fit calibrator (+ fusion), evaluate on held-out queries, export the artifact", _FIT),
    "evaluate": Stage("pipeline.stages.evaluate", "held-out agreement of raw vs calibrated scores (no export)", _FIT),
    "export": Stage("pipeline.stages.export", "fit on all rows and write the artifact (no cross-validation report)", _FIT),
    "check": Stage("pipeline.stages.check", "drift check: score a fresh sample now, compare with an artifact (exit 0 ok, 1 drift, 2 error)",
                   ("check",) + _SCORE + ("export",)),
    "align": Stage("pipeline.stages.align", "search the local scoring configuration that reproduces the API (template, "
                   "whitespace, instruction, max_length, dtype); --apply writes conf/local/aligned-<name>.yaml",
                   ("align",) + _SCORE),
    "params": Stage("pipeline.stages.params", "write the composed config to params.yaml (what DVC's Hydra composition writes)"),
}
