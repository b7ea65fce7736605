"""Schema of ``collect.ray`` (sharded local scoring on Ray). Owned by the collect package.

Nothing here changes a score: workers, shards and retries only change where and how fast the
local column is computed, so none of it enters a fingerprint or the score-cache key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pipeline.validation import setting


@dataclass
class RayConfig:
    """``collect.ray``: score the local column(s) on Ray workers; the driver writes the cache."""

    enabled: bool = False
    #: null = start a local Ray instance for this run; "auto" = the cluster this machine belongs to
    #: (`ray start`); "ray://head:10001" or "host:6379" = that cluster. The same command either way
    address: Optional[str] = None
    #: scoring workers, one model each (Ray actors)
    workers: int = setting(2, ge=1)
    #: resources each worker reserves; a GPU worker scores on its GPU (local.device=auto)
    cpus_per_worker: float = setting(1.0, ge=0)
    gpus_per_worker: float = setting(0.0, ge=0)
    #: torch threads inside each worker (1 = no oversubscription when workers share a machine)
    torch_threads: int = setting(1, ge=1)
    #: query groups per shard: one worker call and one cache transaction each. Shards are cut
    #: from the dataset's query order, so the same run always makes the same shards
    queries_per_shard: int = setting(8, ge=1)
    #: a dead worker is restarted and its shard retried this many times before the run fails
    max_retries: int = setting(3, ge=0)
    #: a local instance's CPUs (null = all of this machine's); ignored when joining a cluster
    num_cpus: Optional[int] = setting(None, ge=1, why='null = every CPU')
    #: a local instance's session directory (null = Ray's default under /tmp). Keep it short:
    #: Ray's socket paths must fit in about 107 characters
    temp_dir: Optional[str] = None
