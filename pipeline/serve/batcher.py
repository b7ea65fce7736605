"""Dynamic batching: query groups from concurrent requests share one model call.

A model on CPU or GPU scores a batch of 64 pairs in much less than 64 times the cost of one
pair, but a rerank request often holds a handful of documents. One worker thread owns the model:
it takes the first waiting group, gathers whatever else arrives within ``wait_s`` (or is already
queued, which under load is everything that queued during the previous call) up to ``max_pairs``
pairs, and scores them in one call. A group larger than ``max_pairs`` runs alone; the scorer
splits it into its own batches. Request handlers ``await`` their own slice of the result.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from pipeline.scorers.base import QueryGroup

ScoreGroups = Callable[[Sequence[QueryGroup]], Sequence[Any]]


class BatcherClosed(RuntimeError):
    """The batcher was closed; the service is shutting down."""


class DynamicBatcher:
    """``await batcher.submit(group)`` -> that group's result from ``score_groups`` (one per group)."""

    def __init__(
        self, score_groups: ScoreGroups, *, max_pairs: int = 64, wait_s: float = 0.002, name: str = "batcher"
    ) -> None:
        self.score_groups = score_groups
        self.max_pairs = max_pairs
        self.wait_s = wait_s
        self._queue: queue.Queue[tuple[QueryGroup, Future] | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()  # a submit and close never interleave: nothing queues behind the stop marker
        self._carry: tuple[QueryGroup, Future] | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    async def submit(self, group: QueryGroup) -> Any:
        return await asyncio.wrap_future(self.submit_future(group))

    def submit_future(self, group: QueryGroup) -> Future:
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosed("the service is shutting down")
            self._queue.put((group, future))
        return future

    def close(self, timeout_s: float = 30.0) -> None:
        """Finish what is queued, then stop the worker (waiting at most ``timeout_s`` for it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)  # the last item: every group submitted before it is scored
        self._thread.join(timeout=timeout_s)

    def _gather(self, first: tuple[QueryGroup, Future]) -> tuple[list[tuple[QueryGroup, Future]], bool]:
        """The batch starting with ``first``; True when the stop marker was seen."""
        batch, pairs = [first], len(first[0].documents)
        deadline = time.monotonic() + self.wait_s
        while pairs < self.max_pairs:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            if pairs + len(item[0].documents) > self.max_pairs:
                self._carry = item  # first in the next batch: no request waits behind later ones
                break
            batch.append(item)
            pairs += len(item[0].documents)
        return batch, False

    def _loop(self) -> None:
        stop = False
        while not stop:
            item, self._carry = (self._carry, None) if self._carry is not None else (self._queue.get(), None)
            if item is None:
                break
            batch, stop = self._gather(item)
            live = [(g, f) for g, f in batch if f.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                results = self.score_groups([g for g, _ in live])
            except BaseException as exc:  # every waiter hears about the failure; the worker lives on
                for _, future in live:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(live, results):
                future.set_result(result)
