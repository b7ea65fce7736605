"""Query codes: each pair's query as an integer 0..Q-1, the one way every estimator groups rows.

Metrics, fusion, the pairwise objective, subsampling and decisions all group pairs by query;
they all number queries in sorted order of the ids (what ``np.unique(..., return_inverse=True)``
gives), so per-query arrays line up between them. The table already hands out integer codes;
for those the numbering takes one ``bincount`` instead of a sort of a million ids.
"""

from __future__ import annotations

import numpy as np


def query_codes(groups) -> np.ndarray:
    """Dense query codes in sorted order of the ids: ``np.unique(groups, return_inverse=True)[1]``.

    Parameters
    ----------
    groups : array-like of shape (n_samples,)
        Query id of each pair (any sortable ids; non-negative integers take the fast path).

    Returns
    -------
    ndarray of shape (n_samples,)
        Integer codes 0..Q-1.
    """
    groups = np.asarray(groups).ravel()
    if groups.dtype.kind in "iu" and groups.size and groups.min() >= 0 and groups.max() < 4 * groups.size + 1024:
        present = np.bincount(groups) > 0
        return (np.cumsum(present) - 1)[groups]
    return np.unique(groups, return_inverse=True)[1].ravel()
