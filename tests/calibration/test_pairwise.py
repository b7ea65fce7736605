"""The rank objective's building blocks (pipeline/calibration/pairwise.py), checked against a brute-force
reimplementation: which document pairs are formed, and that the weights are the minimiser of the
documented loss (mean pairwise logistic loss + alpha/2 |w|^2, w >= 0) on the documented pairs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize

from pipeline.calibration.pairwise import PairwiseRankWeights, within_query_pairs


def _brute_pairs(groups) -> list[tuple[int, int]]:
    groups = list(groups)
    return [(a, b) for a, b in itertools.combinations(range(len(groups)), 2) if groups[a] == groups[b]]


def _reference_weights(Z, y, pairs, alpha):
    """The documented objective minimised from scratch, to tolerances far tighter than the fit's."""
    i, j = np.array(pairs).T
    keep = y[i] != y[j]
    i, j = i[keep], j[keep]
    D = (Z[i] - Z[j]) * np.sign(y[i] - y[j])[:, None]

    def loss(w):
        m = D @ w
        return np.mean(np.log1p(np.exp(-m))) + 0.5 * alpha * w @ w, -(D / (1 + np.exp(m))[:, None]).mean(0) + alpha * w

    k = Z.shape[1]
    res = minimize(
        loss,
        np.zeros(k),
        jac=True,
        method="L-BFGS-B",
        bounds=[(0, None)] * k,
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10_000},
    )
    return res.x


