"""Dynamic batching on its own: groups from concurrent submitters share a call, a call never
exceeds max_pairs unless one group alone does, failures reach every waiter, close finishes what
is queued and never leaves a caller waiting."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from concurrent.futures import wait

import numpy as np
import pytest

from pipeline.scorers.base import QueryGroup
from pipeline.serve.batcher import BatcherClosed, DynamicBatcher

#: seconds a test waits for an answer that takes milliseconds (a dead worker fails the test fast)
WAIT = 5.0


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


class Gate(Recorder):
    """A model whose first call ("busy") holds until ``release``: what is submitted meanwhile is all
    queued when the worker gathers next, so with ``wait_s=0`` the calls do not depend on timing."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, groups):
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(WAIT)
        return super().__call__(groups)


def group(name: str, n: int) -> QueryGroup:
    return QueryGroup(name, ["d"] * n)


def after_a_busy_call(model: Gate, batcher: DynamicBatcher, sizes: dict[str, int]) -> dict[str, list[float]]:
    """Submit ``sizes`` while the model is busy, then let it go on; each group's result by name."""
    busy = batcher.submit_future(group("busy", 1))
    assert model.entered.wait(WAIT)
    futures = {name: batcher.submit_future(group(name, n)) for name, n in sizes.items()}
    model.release.set()
    busy.result(timeout=WAIT)
    return {name: f.result(timeout=WAIT).tolist() for name, f in futures.items()}


def test_groups_arriving_within_the_window_share_one_call():
    model = Recorder()
    batcher = DynamicBatcher(model, max_pairs=64, wait_s=0.5)
    names = ["a", "bb", "ccc", "dddd", "eeeee"]  # every group scores differently: misrouting would show
    sizes = [3, 1, 4, 2, 3]
    try:
        futures = [batcher.submit_future(group(name, n)) for name, n in zip(names, sizes)]
        results = [f.result(timeout=WAIT) for f in futures]
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
            f.result(timeout=WAIT)
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
                f.result(timeout=WAIT)
        model.fail = False
        assert batcher.submit_future(group("again", 1)).result(timeout=WAIT).tolist() == [5.0]
    finally:
        batcher.close()


def test_asyncio_submitters_are_batched_too():
    model = Recorder()
    batcher = DynamicBatcher(model, max_pairs=64, wait_s=0.3)

    async def many():
        return await asyncio.wait_for(asyncio.gather(*(batcher.submit(group(f"q{i}", 2)) for i in range(4))), WAIT)

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
    closer.join(timeout=WAIT)
    assert all(f.result(timeout=1) is not None for f in futures)
    with pytest.raises(BatcherClosed):
        batcher.submit_future(group("late", 1))


@pytest.mark.parametrize(("settings", "sizes", "calls"), [
    # the default of 64 pairs: two groups that fill it exactly share a call, one more pair does not fit
    ({}, {"a": 32, "bb": 32, "ccc": 1}, [["a", "bb"], ["ccc"]]),
    ({"max_pairs": 4}, {"a": 1, "bb": 1, "ccc": 1, "dddd": 1, "eeeee": 1}, [["a", "bb", "ccc", "dddd"], ["eeeee"]]),
    # an overflowing group leads the next call; a group larger than a call runs alone
    ({"max_pairs": 10}, {"a": 4, "bb": 4, "ccc": 4, "big": 25, "dddd": 1}, [["a", "bb"], ["ccc"], ["big"], ["dddd"]]),
])  # fmt: skip
def test_what_queued_during_a_call_fills_the_next_calls_in_arrival_order(settings, sizes, calls):
    model = Gate()
    batcher = DynamicBatcher(model, wait_s=0.0, **settings)
    try:
        results = after_a_busy_call(model, batcher, sizes)
    finally:
        model.release.set()
        batcher.close()
    assert model.calls == [["busy"], *calls]
    assert results == {name: [float(len(name))] * n for name, n in sizes.items()}  # each its own slice


def test_a_group_arriving_within_the_window_joins_the_waiting_call():
    """The worker holds the first group for up to wait_s, for company; a full call goes at once."""
    model = Recorder()
    batcher = DynamicBatcher(model, max_pairs=3, wait_s=60)
    try:
        first = batcher.submit_future(group("a", 1))
        time.sleep(0.2)  # the worker has taken "a" and waits for more
        later = [batcher.submit_future(group(name, 1)) for name in ("bb", "ccc")]  # 3 pairs: the call is full
        assert [f.result(timeout=WAIT).tolist() for f in [first, *later]] == [[1.0], [2.0], [3.0]]
    finally:
        batcher.close()
    assert [sorted(call) for call in model.calls] == [["a", "bb", "ccc"]]


