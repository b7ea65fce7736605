"""Retry policy: which failures are retried, and how long to wait before the next attempt.

Exponential backoff with "equal jitter": the n-th wait is uniform in ``[b/2, b]`` with
``b = min(backoff_max_s, backoff_initial_s * 2**(n-1))``, so concurrent requests that failed
together spread out without any wait collapsing to zero. A server's ``Retry-After`` (seconds or
an HTTP date) replaces the computed wait. Both bounds apply: at most ``retry_attempts`` attempts,
and no wait that would end later than ``retry_max_elapsed_s`` after the first attempt.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

#: HTTP statuses worth another attempt (rate limited, or the server is overloaded / restarting)
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, now_epoch: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), else None."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        import time

        seconds = when.timestamp() - (time.time() if now_epoch is None else now_epoch)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


@dataclass
class RetryPolicy:
    attempts: int = 6
    max_elapsed_s: float = 300.0
    initial_s: float = 0.5
    max_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"api.retry_attempts must be >= 1, got {self.attempts}")
        if self.initial_s < 0 or self.max_s < 0 or self.max_elapsed_s < 0:
            raise ValueError("backoff and elapsed-time bounds must be >= 0")

    def backoff(self, failures: int) -> float:
        """Jittered wait after the ``failures``-th consecutive failure (1-based)."""
        ceiling = min(self.max_s, self.initial_s * (2 ** (failures - 1)))
        return self.rng.uniform(ceiling / 2, ceiling)

    def next_delay(self, failures: int, elapsed: float, retry_after: float | None) -> float | None:
        """The wait before attempt ``failures + 1``, or None when the budget is spent."""
        if failures >= self.attempts:
            return None
        delay = retry_after if retry_after is not None else self.backoff(failures)
        if elapsed + delay > self.max_elapsed_s:
            return None
        return delay
