"""Client-side request and token rate limits (RPM / TPM) for asyncio.

Pacing, not bursting: a request may leave only when the previous one left at least
``60 / (rpm * margin)`` seconds earlier and the tokens sent so far have "drained" at
``tpm * margin`` per minute (GCRA with no burst tolerance, on actual send times). Spacing requests evenly means *every* window
the server may use (sliding or fixed, one minute or a few seconds) sees at most ``margin`` times
its limit, plus one request's tokens; a token bucket that allowed a burst of a full minute's
quota could double the limit in a sliding window and earn 429s of our own making.

When the server still answers 429 with ``Retry-After``, :meth:`RateLimiter.pause_until` holds
every request (not only the one that got the 429) until then, so the retries do not stampede.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class RateLimiter:
    """Async pacer for requests/min and tokens/min; ``None`` limits mean unlimited."""

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        margin: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not 0 < margin <= 1:
            raise ValueError(f"rate_margin must be in (0, 1], got {margin}")
        for name, value in (("rpm", rpm), ("tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"api.{name} must be positive or null (unlimited), got {value}")
        self._request_interval = 60.0 / (rpm * margin) if rpm else 0.0
        self._token_interval = 60.0 / (tpm * margin) if tpm else 0.0
        self._clock = clock
        self._sleep = sleep
        self._next_request = float("-inf")
        self._next_token = float("-inf")
        self._paused_until = float("-inf")

    @property
    def limited(self) -> bool:
        return bool(self._request_interval or self._token_interval)

    def _ready_at(self) -> float:
        return max(self._next_request, self._next_token, self._paused_until)

    def _claim(self, now: float, tokens: int) -> None:
        # Keep the cadence when the wake-up was only a little late (timer resolution); after a
        # longer stall restart the schedule from now, so no overdue slots are spent in a burst.
        interval = self._request_interval
        late = now - self._next_request
        self._next_request = (self._next_request if late <= interval / 2 else now) + interval
        self._next_token = max(now, self._next_token) + tokens * self._token_interval

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until a request of ``tokens`` estimated tokens may be sent, then claim the slot.

        The slot is claimed at the moment the request really leaves (not booked in advance), so
        an event loop that stalls for a while does not release a burst of overdue requests.
        """
        while True:
            now = self._clock()
            ready = self._ready_at()
            if now >= ready:
                self._claim(now, tokens)
                return
            await self._sleep(ready - now)

    def adjust(self, extra_tokens: int) -> None:
        """Correct the token schedule once the real usage of a request is known."""
        if self._token_interval and extra_tokens:
            self._next_token += extra_tokens * self._token_interval

    def pause_until(self, when: float) -> None:
        """Hold every request until the clock reads ``when`` (server's Retry-After)."""
        self._paused_until = max(self._paused_until, when)
