"""The ``collect`` section, and its ``collect.ray`` part (sharded local scoring on Ray).

Nothing here changes a score: workers, shards and retries only change where and how fast the
local column is computed, so none of it enters a fingerprint or the score-cache key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from pipeline.config.api import ApiConfig
from pipeline.config.local import LocalScorerConfig
from pipeline.config.reference import ReferenceConfig
from pipeline.config.settings import SectionView, setting
from pipeline.runtime.text import TextConfig


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
    num_cpus: Optional[int] = setting(None, ge=1, why="null = every CPU")
    #: a local instance's session directory (null = Ray's default under /tmp). Keep it short:
    #: Ray's socket paths must fit in about 107 characters
    temp_dir: Optional[str] = None


@dataclass
class BudgetConfig:
    """``collect.budget``: buy API scores in rounds of whole query groups until the calibration is
    pinned down or the budget is spent (docs/collect.md#budgeted-collection).

    The local scores of the whole dataset come first (free); each round then buys query groups,
    refits, and measures the bootstrap band of the fitted curve over ``region``. Spend is reserved
    before every request (retries included) with the conservative token estimate and reconciled
    with the usage the API reports, in a ledger on disk: nothing is spent beyond ``pairs`` or
    ``cost``, across runs, even when a run is killed."""

    enabled: bool = False
    #: the most pairs sent to the API (a retried request counts again); null = no pair limit
    pairs: Optional[int] = setting(None, ge=1, why="null = no pair limit")
    #: the most money, in the unit of ``api.price_*`` (the cost model); null = no money limit
    cost: Optional[float] = setting(None, gt=0, why="null = no money limit")
    #: target: the band of the fitted curve is at most this wide (reference scale) ...
    band: float = setting(0.02, gt=0)
    #: ... over these quantile levels of the local scores (the top decile but its last percent)
    region: List[float] = field(default_factory=lambda: [0.9, 0.99])
    #: and the held-out agreement interval (of ``agreement_metric``, on the uniform part) at most
    #: this wide; null = the band alone
    agreement: Optional[float] = setting(None, gt=0, why="null = the band alone")
    agreement_metric: str = "mae"
    #: pairs per round; the first round stratifies, later ones buy where the band is widest
    round_pairs: int = setting(500, ge=1)
    #: rounds in a row that must meet the targets (a band is itself an estimate: the first round
    #: under the target is often a lucky one)
    confirm_rounds: int = setting(2, ge=1)
    #: share of every round drawn uniformly at random: where held-out agreement is measured
    uniform_share: float = setting(0.2, ge=0, le=1)
    #: quantile bins of each query's best local score in the first round (crossed with the
    #: queries' ``meta.category`` when the dataset has one)
    strata: int = setting(5, ge=1)
    #: the calibrator family the band is measured with (fit's ``calibrator`` for the same curve)
    calibrator: str = "poly"
    n_bootstrap: int = setting(100, ge=10)
    confidence: float = setting(0.95, gt=0, lt=1)
    #: the local column whose scores choose the pairs (null = ``collect.local_col``)
    column: Optional[str] = None
    #: what was reserved and spent, per API fingerprint, across runs (SQLite; never holds a key)
    ledger: str = "cache/spend.sqlite"
    #: the learning curve, per round (and budget.png beside it); conf/config.yaml: reports/<name>/budget.json
    report: str = "reports/budget.json"


@dataclass
class CollectConfig:
    """The collect stage: dataset in, paired-score table (+ sidecar meta) out."""

    dataset: str = "data/demo/calibration.jsonl"
    output: str = "data/demo/paired_scores.csv"
    # what `resolve` writes: the model versions in use (the DVC collect stage depends on it)
    versions: str = "data/demo/versions.json"
    # SQLite score cache shared by every source (keyed by each source's fingerprint hash)
    cache: str = "cache/scores.sqlite"
    # score a deterministic sample of this many query groups (by hash of query_id); null = all
    max_queries: Optional[int] = setting(None, ge=1, why="null = every query")
    # print requests, tokens and estimated cost for the pairs not cached yet; send nothing
    dry_run: bool = False
    run_api: bool = True
    run_local: bool = True
    # output column names (defaults are what the fit stage expects)
    query_col: str = "query_id"
    doc_col: str = "doc_id"
    reference_col: str = "reference"
    local_col: str = "local"
    # written when the dataset has graded labels; null = never write labels
    label_col: Optional[str] = "label"
    # further local scorers, one column each: column -> a full ``local`` config. From the command
    # line: +local@collect.extra_local.<column>=<conf/local entry>
    extra_local: Dict[str, LocalScorerConfig] = field(default_factory=dict)
    # query groups per local scorer call (one cache transaction each)
    local_groups_per_batch: int = setting(8, ge=1)
    # score locally in a worker thread while API requests are in flight
    overlap_local_and_api: bool = True
    progress: bool = True
    # score the local column(s) on Ray workers in shards of query groups (docs/scale-out.md)
    ray: RayConfig = field(default_factory=RayConfig)
    # buy API pairs in rounds until the calibration is pinned down (docs/collect.md#budgeted-collection)
    budget: BudgetConfig = field(default_factory=BudgetConfig)


def check_budget(budget: Any, api: Any) -> None:
    """``collect.budget``'s cross-field checks, and that a money limit has one of ``api``'s prices
    to count against (with every price 0 a cost limit would never bind)."""
    from pipeline.calibration.metrics import METRICS
    from pipeline.config.settings import SettingError

    region = list(budget.region)
    if len(region) != 2 or not 0.0 <= region[0] < region[1] <= 1.0:
        raise SettingError(f"collect.budget.region={region}: two quantile levels 0 <= lo < hi <= 1, e.g. [0.9, 0.99]")
    if budget.agreement_metric not in METRICS:
        raise SettingError(f"collect.budget.agreement_metric={budget.agreement_metric!r}: one of {', '.join(METRICS)}")
    if budget.enabled and budget.pairs is None and budget.cost is None:
        raise SettingError(
            "collect.budget.enabled=true needs a limit: collect.budget.pairs=N or collect.budget.cost=X "
            "(in the unit of api.price_*)"
        )
    prices = (api.price_per_million_tokens, api.price_per_request, api.price_per_search_unit)
    if budget.enabled and budget.cost is not None and not any(prices):
        raise SettingError(
            f"collect.budget.cost={budget.cost:g} needs a price to count against: set api.price_per_million_tokens "
            "(or api.price_per_request, api.price_per_search_unit); with every price 0 nothing would ever cost anything"
        )


@dataclass
class PlanConfig:
    """``plan``: what ``python -m pipeline plan`` pays for before estimating the rest: one pilot
    round of ``collect.budget``'s choosing (its pairs are cached and counted in the budget's
    ledger, so the budgeted collect starts from them)."""

    pilot_pairs: int = setting(500, ge=1)
    #: simulated continuations of the budgeted run; the estimate's interval is their range
    simulations: int = setting(5, ge=1)


@dataclass
class ScoringSettings(SectionView):
    """The sections that say how pairs are scored, locally and by the API: what ``collect`` and
    ``resolve`` read (``ScoringSettings.of(cfg)``), and the base of check's, align's and
    embed-check's views."""

    seed: int
    text: TextConfig
    local: LocalScorerConfig
    api: ApiConfig
    reference: ReferenceConfig
    collect: CollectConfig


@dataclass
class PlanSettings(ScoringSettings):
    """What ``plan`` reads: the scoring sections (the budget among them) and ``plan``."""

    plan: PlanConfig
