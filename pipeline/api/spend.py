"""A spending limit that holds across retries, concurrency and killed runs.

Every attempt to send a request first *reserves* what it may cost: its pairs, and its money at
the conservative token estimate (``pipeline.api.tokens`` over-counts on purpose). A reservation
that does not fit under the limit is refused before anything is sent (:class:`BudgetExhausted`).
When the answer arrives the reservation is *settled* at the usage the API reported; an attempt
that fails keeps its reservation (an API may bill a request whose answer never arrived). The
ledger is a SQLite file, written before each request leaves and after each answer: a run killed
with requests in flight still counts them, so the next run can never spend them again.

Spend is kept per *account*: the API fingerprint's hash (the same model, template and endpoint
share one budget across runs); raising ``collect.budget`` buys only the difference.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.api.errors import ApiError
from pipeline.config.api import ApiConfig

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spend (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    account  TEXT NOT NULL,
    pairs    INTEGER NOT NULL,
    reserved REAL NOT NULL,
    actual   REAL,
    state    TEXT NOT NULL,
    created  REAL NOT NULL,
    estimated REAL
);
CREATE INDEX IF NOT EXISTS spend_account ON spend (account);
"""

#: documents one Cohere search unit covers (https://docs.cohere.com/docs/rerank: "a single search
#: unit is a query with up to 100 documents")
DOCUMENTS_PER_SEARCH_UNIT = 100


