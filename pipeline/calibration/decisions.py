"""Keep/drop decisions at thresholds: does the calibrated local score cut where the API cuts?

Pipelines that swap a hosted reranker for a local one rank, mix, and **cut at a threshold**
(keep what the API scored above 0.5). For a threshold ``t`` on the reference scale the decisions
are ``{score >= t}`` and ``{reference >= t}``; their agreement, per threshold:

* ``accuracy``  -- share of pairs where both decide alike;
* ``precision`` -- of the pairs the local side keeps, the share the reference keeps too;
* ``recall``    -- of the pairs the reference keeps, the share the local side keeps too;
* ``identical`` -- share of queries whose kept set is exactly the reference's.

All four are ratios of per-query counts, so the bootstrap over queries is the one every other
figure of the report uses (:func:`pipeline.calibration.metrics.ratio_intervals`): the same
resamples, one matrix product.

A *transferred threshold* is the raw-score cut that best reproduces the reference's decision at
``t`` (:func:`transfer_threshold`): a user who never applies the calibrator can still cut the raw
scores where the API would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.calibration.groups import query_codes
from pipeline.calibration.metrics import MetricValue, ratio_intervals

#: the figures of one threshold, in report order
DECISION_METRICS = ("accuracy", "precision", "recall", "identical")
#: the default thresholds on a probability-valued reference (else the reference's quantiles at them)
DEFAULT_LEVELS = (0.1, 0.3, 0.5, 0.7, 0.9)


def default_thresholds(reference: np.ndarray) -> list[float]:
    """:data:`DEFAULT_LEVELS` when the reference lies in [0, 1] (a probability), else the
    reference's quantiles at those levels (an unbounded score has no natural 0.5).

    Parameters
    ----------
    reference : ndarray of shape (n_samples,)
        The reference scores.

    Returns
    -------
    list of float
        Thresholds on the reference's scale, increasing.
    """
    reference = np.asarray(reference, dtype=np.float64)
    if reference.size and reference.min() >= 0.0 and reference.max() <= 1.0:
        return list(DEFAULT_LEVELS)
    return [float(v) for v in np.quantile(reference, DEFAULT_LEVELS)]


@dataclass
class DecisionCounts:
    """Per query and threshold: pairs, pairs kept by both, by the local side, by the reference,
    and whether the kept sets are identical; each of shape (Q, T)."""

    thresholds: np.ndarray  # (T,)
    n: np.ndarray  # (Q,)
    both: np.ndarray
    local: np.ndarray
    reference: np.ndarray
    identical: np.ndarray


def decision_counts(
    score: np.ndarray, reference: np.ndarray, groups: np.ndarray, thresholds, *, local_thresholds=None
) -> DecisionCounts:
    """Count the decisions of ``score >= local_thresholds[i]`` (default: the same ``thresholds``)
    against ``reference >= thresholds[i]``, per query (codes in sorted order of the ids).

    Parameters
    ----------
    score : ndarray of shape (n_samples,) or (n_samples, T)
        The local side: calibrated scores, or raw scores with ``local_thresholds``; one column
        per threshold when each has its own scores.
    reference : ndarray of shape (n_samples,)
        The reference scores.
    groups : ndarray of shape (n_samples,)
        Query id of each pair.
    thresholds : sequence of float
        Cuts on the reference scale.
    local_thresholds : sequence of float, optional
        Cuts applied to ``score`` instead (transferred thresholds); a NaN cut keeps nothing.

    Returns
    -------
    DecisionCounts
        The per-query counts.
    """
    score = np.asarray(score, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    cuts = np.asarray(thresholds, dtype=np.float64)
    local_cuts = cuts if local_thresholds is None else np.asarray(local_thresholds, dtype=np.float64)
    codes = query_codes(groups)
    n_q = int(codes.max()) + 1 if codes.size else 0
    kept_local = (score if score.ndim == 2 else score[:, None]) >= local_cuts[None, :]  # NaN cut: False everywhere
    kept_ref = reference[:, None] >= cuts[None, :]

    def per_query(mask: np.ndarray) -> np.ndarray:
        return np.stack([np.bincount(codes, weights=mask[:, i], minlength=n_q) for i in range(cuts.size)], axis=1)

    return DecisionCounts(
        thresholds=cuts,
        n=np.bincount(codes, minlength=n_q).astype(np.float64),
        both=per_query(kept_local & kept_ref),
        local=per_query(kept_local),
        reference=per_query(kept_ref),
        identical=(per_query(kept_local != kept_ref) == 0).astype(np.float64),
    )


def decision_agreement(
    counts: DecisionCounts, *, n_bootstrap: int, confidence: float, seed: int
) -> list[dict[str, MetricValue]]:
    """Per threshold, :data:`DECISION_METRICS` with percentile-bootstrap intervals over queries
    (the same resamples as every other figure for the same ``seed``).

    Parameters
    ----------
    counts : DecisionCounts
        From :func:`decision_counts`.
    n_bootstrap : int
        Resamples of whole queries (0: no intervals).
    confidence : float
        Coverage of the intervals.
    seed : int
        Seed of the resamples.

    Returns
    -------
    list of dict
        One ``{metric: MetricValue}`` per threshold; a ratio with nothing to divide by (no pair
        kept) is NaN.
    """
    return decision_agreements([counts], n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)[0]


def decision_agreements(
    counts: Sequence[DecisionCounts], *, n_bootstrap: int, confidence: float, seed: int
) -> list[list[dict[str, MetricValue]]]:
    """:func:`decision_agreement` for several sets of counts of the same queries (the calibrated
    score and the raw score at its cut) in one pass over the resamples: at 50k queries, reading
    the draws costs as much as the products.

    Parameters
    ----------
    counts : sequence of DecisionCounts
        Counts of the same queries (same ``n``).
    n_bootstrap : int
        Resamples of whole queries (0: no intervals).
    confidence : float
        Coverage of the intervals.
    seed : int
        Seed of the resamples.

    Returns
    -------
    list of list of dict
        One :func:`decision_agreement` result per set of counts.
    """
    n_q = counts[0].n.shape[0] if counts else 0
    ratios = {}
    for k, c in enumerate(counts):
        for i in range(c.thresholds.size):
            agree = c.n - c.local[:, i] - c.reference[:, i] + 2 * c.both[:, i]
            ratios[(k, i, "accuracy")] = (agree, c.n)
            ratios[(k, i, "precision")] = (c.both[:, i], c.local[:, i])
            ratios[(k, i, "recall")] = (c.both[:, i], c.reference[:, i])
            ratios[(k, i, "identical")] = (c.identical[:, i], np.ones(n_q))
    # every threshold of every set in one pass over the resamples (one matrix product per block)
    figures = ratio_intervals(ratios, n_q, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    return [
        [{m: figures[(k, i, m)] for m in DECISION_METRICS} for i in range(c.thresholds.size)]
        for k, c in enumerate(counts)
    ]


def transfer_threshold(raw: np.ndarray, reference: np.ndarray, threshold: float) -> float:
    """The raw-score cut ``c`` whose decisions ``raw >= c`` agree most often with
    ``reference >= threshold``: the midpoint between the two raw values around the best cut (the
    lowest best cut when several tie), ``-inf`` when keeping everything is best, ``inf`` when
    keeping nothing is.

    Parameters
    ----------
    raw : ndarray of shape (n_samples,)
        The local side's raw (uncalibrated, or pre-calibration fused) scores.
    reference : ndarray of shape (n_samples,)
        The reference scores.
    threshold : float
        The cut on the reference scale.

    Returns
    -------
    float
        The cut on the raw scale.
    """
    return transfer_thresholds(raw, reference, [threshold])[0]


def transfer_thresholds(raw: np.ndarray, reference: np.ndarray, thresholds) -> list[float]:
    """:func:`transfer_threshold` for several thresholds, sorting the raw scores once.

    Parameters
    ----------
    raw : ndarray of shape (n_samples,)
        The raw scores.
    reference : ndarray of shape (n_samples,)
        The reference scores.
    thresholds : sequence of float
        Cuts on the reference scale.

    Returns
    -------
    list of float
        One raw cut per threshold.
    """
    raw = np.asarray(raw, dtype=np.float64)
    order = np.argsort(raw, kind="stable")
    return _sorted_cuts(raw[order], np.asarray(reference, dtype=np.float64)[order], thresholds)


def held_out_cuts(raw: np.ndarray, reference: np.ndarray, thresholds, splits) -> tuple[np.ndarray, list[float]]:
    """Each row's transferred cuts from the training rows of its own fold, and the cuts from every row.

    The table is sorted once: a fold's stable sort of its training rows is the whole table's
    stable order with the other rows left out, so each fold is a sequential filter of the sorted
    scores instead of a sort (and instead of gathering a million rows in random order again,
    which costs more than the arithmetic once the table outgrows the cache).

    Parameters
    ----------
    raw : ndarray of shape (n_samples,)
        The raw scores.
    reference : ndarray of shape (n_samples,)
        The reference scores.
    thresholds : sequence of float
        Cuts on the reference scale.
    splits : iterable of (train, test) index arrays
        Cross-validation folds; each row in one test fold.

    Returns
    -------
    held_out : ndarray of shape (n_samples, n_thresholds)
        The cuts the fold that holds a row out transferred (equal to
        ``transfer_thresholds(raw[train], reference[train], thresholds)``).
    cuts : list of float
        ``transfer_thresholds(raw, reference, thresholds)``.
    """
    raw = np.asarray(raw, dtype=np.float64)
    order = np.argsort(raw, kind="stable")
    values, ref = raw[order], np.asarray(reference, dtype=np.float64)[order]
    position = np.empty(raw.size, dtype=np.intp)  # where each row sits in the sorted order
    position[order] = np.arange(raw.size)
    held_out = np.full((raw.size, len(thresholds)), np.nan)
    in_training = np.empty(raw.size, dtype=bool)
    for train, test in splits:
        in_training[:] = False
        in_training[position[train]] = True
        held_out[test] = _sorted_cuts(values[in_training], ref[in_training], thresholds)
    return held_out, _sorted_cuts(values, ref, thresholds)


def _sorted_cuts(values: np.ndarray, ref: np.ndarray, thresholds) -> list[float]:
    """The cuts of :func:`transfer_thresholds` from raw scores sorted ascending (stable) and the
    reference in the same order.

    A cut before position i (i = 0..n) drops rows < i and keeps rows >= i; with c_i the rows below
    i that the reference keeps, it agrees on (K - c_i) + (i - c_i) rows (K: all the reference
    keeps), so the best cut maximises i - 2 c_i over the cuts between distinct values. Every
    threshold reuses the same int32 buffers: at a million rows, fresh int64 temporaries per
    threshold and fold cost more in page faults than the arithmetic (the phase grew faster than
    the table)."""
    n = values.size
    # cut positions i in 1..n-1 between distinct values, and n (keep nothing); 0 is the baseline
    inner = np.flatnonzero(values[1:] != values[:-1]).astype(np.int32)
    ends = np.append(inner, np.int32(n - 1)) if n else inner  # c_i = prefix[i - 1]
    positions = ends + np.int32(1)
    kept = np.empty(n, dtype=bool)
    prefix = np.empty(n, dtype=np.int32)
    objective = np.empty(ends.size, dtype=np.int32)
    out = []
    for t in thresholds:
        np.greater_equal(ref, t, out=kept)
        np.cumsum(kept, dtype=np.int32, out=prefix)
        np.take(prefix, ends, out=objective)
        objective *= -2
        objective += positions
        j = int(np.argmax(objective)) if objective.size else -1
        best = 0 if j < 0 or objective[j] <= 0 else int(positions[j])  # ties: the lowest cut (0 first)
        if best == 0:
            out.append(float("-inf"))
        elif best == n:
            out.append(float("inf"))
        else:
            out.append(float((values[best - 1] + values[best]) / 2.0))
    return out


def as_dict(thresholds, calibrated, raw, raw_cuts) -> list[dict[str, Any]]:
    """The report's ``decisions`` block: per threshold, the calibrated figures, the raw figures at
    the transferred threshold, and that threshold."""
    out = []
    for t, cal, unc, cut in zip(thresholds, calibrated, raw, raw_cuts):
        out.append(
            {
                "threshold": float(t),
                "calibrated": {k: v.as_dict() for k, v in cal.items()},
                "raw_at_transferred": {k: v.as_dict() for k, v in unc.items()},
                "transferred_threshold": None if not np.isfinite(cut) else float(cut),
            }
        )
    return out
