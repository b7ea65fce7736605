"""Sharded local scoring on Ray: workers score, this process (the driver) writes.

Why Ray core actors and not Ray Data: a worker must load its model once and keep it (an actor
does; a task would reload per call), the unit of work must be whole query groups (so a packed
scorer shares each query's prompt prefix and a shard maps to one cache transaction), and the
driver must see each shard finish to commit it. Ray Data's ``map_batches`` with an actor pool
would give the first, but cuts batches by rows, streams results into blocks of its own, and
owns retries and ordering in its executor; here the loop below is about sixty lines and every
guarantee is visible in it.

* **Shards.** Query groups are cut into shards of ``collect.ray.queries_per_shard`` in dataset
  order, so the same run always makes the same shards; a shard holds the group's documents not
  in the cache yet, and a shard with none is not sent.
* **Workers.** ``collect.ray.workers`` actors, each with ``cpus_per_worker`` / ``gpus_per_worker``
  and torch at ``torch_threads``, build the scorer from the same ``local`` config this process
  would use. Their fingerprints must agree, and one of them is the column's fingerprint: the
  driver never loads the model.
* **Retries.** An actor that dies (OOM, a lost node, ``kill -9``) is restarted by Ray and its
  shard retried, up to ``max_retries`` times each (``max_restarts`` / ``max_task_retries``).
* **Writes.** Each finished shard is checked (one finite score per document) and written in one
  SQLite transaction by the driver alone: no concurrent writers, nothing on a worker's disk. A
  driver killed mid-run loses the shards in flight; the same command completes the table.
* **The API side** stays one rate-limited client in the driver: the limit is the account's.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.collect.progress import bar
from pipeline.collect.sources import CollectError, Groups, SourceState
from pipeline.collect.units import Stopped, checked_items, pending_groups
from pipeline.core.cache import ScoreCache
from pipeline.core.console import wrapped

if TYPE_CHECKING:
    from pipeline.config.collect import RayConfig, ScoringSettings
    from pipeline.config.local import LocalScorerConfig
    from pipeline.runtime.text import TextConfig

#: shards queued per worker: the next one waits at the worker while it scores the current one
IN_FLIGHT_PER_WORKER = 2


def _ray():
    from pipeline.core.extras import MissingExtraError, require

    try:
        require("collect.ray.enabled=true", "ray")
    except MissingExtraError as exc:
        raise CollectError(str(exc)) from None
    import ray

    return ray


class ScoringWorker:
    """The models of a run's local columns on one Ray worker (wrapped with ``ray.remote`` when
    the workers start). With one local column, the usual case, that is one model per worker;
    with ``collect.extra_local`` every worker holds each column's model, so the columns share
    the cluster's CPUs or GPUs instead of each reserving its own workers (which would deadlock
    a cluster too small for all of them at once)."""

    def __init__(self, local_cfgs: dict[str, LocalScorerConfig], text_cfg: TextConfig, torch_threads: int) -> None:
        import torch

        torch.set_num_threads(torch_threads)
        from pipeline.scorers import build_scorer

        # a model that cannot load is reported by describe(), not raised here: an actor whose
        # constructor raises is retried by Ray (max_restarts) and logs every traceback, while a
        # wrong path or kind fails the same way every time
        self.scorers: dict[str, Any] = {}
        self.error: str | None = None
        for column, lcfg in local_cfgs.items():
            try:
                self.scorers[column] = build_scorer(lcfg, text_cfg)
            except (ValueError, OSError, RuntimeError) as exc:  # ScorerLoadError, EngineError, settings
                self.error = f"{column}: cannot build the local scorer for model {lcfg.model!r}: {exc}"
                break

    def describe(self) -> dict[str, Any]:
        if self.error is not None:
            return {"pid": os.getpid(), "error": self.error}
        return {
            "pid": os.getpid(),
            "columns": {
                c: {"fingerprint": s.fingerprint(), "score_type": s.score_type} for c, s in self.scorers.items()
            },
        }

    def score(self, column: str, groups: Sequence[tuple[str, Sequence[str]]]) -> tuple[int, list[list[float]]]:
        """``(pid, scores per group)``; plain lists travel without numpy pickles."""
        from pipeline.scorers.base import QueryGroup

        results = self.scorers[column].score([QueryGroup(q, list(docs)) for q, docs in groups])
        return os.getpid(), [[float(v) for v in values] for values in results]


def connect(cfg: RayConfig) -> bool:
    """Join the configured cluster, or start a local instance; True when this call started Ray
    (so :meth:`RayWorkers.close` shuts it down). An already-initialised Ray (a notebook, a test
    module's cluster) is used as it is."""
    ray = _ray()
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline machines: no telemetry attempts
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if cfg.address is None:
        kwargs.update(num_cpus=cfg.num_cpus, _temp_dir=cfg.temp_dir, _node_ip_address="127.0.0.1")
        where = f"a local Ray instance ({cfg.num_cpus or os.cpu_count()} CPUs)"
    else:
        kwargs["address"] = cfg.address
        where = f"the Ray cluster at {cfg.address}"
    print(
        wrapped(f"starting {where} ..." if cfg.address is None else f"connecting to {where} ..."),
        file=sys.stderr,
        flush=True,
    )
    _check_reachable(cfg.address)
    try:
        ray.init(**kwargs)
    except Exception as exc:  # ConnectionError, a bad address, a temp dir that cannot be made
        raise CollectError(
            f"collect.ray: could not start or reach Ray ({where}): {type(exc).__name__}: {exc}"
        ) from None
    return True


def _check_reachable(address: str | None) -> None:
    """Fail in seconds on a ``host:port`` (or ``ray://host:port``) nothing listens at: Ray itself
    keeps retrying its GCS connection for minutes, printing a warning every few seconds."""
    if address is None or address == "auto":
        return
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise CollectError(f"collect.ray.address={address!r}: expected auto, host:port or ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise CollectError(
            f"collect.ray.address={address!r}: nothing answers there ({exc.strerror or exc}); "
            "is the cluster's head node running (ray start --head)?"
        ) from None


def actor_options(cfg: RayConfig) -> dict[str, Any]:
    """Resources and the retry policy of one scoring worker."""
    return {
        "num_cpus": cfg.cpus_per_worker,
        "num_gpus": cfg.gpus_per_worker,
        "max_restarts": cfg.max_retries,
        "max_task_retries": cfg.max_retries,
    }


def _error(column: str, exc: BaseException) -> CollectError:
    """A worker's failure as one readable line (Ray wraps the worker's own exception)."""
    cause = getattr(exc, "cause", None)
    text = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else f"{type(exc).__name__}: {exc}"
    return CollectError(f"{column}: a Ray worker failed: {text.strip().splitlines()[-1] if text.strip() else text}")


@dataclass
class RayWorkers:
    """The scoring workers of a run, shared by its local columns (each :class:`SourceState`
    holds them as ``workers``; closing twice is harmless)."""

    cfg: RayConfig
    actors: list[Any]
    columns: dict[str, dict[str, Any]]  # column -> {"fingerprint", "score_type"}
    started_ray: bool
    pids: list[set[int]] = field(default_factory=list)

    def close(self) -> None:
        if not self.actors and not self.started_ray:
            return
        ray = _ray()
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        self.actors = []
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False


def _check_resources(ray: Any, rcfg: RayConfig) -> None:
    """A request the cluster can never place would wait forever: fail (a local instance) or say
    so (a cluster, which an autoscaler may grow)."""
    total = ray.cluster_resources()
    asked = {"CPU": rcfg.workers * rcfg.cpus_per_worker, "GPU": rcfg.workers * rcfg.gpus_per_worker}
    short = {k: (v, total.get(k, 0.0)) for k, v in asked.items() if v > total.get(k, 0.0) + 1e-9}
    if not short:
        return
    what = ", ".join(f"{v:g} {k} (the cluster has {have:g})" for k, (v, have) in short.items())
    message = (
        f"collect.ray: {rcfg.workers} worker(s) x (cpus_per_worker={rcfg.cpus_per_worker:g}, "
        f"gpus_per_worker={rcfg.gpus_per_worker:g}) ask for {what}"
    )
    if rcfg.address is None:
        raise CollectError(message + "; lower collect.ray.workers or the per-worker resources")
    print(wrapped(f"warning: {message}; waiting for the cluster to grow"), file=sys.stderr, flush=True)


def start_workers(
    cfg: ScoringSettings, local_cfgs: dict[str, LocalScorerConfig], worker_cls: type | None = None
) -> RayWorkers:
    """Start ``collect.ray.workers`` workers holding every local column's model; check they agree."""
    rcfg = cfg.collect.ray
    ray = _ray()
    started = connect(rcfg)
    workers = RayWorkers(rcfg, [], {}, started)
    try:
        _check_resources(ray, rcfg)
        actor = ray.remote(worker_cls or ScoringWorker).options(**actor_options(rcfg))
        workers.actors = [actor.remote(local_cfgs, cfg.text, rcfg.torch_threads) for _ in range(rcfg.workers)]
        models = ", ".join(sorted({str(lcfg.model) for lcfg in local_cfgs.values()}))
        print(wrapped(f"starting {rcfg.workers} Ray worker(s) for {models} ..."), file=sys.stderr, flush=True)
        try:
            infos = ray.get([a.describe.remote() for a in workers.actors])
        except Exception as exc:  # a model did not load on a worker
            raise _error(", ".join(local_cfgs), exc) from None
        failed = [info["error"] for info in infos if "error" in info]
        if failed:
            raise CollectError(failed[0])
        first = infos[0]["columns"]
        for info in infos[1:]:
            for column, theirs in info["columns"].items():
                mine = first[column]["fingerprint"]
                if theirs["fingerprint"] != mine:
                    keys = set(mine) | set(theirs["fingerprint"])
                    differing = sorted(k for k in keys if mine.get(k) != theirs["fingerprint"].get(k))
                    raise CollectError(
                        f"{column}: Ray workers disagree on what they compute ({', '.join(differing)}); "
                        "give every worker the same model, revision and device type"
                    )
    except BaseException:
        workers.close()
        raise
    workers.columns = first
    workers.pids = [{info["pid"]} for info in infos]
    return workers


def make_shards(pending: Sequence[Sequence[int]], queries_per_shard: int) -> list[tuple[int, list[int]]]:
    """``(shard id, group indices with pending documents)``: fixed blocks of the dataset's query
    order, so shard ids mean the same in every run; blocks with nothing pending are dropped."""
    shards = []
    for shard, start in enumerate(range(0, len(pending), queries_per_shard)):
        groups = [g for g in range(start, min(start + queries_per_shard, len(pending))) if pending[g]]
        if groups:
            shards.append((shard, groups))
    return shards


def score_on_ray(
    cfg: ScoringSettings, groups: Groups, src: SourceState, cache_path: Path, stop: threading.Event, position: int
) -> None:
    """Send the pending shards to the workers, write each one as it comes back."""
    ray = _ray()
    workers: RayWorkers = src.workers
    todo = make_shards(src.pending, cfg.collect.ray.queries_per_shard)
    todo.reverse()  # pop() from the end = dataset order
    in_flight: dict[Any, tuple[int, list[int], list[tuple[str, list[str]]], int]] = {}
    load = [0] * len(workers.actors)
    shards_done = [0] * len(workers.actors)
    known = set().union(*workers.pids)  # pids before this column: a new one is a restarted worker
    start = time.monotonic()
    progress_bar = bar(src.n_pending, src.column, position, cfg.collect.progress)
    try:
        with ScoreCache(cache_path) as cache:
            while todo or in_flight:
                if stop.is_set():
                    raise Stopped()
                for level in range(1, IN_FLIGHT_PER_WORKER + 1):  # every worker busy before any gets a second
                    for w, actor in enumerate(workers.actors):
                        if todo and load[w] < level:
                            shard, chunk = todo.pop()
                            batch = pending_groups(groups, src, chunk)
                            in_flight[actor.score.remote(src.column, batch)] = (shard, chunk, batch, w)
                            load[w] += 1
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
                for ref in ready:
                    shard, chunk, batch, w = in_flight.pop(ref)
                    load[w] -= 1
                    try:
                        pid, results = ray.get(ref)
                    except Exception as exc:  # retries exhausted, or the scorer raised
                        raise _error(src.column, exc) from None
                    items = checked_items(src.column, chunk, batch, results)
                    cache.put_many(src.hash, items)  # one transaction per finished shard
                    src.scored += len(items)
                    shards_done[w] += 1
                    workers.pids[w].add(pid)
                    progress_bar.update(len(items))
    except Stopped:
        return
    finally:
        src.elapsed_s += time.monotonic() - start
        progress_bar.close()
        src.usage["ray"] = {
            "address": workers.cfg.address,
            "workers": len(shards_done),
            "shards": sum(shards_done),
            "shards_per_worker": shards_done,
            "queries_per_shard": cfg.collect.ray.queries_per_shard,
            "worker_restarts": len(set().union(*workers.pids) - known),  # a restarted worker has a new pid
        }