def request_cost(cfg: ApiConfig, tokens: int, documents: int, search_units: int | None = None) -> float:
    """The cost model: one request of ``documents`` pairs and ``tokens`` tokens at ``api.price_*``.
    ``search_units`` as reported (Cohere); else one per started hundred documents."""
    units = -(-documents // DOCUMENTS_PER_SEARCH_UNIT) if search_units is None else search_units
    return tokens / 1e6 * cfg.price_per_million_tokens + cfg.price_per_request + units * cfg.price_per_search_unit


class BudgetExhausted(ApiError):
    """A request that would cross the budget: refused before it is sent."""


@dataclass(frozen=True)
class Spent:
    """An account's spend: settled at reported usage, plus open and failed reservations."""

    pairs: int
    cost: float
    open: int  # reservations never settled (in flight, or a killed run's)


class SpendLedger:
    """Reservations and settlements of one account against optional pair and money limits.

    Parameters
    ----------
    path : path
        The SQLite file (created; shared by every account).
    account : str
        Whose spend (the API source's fingerprint hash).
    pairs, cost : optional
        The limits; ``None`` = none.
    """

    def __init__(self, path: str | Path, account: str, *, pairs: int | None = None, cost: float | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.account = account
        self.limit_pairs = pairs
        self.limit_cost = cost
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a reservation must survive the process dying
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(spend)")}
        if "estimated" not in columns:  # a ledger written before the column existed
            self._db.execute("ALTER TABLE spend ADD COLUMN estimated REAL")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SpendLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spent(self) -> Spent:
        """Settled spend at its actual cost; open and failed reservations at what they reserved."""
        with self._lock:
            pairs, cost, open_ = self._db.execute(
                "SELECT COALESCE(SUM(pairs), 0), COALESCE(SUM(COALESCE(actual, reserved)), 0.0), "
                "COALESCE(SUM(state = 'reserved'), 0) FROM spend WHERE account = ?",
                (self.account,),
            ).fetchone()
        return Spent(int(pairs), float(cost), int(open_))

    def rate(self) -> float | None:
        """What the API reported over what the cost model estimated, over this account's settled
        requests of every run (None before any priced answer): what turns the cost model's
        estimate of other pairs into money, on a re-run that finds everything cached too."""
        with self._lock:
            actual, estimated = self._db.execute(
                "SELECT COALESCE(SUM(actual), 0.0), COALESCE(SUM(estimated), 0.0) FROM spend "
                "WHERE account = ? AND state = 'settled' AND estimated > 0",
                (self.account,),
            ).fetchone()
        return float(actual) / float(estimated) if estimated > 0 else None

    def remaining(self) -> tuple[float, float]:
        """``(pairs, cost)`` still allowed (``inf`` where there is no limit)."""
        spent = self.spent()
        pairs = float("inf") if self.limit_pairs is None else max(0.0, self.limit_pairs - spent.pairs)
        cost = float("inf") if self.limit_cost is None else max(0.0, self.limit_cost - spent.cost)
        return pairs, cost

    def reserve(self, pairs: int, cost: float, estimated: float | None = None) -> int:
        """Reserve one attempt's ``pairs`` and ``cost``; raises :class:`BudgetExhausted` (and
        reserves nothing) when either would cross its limit. ``estimated``: the cost model's
        unscaled estimate, kept for :meth:`rate` (default: ``cost``)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                spent_pairs, spent_cost = self._db.execute(
                    "SELECT COALESCE(SUM(pairs), 0), COALESCE(SUM(COALESCE(actual, reserved)), 0.0) "
                    "FROM spend WHERE account = ?",
                    (self.account,),
                ).fetchone()
                if self.limit_pairs is not None and spent_pairs + pairs > self.limit_pairs:
                    raise BudgetExhausted(
                        f"budget: {pairs} more pair(s) would cross collect.budget.pairs={self.limit_pairs} "
                        f"({spent_pairs} spent)"
                    )
                if self.limit_cost is not None and spent_cost + cost > self.limit_cost + 1e-12:
                    raise BudgetExhausted(
                        f"budget: a request estimated at {cost:.6g} would cross collect.budget.cost="
                        f"{self.limit_cost:g} ({spent_cost:.6g} spent)"
                    )
                row = self._db.execute(
                    "INSERT INTO spend (account, pairs, reserved, state, created, estimated) "
                    "VALUES (?, ?, ?, 'reserved', ?, ?)",
                    (
                        self.account,
                        int(pairs),
                        float(cost),
                        time.time(),
                        float(cost if estimated is None else estimated),
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(row.lastrowid)

    def settle(self, ticket: int, cost: float) -> None:
        """The answer arrived: the reservation becomes the reported cost."""
        with self._lock:
            self._db.execute("UPDATE spend SET actual = ?, state = 'settled' WHERE id = ?", (float(cost), ticket))

    def fail(self, ticket: int) -> None:
        """The attempt failed: it stays counted at what it reserved."""
        with self._lock:
            self._db.execute("UPDATE spend SET state = 'failed' WHERE id = ?", (ticket,))


class SpendGuard:
    """What :class:`~pipeline.api.client.ApiClient` calls around each attempt: the cost model
    applied to a request, and the ledger it is booked in.

    The token estimate is meant to over-count, but a server that counts a template or an
    instruction the client never sees reports more: once answers arrive, each reservation is the
    estimate scaled by the reported/estimated ratio seen so far (+10%, never below the estimate),
    so the limit holds for such servers too."""

    #: headroom over the learned reported/estimated token ratio
    MARGIN = 1.1

    def __init__(self, cfg: ApiConfig, ledger: SpendLedger) -> None:
        self.cfg = cfg
        self.ledger = ledger
        self._estimated = 0  # estimated tokens of the settled attempts
        self._reported = 0  # what the API reported for them

    @property
    def ratio(self) -> float:
        """Reported over estimated tokens of the answers so far (1 before any)."""
        return self._reported / self._estimated if self._estimated else 1.0

    def reserve(self, documents: int, est_tokens: int) -> tuple[int, int]:
        scale = max(1.0, self.MARGIN * self.ratio) if self._estimated else 1.0
        tokens = int(math.ceil(est_tokens * scale))
        estimate = request_cost(self.cfg, est_tokens, documents)
        return self.ledger.reserve(documents, request_cost(self.cfg, tokens, documents), estimate), est_tokens

    def settle(self, ticket: tuple[int, int], documents: int, tokens: int, search_units: int | None) -> None:
        row, est_tokens = ticket
        self._estimated += est_tokens
        self._reported += tokens
        self.ledger.settle(row, request_cost(self.cfg, tokens, documents, search_units))

    def fail(self, ticket: tuple[int, int]) -> None:
        self.ledger.fail(ticket[0])
