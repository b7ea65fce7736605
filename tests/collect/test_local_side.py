"""collect's local side on its own: which pairs are pending, the guard every scored unit of work
passes before it reaches the cache (shared by the in-process and the Ray path), and the
in-process loop (batches, one cache transaction each, stop between batches, progress). A
scorer and a config written by hand; milliseconds. These are the tests ``make mutate`` runs
against pipeline/collect/local_side.py and units.py; tests/collect/test_collect.py runs the whole stage."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from pipeline.collect import local_side
from pipeline.collect.local_side import score_in_process
from pipeline.collect.sources import CollectError, SourceState
from pipeline.collect.stage import score_local
from pipeline.collect.units import checked_items, pending_groups
from pipeline.core.cache import ScoreCache, pair_key

GROUPS = [(f"query {q}", [f"doc {q}.{j}" for j in range(3)]) for q in range(5)]


def _source(pending: list[list[int]], scorer=None) -> SourceState:
    return SourceState(
        column="local",
        kind="local",
        fingerprint={"model": "m"},
        hash="h" * 16,
        score_type="probability",
        pending=pending,
        scorer=scorer,
    )


def _cfg(per_batch: int = 2, progress: bool = False):
    return SimpleNamespace(collect=SimpleNamespace(local_groups_per_batch=per_batch, progress=progress))


class LengthScorer:
    """Scores a document by its length / 100; records the groups of every call; ``progress``
    is told about the first document of each group only (a partial report)."""

    def __init__(self, on_call=None) -> None:
        self.calls: list[list[str]] = []
        self.on_call = on_call

    def score(self, groups, progress=None):
        self.calls.append([g.query for g in groups])
        if self.on_call is not None:
            self.on_call(len(self.calls))
        out = []
        for g in groups:
            out.append(np.array([len(d) / 100 for d in g.documents]))
            if progress is not None:
                progress(1)
        return out


class RecordingBar:
    def __init__(self) -> None:
        self.updates: list[int] = []
        self.closed = False

    def update(self, n: int) -> None:
        self.updates.append(n)

    def close(self) -> None:
        self.closed = True


# --- what is pending --------------------------------------------------------------------------


def test_pending_groups_are_the_chunks_queries_with_their_pending_documents_only():
    src = _source([[0, 2], [], [1], [0, 1, 2], [2]])
    assert pending_groups(GROUPS, src, [3, 0, 4]) == [
        ("query 3", ["doc 3.0", "doc 3.1", "doc 3.2"]),
        ("query 0", ["doc 0.0", "doc 0.2"]),
        ("query 4", ["doc 4.2"]),
    ]


# --- the guard --------------------------------------------------------------------------------


def test_a_good_unit_of_work_becomes_cache_items_keyed_by_pair():
    batch = [("q1", ["a", "b"]), ("q2", ["c"])]
    items = checked_items("local", [4, 9], batch, [np.array([0.25, 0.5], dtype=np.float32), [1]])
    assert items == [(pair_key("q1", "a"), 0.25), (pair_key("q1", "b"), 0.5), (pair_key("q2", "c"), 1.0)]
    assert all(type(v) is float for _, v in items)


@pytest.mark.parametrize(
    "bad",
    [
        [0.1, float("nan"), 0.3],  # NaN
        [0.1, float("inf"), 0.3],  # inf
        [0.1, -float("inf"), 0.3],
        [0.1, 0.2],  # one too few
        [0.1, 0.2, 0.3, 0.4],  # one too many
        [[0.1, 0.2, 0.3]],  # the right count, the wrong shape
    ],
)
def test_a_bad_score_array_for_one_group_is_an_error_naming_the_column_and_group(bad):
    batch = [("q1", ["a", "b", "c"]), ("q2", ["d", "e", "f"])]
    with pytest.raises(CollectError, match=r"^reranker_b: scorer returned a bad score array for query group 7$"):
        checked_items("reranker_b", [3, 7], batch, [[0.1, 0.2, 0.3], bad])


@pytest.mark.parametrize("n_results", [1, 3])
def test_a_scorer_that_returns_another_number_of_groups_is_an_error(n_results):
    batch = [("q1", ["a"]), ("q2", ["b"])]
    with pytest.raises(CollectError, match=rf"^local: scorer returned {n_results} groups for 2$"):
        checked_items("local", [0, 1], batch, [[0.5]] * n_results)


# --- the in-process loop ----------------------------------------------------------------------


def test_in_process_scores_every_pending_pair_in_batches_of_groups(tmp_path):
    scorer = LengthScorer()
    src = _source([[0, 1, 2], [], [2], [0, 2], [1]], scorer)
    src.elapsed_s = 5.0
    score_in_process(_cfg(per_batch=2), GROUPS, src, tmp_path / "c.sqlite", threading.Event(), 0)
    assert scorer.calls == [["query 0", "query 2"], ["query 3", "query 4"]]  # the empty group is skipped
    assert src.scored == 7 and 5.0 < src.elapsed_s < 65.0  # the run's own seconds added
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        assert cache.count(src.hash) == 7
        got = cache.get_many(src.hash, [pair_key("query 3", "doc 3.2"), pair_key("query 3", "doc 3.1")])
    assert got == {pair_key("query 3", "doc 3.2"): len("doc 3.2") / 100}  # only pending pairs were scored


@pytest.mark.parametrize("per_batch, calls", [(1, 5), (0, 5), (-3, 5), (3, 2), (10, 1)])
def test_groups_per_call_is_at_least_one(tmp_path, per_batch, calls):
    scorer = LengthScorer()
    src = _source([[0], [1], [2], [0], [1]], scorer)
    score_in_process(_cfg(per_batch=per_batch), GROUPS, src, tmp_path / "c.sqlite", threading.Event(), 0)
    assert len(scorer.calls) == calls and src.scored == 5


def test_a_stop_between_batches_keeps_what_was_stored(tmp_path):
    stop = threading.Event()
    scorer = LengthScorer(on_call=lambda n: stop.set() if n == 1 else None)
    src = _source([[0, 1], [0], [0], [0]], scorer)
    score_in_process(_cfg(per_batch=2), GROUPS, src, tmp_path / "c.sqlite", stop, 0)  # returns, never raises
    assert len(scorer.calls) == 1 and src.scored == 3
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        assert cache.count(src.hash) == 3  # the first batch's transaction


def test_a_stop_before_the_first_batch_scores_nothing(tmp_path):
    stop = threading.Event()
    stop.set()
    scorer = LengthScorer()
    src = _source([[0], [0]], scorer)
    score_in_process(_cfg(), GROUPS, src, tmp_path / "c.sqlite", stop, 0)
    assert scorer.calls == [] and src.scored == 0


def test_a_bad_batch_stores_nothing_of_it_and_the_error_propagates(tmp_path):
    class NaNOnSecondCall(LengthScorer):
        def score(self, groups, progress=None):
            out = super().score(groups, progress)
            if len(self.calls) == 2:
                out[0][0] = np.nan
            return out

    src = _source([[0], [0], [0], [0]], NaNOnSecondCall())
    src.column = "reranker_b"
    with pytest.raises(CollectError, match=r"^reranker_b: scorer returned a bad score array for query group 2$"):
        score_in_process(_cfg(per_batch=2), GROUPS, src, tmp_path / "c.sqlite", threading.Event(), 0)
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        assert cache.count(src.hash) == 2
    assert src.scored == 2


def test_progress_counts_every_pair_once_whatever_the_scorer_reports(tmp_path, monkeypatch):
    made = []

    def fake_bar(total, desc, position, enabled):
        made.append((total, desc, position, enabled))
        return bars.append(RecordingBar()) or bars[-1]

    bars: list[RecordingBar] = []
    monkeypatch.setattr(local_side, "bar", fake_bar)
    src = _source([[0, 1, 2], [0, 1], [2]], LengthScorer())
    score_in_process(_cfg(per_batch=2, progress=True), GROUPS, src, tmp_path / "c.sqlite", threading.Event(), 3)
    assert made == [(6, "local", 3, True)]
    # batch 1: the scorer reports 1 + 1 of 5 pairs, the loop adds the other 3; batch 2: 1 of 1
    assert bars[0].updates == [1, 1, 3, 1] and sum(bars[0].updates) == 6 and bars[0].closed


def test_progress_is_not_counted_twice_when_the_scorer_reports_everything(tmp_path, monkeypatch):
    class FullReport(LengthScorer):
        def score(self, groups, progress=None):
            out = super().score(groups, None)
            progress(sum(len(g.documents) for g in groups))
            return out

    bars: list[RecordingBar] = []
    monkeypatch.setattr(local_side, "bar", lambda *a: bars.append(RecordingBar()) or bars[-1])
    src = _source([[0, 1], [0]], FullReport())
    score_in_process(_cfg(per_batch=5), GROUPS, src, tmp_path / "c.sqlite", threading.Event(), 0)
    assert bars[0].updates == [3]


def test_the_bar_is_closed_and_the_time_counted_even_when_scoring_fails(tmp_path, monkeypatch):
    class Broken(LengthScorer):
        def score(self, groups, progress=None):
            time.sleep(0.01)
            raise RuntimeError("CUDA out of memory")

    bars: list[RecordingBar] = []
    monkeypatch.setattr(local_side, "bar", lambda *a: bars.append(RecordingBar()) or bars[-1])
    src = _source([[0]], Broken())
    with pytest.raises(RuntimeError, match="out of memory"):
        score_in_process(_cfg(), GROUPS, src, tmp_path / "c.sqlite", threading.Event(), 0)
    assert bars[0].closed and src.elapsed_s >= 0.01


def test_a_source_with_workers_is_scored_on_ray_and_one_without_here(tmp_path, monkeypatch):
    from pipeline.collect import ray_backend, stage

    seen = []
    monkeypatch.setattr(ray_backend, "score_on_ray", lambda *a: seen.append(("ray", *a)))
    monkeypatch.setattr(stage, "score_in_process", lambda *a: seen.append(("here", *a)))
    cfg, stop, cache = _cfg(), threading.Event(), tmp_path / "c.sqlite"
    on_ray = _source([[0]])
    on_ray.workers = object()
    here = _source([[0]], LengthScorer())
    score_local(cfg, GROUPS, on_ray, cache, stop, 1)
    score_local(cfg, GROUPS, here, cache, stop, 2)
    assert seen == [("ray", cfg, GROUPS, on_ray, cache, stop, 1), ("here", cfg, GROUPS, here, cache, stop, 2)]
