"""The weight bootstrap's pieces (pipeline/calibration/fusion_bootstrap.py) against their formulas,
recomputed here by brute force over every informative pair: the linearised rank step and its
pair-subsample noise, the per-resample standard deviations, the weights' normalisation. The
end-to-end agreement with full refits is tests/fit/test_fast_paths.py; these pin the arithmetic
(written against the mutants that survived ``python mutation/run_mutmut.py
pipeline/calibration/fusion_bootstrap.py``)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration import fusion_bootstrap
from pipeline.calibration.fusion import NonNegativeFusion
from pipeline.calibration.fusion_bootstrap import NOISE_DRAWS, FusionWeightBootstrap, _LinearisedRank
from pipeline.calibration.pairwise import within_query_pairs
from pipeline.calibration.synthetic import latent_sample


@pytest.fixture
def fitted():  # per test: mutation testing maps the constructor to the tests that build it
    s = latent_sample(("probability", "cosine"), (0.4, 0.7), n_queries=60, docs=(3, 9), seed=11)
    fusion = NonNegativeFusion(objective="rank").fit(s.sources, s.target, groups=s.groups)
    boot = FusionWeightBootstrap(fusion, s.sources, s.target, s.groups)
    return s, fusion, boot


def newton_step(boot, fusion, groups, counts, std, max_pairs, rng, *, listed=True, v0=None):
    """The linearised refit by its formula, summed over every informative pair one by one."""
    i, j = within_query_pairs(groups)
    keep = boot.y[i] != boot.y[j]
    i, j = i[keep], j[keep]
    w = counts[boot.layout[0][i]]
    D = (boot.M[i] - boot.M[j]) * np.sign(boot.y[i] - boot.y[j])[:, None]
    v0 = fusion.coef_ / fusion.scale_ if v0 is None else v0
    wrong = 1.0 / (1.0 + np.exp(D @ v0))
    n = w.sum()
    alpha = boot.rank.alpha
    grad = (w * -wrong) @ D / n + alpha * std**2 * v0
    hess = (D.T * (w * wrong * (1 - wrong))) @ D / n + alpha * np.diag(std**2)
    v = v0 - np.linalg.solve(hess, grad)
    if n > max_pairs:
        mean_grad = (w * -wrong) @ D / n
        spread = (D.T * (w * wrong**2)) @ D / n - np.outer(mean_grad, mean_grad)
        inverse = np.linalg.inv(hess)
        cov = inverse @ spread @ inverse * ((1 - max_pairs / n) if listed else 1.0) / max_pairs
        v = v + rng.multivariate_normal(np.zeros(v.size), (cov + cov.T) / 2, size=NOISE_DRAWS, method="eigh")
    return np.maximum(v * std, 0.0)


def counts_of(seed, n_queries=60):
    return np.bincount(np.random.default_rng(seed).integers(0, n_queries, n_queries), minlength=n_queries).astype(float)


@pytest.mark.parametrize("max_pairs", [10**9, 150])
def test_the_linearised_refit_is_one_newton_step_plus_the_subsample_noise(fitted, max_pairs, monkeypatch):
    s, fusion, boot = fitted
    linear = _LinearisedRank(boot, s.groups)
    monkeypatch.setattr(boot.rank, "max_pairs", max_pairs)
    for seed in range(3):
        counts = counts_of(seed)
        std = boot._std(counts)[1]
        got = linear.coef(counts, std, np.random.default_rng(seed))
        expected = newton_step(boot, fusion, s.groups, counts, std, max_pairs, np.random.default_rng(seed))
        np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10)
        assert got.shape == ((NOISE_DRAWS, 2) if max_pairs < 1000 else (2,))


def test_without_the_finite_population_factor_when_the_refit_samples_with_replacement(fitted, monkeypatch):
    s, fusion, boot = fitted
    linear = _LinearisedRank(boot, s.groups)
    monkeypatch.setattr(fusion_bootstrap, "ENUMERATE_MAX_PAIRS", 0)  # the refit would not list the pairs
    monkeypatch.setattr(boot.rank, "max_pairs", 150)
    counts = counts_of(4)
    std = boot._std(counts)[1]
    got = linear.coef(counts, std, np.random.default_rng(1))
    expected = newton_step(boot, fusion, s.groups, counts, std, 150, np.random.default_rng(1), listed=False)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10)


def test_the_noise_without_a_generator_is_the_fusions_seed(fitted, monkeypatch):
    s, fusion, boot = fitted
    linear = _LinearisedRank(boot, s.groups)
    monkeypatch.setattr(boot.rank, "max_pairs", 150)
    counts = counts_of(2)
    std = boot._std(counts)[1]
    seeded = linear.coef(counts, std, np.random.default_rng(fusion.random_state))
    np.testing.assert_array_equal(linear.coef(counts, std, None), seeded)
    np.testing.assert_array_equal(linear.coef(counts, std, None), seeded)


def test_no_pairs_or_no_positive_optimum_gives_no_weight_and_then_equal_weights(fitted):
    s, _, boot = fitted
    linear = _LinearisedRank(boot, s.groups)
    std = np.ones(2)
    with np.errstate(all="ignore"):
        assert linear.coef(np.zeros(60), std, None).tolist() == [0.0, 0.0]  # an empty resample
    linear.v0 = np.zeros(2)
    assert linear.coef(counts_of(0), std, None).tolist() == [0.0, 0.0]
    previous, boot.linear = boot.linear, linear
    try:
        np.testing.assert_array_equal(boot.weights(counts_of(0), np.random.default_rng(0)), [[0.5, 0.5]])
    finally:
        boot.linear = previous


def test_the_listed_refit_of_an_empty_resample_gives_equal_weights(fitted):
    _, _, boot = fitted
    assert boot.linear is None  # a small table: every pair listed
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(boot.weights(np.zeros(60), np.random.default_rng(0)), [[0.5, 0.5]])


def test_pairs_per_query_and_the_standard_deviations_per_resample(fitted):
    s, _, boot = fitted
    sizes = np.bincount(s.groups)
    np.testing.assert_array_equal(boot.pairs_per_query, sizes * (sizes - 1) / 2)
    counts = counts_of(7)
    rows = np.repeat(np.arange(s.groups.size), counts[s.groups].astype(int))
    n, std = boot._std(counts)
    assert n == rows.size
    np.testing.assert_allclose(std, boot.M[rows].std(axis=0), rtol=1e-9)


def test_a_source_without_spread_in_the_resample_has_standard_deviation_one():
    groups = np.repeat(np.arange(4), 3)
    X = np.column_stack([np.r_[0.2, 0.2, 0.2, np.linspace(0.1, 0.9, 9)], np.linspace(0, 1, 12)])
    y = np.linspace(0, 1, 12)
    fusion = NonNegativeFusion(objective="rank").fit(X, y, groups=groups)
    boot = FusionWeightBootstrap(fusion, X, y, groups)
    _, std = boot._std(np.array([2.0, 0, 0, 0]))  # only query 0, whose first source is one value
    assert std[0] == 1.0 and std[1] > 0 and std[1] != 1.0


def test_a_small_positive_optimum_still_takes_the_newton_step(fitted, monkeypatch):
    """Only an optimum with no positive coefficient at all gives up: coefficients below 1 count."""
    s, fusion, boot = fitted
    v0 = np.array([0.3, 0.05])
    monkeypatch.setattr(fusion, "coef_", v0 * fusion.scale_)  # the sums are taken at this optimum
    linear = _LinearisedRank(boot, s.groups)
    counts = counts_of(5)
    std = boot._std(counts)[1]
    got = linear.coef(counts, std, None)
    expected = newton_step(boot, fusion, s.groups, counts, std, 10**9, None, v0=v0)
    np.testing.assert_allclose(got, expected, rtol=1e-7, atol=1e-10)
    assert got.max() > 0
