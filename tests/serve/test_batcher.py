"""Dynamic batching on its own: groups from concurrent submitters share a call, a call never
exceeds max_pairs unless one group alone does, failures reach every waiter, close drains."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from pipeline.scorers.base import QueryGroup
from pipeline.serve.batcher import BatcherClosed, DynamicBatcher


class Recorder:
    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.delay_s = delay_s
        self.fail = fail

    def __call__(self, groups):
        self.calls.append([g.query for g in groups])
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("model failed")
        return [np.full(len(g.documents), float(len(g.query))) for g in groups]


def group(name: str, n: int) -> QueryGroup:
    return QueryGroup(name, ["d"] * n)


def test_groups_arriving_within_the_window_share_one_call():
    model = Recorder()
    batcher = DynamicBatcher(model, max_pairs=64, wait_s=0.5)
    names = ["a", "bb", "ccc", "dddd", "eeeee"]  # every group scores differently: misrouting would show
    sizes = [3, 1, 4, 2, 3]
    try:
        futures = [batcher.submit_future(group(name, n)) for name, n in zip(names, sizes)]
        results = [f.result(timeout=10) for f in futures]
    finally:
        batcher.close()
    assert model.calls == [names]
    assert [r.tolist() for r in results] == [[float(len(name))] * n for name, n in zip(names, sizes)]  # its own slice


def test_a_call_holds_at_most_max_pairs_and_a_large_group_runs_alone():
    model = Recorder(delay_s=0.05)
    batcher = DynamicBatcher(model, max_pairs=10, wait_s=0.2)
    try:
        sizes = {"a": 4, "b": 4, "c": 4, "big": 25, "d": 1}
        futures = [batcher.submit_future(group(name, n)) for name, n in sizes.items()]
        for f in futures:
            f.result(timeout=10)
    finally:
        batcher.close()
    for call in model.calls:
        pairs = sum(sizes[q] for q in call)
        assert pairs <= 10 or call == ["big"], model.calls
    assert sorted(q for call in model.calls for q in call) == sorted(sizes)
    assert model.calls[0] == ["a", "b"]  # "c" would overflow: it leads the next call, ahead of later arrivals
    assert model.calls[1][0] == "c"


def test_a_model_failure_reaches_every_waiter_and_the_worker_survives():
    model = Recorder(fail=True)
    batcher = DynamicBatcher(model, max_pairs=64, wait_s=0.2)
    try:
        futures = [batcher.submit_future(group(f"q{i}", 2)) for i in range(3)]
        for f in futures:
            with pytest.raises(RuntimeError, match="model failed"):
                f.result(timeout=10)
        model.fail = False
        assert batcher.submit_future(group("again", 1)).result(timeout=10).tolist() == [5.0]
    finally:
        batcher.close()


def test_asyncio_submitters_are_batched_too():
    model = Recorder()
    batcher = DynamicBatcher(model, max_pairs=64, wait_s=0.3)

    async def many():
        return await asyncio.gather(*(batcher.submit(group(f"q{i}", 2)) for i in range(4)))

    try:
        results = asyncio.run(many())
    finally:
        batcher.close()
    assert len(model.calls) == 1 and len(results) == 4


def test_close_finishes_queued_work_then_refuses_new_work():
    model = Recorder(delay_s=0.05)
    batcher = DynamicBatcher(model, max_pairs=2, wait_s=0.0)
    futures = [batcher.submit_future(group(f"q{i}", 2)) for i in range(4)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    closer.join(timeout=10)
    assert all(f.result(timeout=1) is not None for f in futures)
    with pytest.raises(BatcherClosed):
        batcher.submit_future(group("late", 1))