def test_a_full_call_goes_to_the_model_without_waiting_out_the_window():
    model = Recorder()
    batcher = DynamicBatcher(model, max_pairs=2, wait_s=60)
    try:
        assert batcher.submit_future(group("ab", 2)).result(timeout=WAIT).tolist() == [2.0, 2.0]
        assert batcher.submit_future(group("big", 5)).result(timeout=WAIT).tolist() == [3.0] * 5
    finally:
        batcher.close()


def test_a_lone_request_waits_no_longer_than_the_short_default_window():
    """The default window is 2 ms: a lone request is answered at once, not after a second. (The
    bound is loose on purpose, 0.9 s for a few milliseconds of work: a loaded CI machine must not
    fail it; a window of a second or more does.)"""
    batcher = DynamicBatcher(Recorder())
    try:
        batcher.submit_future(group("warm", 1)).result(timeout=WAIT)
        started = time.monotonic()
        assert batcher.submit_future(group("a", 1)).result(timeout=WAIT).tolist() == [1.0]
        elapsed = time.monotonic() - started
    finally:
        batcher.close()
    assert elapsed < 0.9, elapsed


@pytest.mark.parametrize("max_pairs", [1, 64])
def test_a_request_cancelled_while_queued_is_never_scored_and_the_worker_goes_on(max_pairs):
    """A client that went away cancels its future: the model never sees that group, alone in a
    call (max_pairs=1) or among others, and later requests are still answered."""
    model = Gate()
    batcher = DynamicBatcher(model, max_pairs=max_pairs, wait_s=0.0)
    try:
        busy = batcher.submit_future(group("busy", 1))
        assert model.entered.wait(WAIT)
        gone = batcher.submit_future(group("gone", 1))
        assert gone.cancel()
        later = batcher.submit_future(group("later", 1))
        model.release.set()
        assert later.result(timeout=WAIT).tolist() == [5.0]
        assert busy.result(timeout=WAIT).tolist() == [4.0]
    finally:
        model.release.set()
        batcher.close()
    assert model.calls == [["busy"], ["later"]]


def test_the_worker_is_a_named_daemon_that_close_stops_with_what_it_held():
    """Named in thread dumps, never holds the process open at exit; close ends the worker's wait
    for company at once: the group it held is scored and the thread ends."""
    before = set(threading.enumerate())
    batcher = DynamicBatcher(Recorder(), wait_s=60)
    (worker,) = set(threading.enumerate()) - before
    assert worker.name == "batcher" and worker.daemon
    held = batcher.submit_future(group("a", 1))
    batcher.close(timeout_s=WAIT)
    assert held.result(timeout=0).tolist() == [1.0]
    assert not worker.is_alive()
    batcher.close()  # again: nothing to do
    with pytest.raises(BatcherClosed, match="^the service is shutting down$"):
        batcher.submit_future(group("late", 1))
    named = DynamicBatcher(Recorder(), name="serve-batcher")
    try:
        assert "serve-batcher" in {t.name for t in threading.enumerate()}
    finally:
        named.close()


def test_close_gives_up_on_a_stuck_model_after_its_timeout_and_the_call_still_answers():
    model = Gate()
    batcher = DynamicBatcher(model, wait_s=0.0)
    busy = batcher.submit_future(group("busy", 1))
    try:
        assert model.entered.wait(WAIT)
        closer = threading.Thread(target=batcher.close, kwargs={"timeout_s": 0.1})
        closer.start()
        closer.join(WAIT)
        assert not closer.is_alive()  # shutdown is not held hostage by a model call that never returns
    finally:
        model.release.set()
    assert busy.result(timeout=WAIT).tolist() == [4.0]


def test_a_submit_racing_close_is_refused_or_answered_never_left_waiting():
    """Regression: submit_future checked "closed" and queued without a lock, so a group could
    queue behind the stop marker after the worker had gone and its caller waited forever (one
    round in six of this loop before the fix). Switching threads every microsecond makes the
    interleaving likely; the assertion holds under any interleaving."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(20):
            batcher = DynamicBatcher(lambda groups: [0.0] * len(groups), wait_s=0.0)
            futures: list = []

            def submit_until_refused(batcher=batcher, futures=futures):
                while True:
                    try:
                        futures.append(batcher.submit_future(group("q", 1)))
                    except BatcherClosed:
                        return

            threads = [threading.Thread(target=submit_until_refused) for _ in range(3)]
            for t in threads:
                t.start()
            while not futures:  # close while the submitters are at it
                time.sleep(0)
            batcher.close()
            for t in threads:
                t.join(WAIT)
            _, waiting = wait(futures, timeout=WAIT)
            assert not waiting, f"{len(waiting)} of {len(futures)} submitted groups never answered"
    finally:
        sys.setswitchinterval(interval)