def _views(seed=1, n_queries=60, docs=6):
    """Two informative sources, a useless one and an inverted one; ties in the reference (rounded)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_queries), docs)
    r = rng.normal(size=groups.size)
    Z = np.column_stack(
        [
            r + rng.normal(0, 0.7, r.size),
            r + rng.normal(0, 1.2, r.size),
            rng.normal(size=r.size),
            -r + rng.normal(0, 1, r.size),
        ]
    )
    return Z, np.round(r, 1), groups


@pytest.mark.parametrize(
    "groups",
    [
        [2, 0, 2, 1, 0, 2, 3],  # singletons and pairs interleaved
        [1, 0] * 30 + [2] * 5 + [7],  # long interleaved groups: an unstable sort reorders them
        ["q2", "q1", "q2", "q1", "q3", "q3", "q3", "q1"],  # query ids need not be numbers
        list(np.random.default_rng(0).integers(0, 5, 120)),
    ],
)
def test_pairs_are_every_within_query_pair_once_earlier_row_first(groups):
    i, j = within_query_pairs(np.array(groups))
    assert i.dtype.kind == j.dtype.kind == "i"
    got = list(zip(i.tolist(), j.tolist()))
    assert all(a < b for a, b in got)  # "i before j in the table"
    assert sorted(got) == _brute_pairs(groups) and len(set(got)) == len(got)


@pytest.mark.parametrize("groups", [[], [4], [3, 1, 2, 0]])
def test_no_query_with_two_rows_gives_no_pairs(groups):
    i, j = within_query_pairs(np.array(groups, dtype=np.int64))
    assert i.shape == j.shape == (0,) and i.dtype == j.dtype == np.intp


@pytest.mark.parametrize("alpha", [1e-4, 0.05, 1.0])
def test_weights_are_the_constrained_minimiser_of_the_documented_loss(alpha):
    Z, y, groups = _views()
    est = PairwiseRankWeights(alpha=alpha).fit(Z, y, groups)
    want = _reference_weights(Z, y, _brute_pairs(groups), alpha)
    np.testing.assert_allclose(est.coef_, want, rtol=1e-4, atol=1e-5)
    assert est.coef_[2] == est.coef_[3] == 0.0 and est.coef_[0] > est.coef_[1] > 0
    # pairs the reference ties carry no information and are not counted
    assert est.n_pairs_ == sum(y[a] != y[b] for a, b in _brute_pairs(groups))


def test_default_strength_is_1e_4_and_inputs_of_any_numeric_dtype_are_accepted():
    Z, y, groups = _views(2)
    default = PairwiseRankWeights().fit(Z, y, groups).coef_
    np.testing.assert_allclose(default, _reference_weights(Z, y, _brute_pairs(groups), 1e-4), rtol=1e-4, atol=1e-5)
    # a 0/1 flag source and an integer graded reference (boolean arrays cannot be subtracted)
    flag, grade = Z[:, :1] > 0, np.round(2 * y).astype(int)
    as_float = PairwiseRankWeights().fit(flag.astype(float), grade.astype(float), groups).coef_
    np.testing.assert_array_equal(PairwiseRankWeights().fit(flag, grade, groups).coef_, as_float)
    np.testing.assert_array_equal(
        PairwiseRankWeights().fit(flag, grade > 0, groups).coef_,
        PairwiseRankWeights().fit(flag.astype(float), (grade > 0).astype(float), groups).coef_,
    )


def test_one_informative_pair_is_fitted_and_no_pair_gives_zero_weights():
    Z = np.array([[2.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    one = PairwiseRankWeights().fit(Z, np.array([1.0, 0.0, 3.0]), [0, 0, 1])
    assert one.n_pairs_ == 1 and one.coef_[0] > 0 and one.coef_[1] == 0.0
    for y, groups in [
        ([1.0, 1.0, 3.0], [0, 0, 1]),  # the only pair is a tie
        ([1.0, 0.0, 3.0], [0, 1, 2]),
    ]:  # no query has two rows
        none = PairwiseRankWeights().fit(Z, np.array(y), groups)
        assert none.n_pairs_ == 0
        np.testing.assert_array_equal(none.coef_, np.zeros(2))


def test_groups_are_required_and_lengths_must_agree():
    Z, y, groups = _views(3, n_queries=5)
    with pytest.raises(
        ValueError, match=r"^the rank objective needs the query groups \(pairs are formed within a query\)$"
    ):
        PairwiseRankWeights().fit(Z, y, None)
    longer = {"Z": np.vstack([Z, Z[:1]]), "y": np.r_[y, 0.0], "groups": np.r_[groups, 99]}
    for name, value in longer.items():  # one extra row in any one input is refused, not silently ignored
        args = {"Z": Z, "y": y, "groups": groups, name: value}
        with pytest.raises(ValueError, match="inconsistent numbers of samples"):
            PairwiseRankWeights().fit(args["Z"], args["y"], args["groups"])


def test_above_max_pairs_a_subset_without_repeats_is_used():
    """10 informative pairs, max_pairs=9: the fit is the minimiser on 9 distinct pairs (one left out),
    never a draw with repeats; the subset is reproducible and follows random_state."""
    rng = np.random.default_rng(7)
    groups = np.repeat(np.arange(10), 2)
    Z = rng.normal(size=(20, 2))
    y = rng.normal(size=20)
    pairs = _brute_pairs(groups)
    est = PairwiseRankWeights(alpha=0.1, max_pairs=9).fit(Z, y, groups)
    assert est.n_pairs_ == 9
    leave_one_out = [_reference_weights(Z, y, pairs[:d] + pairs[d + 1 :], 0.1) for d in range(10)]
    assert min(np.abs(est.coef_ - w).max() for w in leave_one_out) < 1e-5
    dropped = {
        s: int(
            np.argmin(
                [
                    np.abs(
                        PairwiseRankWeights(alpha=0.1, max_pairs=9, random_state=s).fit(Z, y, groups).coef_ - w
                    ).max()
                    for w in leave_one_out
                ]
            )
        )
        for s in range(6)
    }
    assert len(set(dropped.values())) > 1  # the seed decides which pair is left out
    again = PairwiseRankWeights(alpha=0.1, max_pairs=9, random_state=0).fit(Z, y, groups).coef_
    np.testing.assert_array_equal(est.coef_, again)  # random_state defaults to 0
    Z6, y6, g6 = _views(6)
    fits = [PairwiseRankWeights(max_pairs=300, **seed).fit(Z6, y6, g6).coef_ for seed in ({}, {}, {"random_state": 0})]
    np.testing.assert_array_equal(fits[0], fits[1])
    np.testing.assert_array_equal(fits[0], fits[2])
    # at max_pairs exactly, every pair is used
    np.testing.assert_allclose(
        PairwiseRankWeights(alpha=0.1, max_pairs=10).fit(Z, y, groups).coef_,
        _reference_weights(Z, y, pairs, 0.1),
        rtol=1e-4,
        atol=1e-5,
    )


def test_default_max_pairs_is_200_000():
    sizes = [632, 35, 5]  # 199,396 + 595 + 10 = 200,001 within-query pairs, all informative
    groups = np.repeat(np.arange(3), sizes)
    y = np.arange(groups.size, dtype=float)
    Z = (y + np.random.default_rng(0).normal(0, 50, y.size))[:, None]
    assert PairwiseRankWeights().fit(Z, y, groups).n_pairs_ == 200_000
