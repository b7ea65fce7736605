"""``python -m pipeline demo-train``: train the demo reranker and report how well it ranks.

Trains :mod:`pipeline.demo.model` on ``demo.train_dataset`` and writes the revisions ``v1`` and
``v2`` under ``demo.model_dir``. Then each revision is loaded through the regular scorer (the
code that loads Qwen3-Reranker-4B) and scores the labelled calibration queries, whose query
strings never occur in training: ``demo.model_reports`` gets their NDCG@10 next to a random
order's, with bootstrap intervals (``summary.json``, ``report.json``), and the run fails if v1's interval does not clear the random
one (a model without signal would make the rest of the demo meaningless).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from pipeline.config.demo import DemoConfig
from pipeline.core.errors import PipelineError
from pipeline.core.files import atomic_write_json
from pipeline.data.dataset import load_dataset


class TrainingError(PipelineError, RuntimeError):
    pass


def run_training(demo: DemoConfig, seed: int) -> int:
    from tqdm.auto import tqdm

    from pipeline.demo.model import REVISIONS, train_revisions

    d = demo
    train = load_dataset(d.train_dataset, key="demo.train_dataset")
    calibration = load_dataset(d.calibration, key="demo.calibration")
    total = d.train.steps + d.train.extra_steps_v2
    print(
        f"training the demo reranker on {train.path}: {len(train.queries)} queries, {train.n_pairs} pairs, "
        f"{total} updates (v1 after {d.train.steps})",
        flush=True,
    )
    # a line every 15 s when the output is a log file rather than a terminal
    with tqdm(
        total=total, desc="train", unit="step", file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 15.0
    ) as bar:

        def progress(step: int, loss: float) -> None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

        started = time.perf_counter()
        summary = train_revisions(train, d.model_dir, d.train, progress)
    print(f"trained in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    report = {
        "model_dir": d.model_dir,
        "training": summary,
        "calibration_dataset": str(calibration.path),
        "revisions": {},
    }
    for revision in REVISIONS:
        report["revisions"][revision] = _quality(Path(d.model_dir) / revision, calibration, seed)
    atomic_write_json(Path(d.model_reports) / "report.json", report)
    atomic_write_json(Path(d.model_reports) / "summary.json", _summary(report))
    _print(report)
    v1 = report["revisions"]["v1"]
    if not v1["separated"]:
        message = (
            f"v1's NDCG@10 interval [{v1['model']['ci_low']}, {v1['model']['ci_high']}] does not clear "
            f"a random order's ([{v1['random']['ci_low']}, {v1['random']['ci_high']}]): train longer "
            f"(demo.train.steps) or put more signal in the data"
        )
        if d.require_signal:
            raise TrainingError(message)
        print(f"WARNING: {message}", file=sys.stderr)
    return 0


def _quality(directory: Path, calibration, seed: int) -> dict:
    from pipeline.demo.model import ranking_quality
    from pipeline.scorers import LocalScorerConfig, QueryGroup, build_scorer

    started = time.perf_counter()
    with build_scorer(LocalScorerConfig(model=str(directory), device="cpu", batch_size=32)) as scorer:
        scores = np.concatenate(
            scorer.score([QueryGroup(q.text, [d.text for d in q.documents]) for q in calibration.queries])
        )
        revision = scorer.fingerprint()["revision"]
    labels = np.array([d.label for q in calibration.queries for d in q.documents], dtype=np.float64)
    groups = np.repeat(np.arange(len(calibration.queries)), [len(q.documents) for q in calibration.queries])
    out = ranking_quality(scores, labels, groups, k=10, seed=seed)
    out["revision"] = revision
    print(
        f"scored the calibration queries with {directory.name} in {time.perf_counter() - started:.1f}s", file=sys.stderr
    )
    return out


def _summary(report: dict) -> dict:
    """Headline figures for ``dvc metrics show``: NDCG@10 of each revision and of a random order
    (the intervals and the training details are in report.json)."""
    out = {f"ndcg10_{rev}": q["model"]["ndcg"] for rev, q in report["revisions"].items()}
    out["ndcg10_random_order"] = report["revisions"]["v1"]["random"]["ndcg"]
    return out


def _print(report: dict) -> None:
    print(
        f"NDCG@10 on the {report['revisions']['v1']['queries']} labelled calibration queries (95% bootstrap intervals over queries):"
    )
    for revision, q in report["revisions"].items():
        m, r = q["model"], q["random"]
        print(
            f"  {revision}: {m['ndcg']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]   random order: "
            f"{r['ndcg']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]   {q['revision'][:19]}..."
        )
    print(f"wrote {report['model_dir']}/v1, /v2")
