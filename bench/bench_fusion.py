"""Fusion for ranking: share of the known optimal fusion's rank gain reached on held-out queries.

Data with a known latent structure (:mod:`pipeline.calibration.synthetic`): two sources that are different
monotone shapes of one latent relevance plus independent noise of unequal size, a reference that
is a third shape. The best possible fusion (inverse-variance mean on the latent scale) is known,
so each fitted fusion is scored by

    gain share = (its per-query Spearman - best single source's) / (optimum's - best single's)

on a fresh, larger held-out sample, with the fitted model applied through its pickle-free spec
(the code ``load_calibrator`` runs). Baseline measured in the same run: the fusion of earlier
releases (``fusion.scale=raw fusion.objective=score``).

Targets (issue #9): mean gain share >= 0.90 in every scenario; pooled Pearson of the calibrated
prediction no more than 0.002 below the baseline's.

    python bench/bench_fusion.py [--seeds 5] [--train-queries 300] [--test-queries 2000]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from pipeline.calibration.calibrators import make_calibrator
from pipeline.calibration.fusion import NonNegativeFusion, ScoreCalibrationModel
from pipeline.calibration.metrics import pearson, per_query_stats
from pipeline.calibration.synthetic import latent_sample
from pipeline.core.console import wrapped
from pipeline.runtime.spec import compile_spec

#: (source shapes, their noise levels): unequal noise in every scenario
SCENARIOS = (
    (("probability", "cosine"), (0.35, 0.6)),
    (("probability", "exponential"), (0.6, 0.35)),
    (("saturated", "cosine"), (0.4, 0.55)),
    (("saturated", "probability"), (0.5, 0.3)),
    (("cubic", "probability"), (0.3, 0.5)),
)
#: name -> fusion settings; the first is the baseline
FUSIONS = {
    "earlier releases (raw, score)": dict(scale="raw", objective="score"),
    "default (calibrated, auto)": dict(scale="calibrated", objective="auto"),
    "calibrated, rank": dict(scale="calibrated", objective="rank"),
    "calibrated, score": dict(scale="calibrated", objective="score"),
    "type, rank": dict(scale="type", objective="rank"),
}


def rank_similarity(scores: np.ndarray, target: np.ndarray, groups: np.ndarray) -> float:
    return float(np.nanmean(per_query_stats(scores, target, groups, 3).rank["spearman"]))


def held_out(settings: dict, train, test, seed: int) -> tuple[float, float]:
    """(per-query Spearman, Pearson) on ``test`` of the model fitted on ``train``."""
    model = ScoreCalibrationModel(
        make_calibrator("auto", random_state=seed), NonNegativeFusion(random_state=seed, **settings), ["a", "b"]
    )
    model.fit(train.sources, train.target, groups=train.groups)
    apply, _ = compile_spec(json.loads(json.dumps(model.to_spec())))
    pred = apply(test.sources)
    return rank_similarity(pred, test.target, test.groups), pearson(pred, test.target)


def run_scenario(shapes, noise, seeds: int, train_queries: int, test_queries: int) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {name: {"spearman": [], "pearson": [], "gain": []} for name in FUSIONS}
    for seed in range(seeds):
        train = latent_sample(shapes, noise, n_queries=train_queries, seed=seed)
        test = latent_sample(shapes, noise, n_queries=test_queries, seed=10_000 + seed)
        single = max(rank_similarity(test.sources[:, j], test.target, test.groups) for j in range(len(shapes)))
        optimum = rank_similarity(test.optimal, test.target, test.groups)
        for name, settings in FUSIONS.items():
            rho, r = held_out(settings, train, test, seed)
            out[name]["spearman"].append(rho)
            out[name]["pearson"].append(r)
            out[name]["gain"].append((rho - single) / (optimum - single))
        out.setdefault("best single source", {"spearman": []})["spearman"].append(single)
        out.setdefault("known optimum", {"spearman": []})["spearman"].append(optimum)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--train-queries", type=int, default=300)
    parser.add_argument("--test-queries", type=int, default=2000)
    args = parser.parse_args()
    started = time.perf_counter()
    print(
        f"{args.seeds} seeds; fit on {args.train_queries} queries x 10 docs, held out on {args.test_queries} fresh queries"
    )
    print(
        wrapped(
            "rank sim: mean per-query Spearman with the reference; gain share: (fusion - best single source) / (known "
            "optimum - best single source), mean over seeds, [min] the worst seed; pearson: of the calibrated prediction; "
            "vs base: minus the earlier fusion's"
        )
    )
    met = True
    baseline = next(iter(FUSIONS))
    for shapes, noise in SCENARIOS:
        res = run_scenario(shapes, noise, args.seeds, args.train_queries, args.test_queries)
        title = " + ".join(f"{s} (noise {n})" for s, n in zip(shapes, noise))
        print(f"\n{title}")
        print(f"  {'fusion':<32} {'rank sim':>9} {'gain share':>11} {'[min]':>6} {'pearson':>8} {'vs base':>8}")
        for name in ("best single source", "known optimum"):
            print(f"  {name:<32} {np.mean(res[name]['spearman']):>9.4f}")
        base_r = np.mean(res[baseline]["pearson"])
        for name in FUSIONS:
            gain, r = np.array(res[name]["gain"]), np.mean(res[name]["pearson"])
            print(
                f"  {name:<32} {np.mean(res[name]['spearman']):>9.4f} {gain.mean():>11.2f} {gain.min():>6.2f} "
                f"{r:>8.4f} {r - base_r:>+8.4f}"
            )
        default = next(n for n in FUSIONS if n.startswith("default"))
        gain_ok = np.mean(res[default]["gain"]) >= 0.90
        pearson_ok = np.mean(res[default]["pearson"]) >= base_r - 0.002
        met &= bool(gain_ok and pearson_ok)
        print(
            f"  default: gain share >= 0.90 {'met' if gain_ok else 'MISSED'}; "
            f"pearson within 0.002 of baseline {'met' if pearson_ok else 'MISSED'}"
        )
    print(f"\ntarget (every scenario): {'met' if met else 'MISSED'} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
