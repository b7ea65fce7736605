"""query_codes numbers queries exactly as np.unique's inverse does, on its fast path and off it."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.calibration.groups import query_codes


@pytest.mark.parametrize(
    "groups",
    [
        np.array([5, 5, 2, 9, 2, 0]),  # gaps in the ids
        np.array([3, 1, 2], dtype=np.uint16),
        np.array([7]),
        np.array([-4, 2, -4, 0]),  # negative: the sort path
        np.array([10**12, 3, 10**12]),  # ids far above the row count: the sort path
        np.array([1035, 0, 1035]),  # just under the fast path's bound (4 * rows + 1024)
        np.array([1036, 0, 1036]),  # at it: the sort path
        np.array(["q2", "q10", "q2", "q1"]),
        np.array([[1], [0], [1]]),  # a column
        np.random.default_rng(0).integers(0, 5000, 20000),
    ],
)
def test_codes_are_np_uniques_inverse(groups):
    codes = query_codes(groups)
    np.testing.assert_array_equal(codes, np.unique(groups, return_inverse=True)[1].ravel())
    assert codes.shape == (groups.size,) and codes.dtype.kind == "i"


def test_no_groups_no_codes():
    assert query_codes(np.array([], dtype=np.int64)).size == 0


def test_integer_codes_are_numbered_without_a_sort(monkeypatch):
    """The table's codes (0..Q-1, or ids with gaps from 0 up) take the bincount path: a
    million-row sort per call was what this module exists to avoid."""
    groups = np.array([0, 3, 3, 1, 0, 7])
    expected = np.unique(groups, return_inverse=True)[1]

    def no_sort(*args, **kwargs):
        raise AssertionError("np.unique called")

    monkeypatch.setattr(np, "unique", no_sort)
    np.testing.assert_array_equal(query_codes(groups), expected)
    np.testing.assert_array_equal(query_codes(groups.astype(np.uint32)), expected)
