"""Retry policy (backoff, Retry-After, bounds) and the RPM/TPM pacer, on a fake clock."""

from __future__ import annotations

import asyncio
import random
import time
from email.utils import formatdate

import pytest

from pipeline.api.ratelimit import RateLimiter
from pipeline.api.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from pipeline.api.tokens import estimate_rerank_tokens, estimate_tokens


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0.5 ") == 0.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = time.time()
    assert parse_retry_after(formatdate(now + 20, usegmt=True), now_epoch=now) == pytest.approx(20, abs=1)


def test_retryable_statuses():
    assert {408, 429, 500, 502, 503, 504} <= RETRYABLE_STATUSES
    assert not {400, 401, 403, 404} & RETRYABLE_STATUSES


def test_backoff_is_exponential_jittered_and_capped():
    policy = RetryPolicy(attempts=10, initial_s=1.0, max_s=8.0, rng=random.Random(0))
    for failures, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (6, 8)]:
        waits = [policy.backoff(failures) for _ in range(200)]
        assert min(waits) >= ceiling / 2 and max(waits) <= ceiling
        assert max(waits) - min(waits) > ceiling / 4  # really jittered


def test_bounds_on_attempts_and_elapsed_time():
    policy = RetryPolicy(attempts=3, max_elapsed_s=10, initial_s=1, max_s=1, rng=random.Random(0))
    assert policy.next_delay(1, 0.0, None) is not None
    assert policy.next_delay(3, 0.0, None) is None  # third failure: no fourth attempt
    assert policy.next_delay(1, 0.0, 4.0) == 4.0  # Retry-After replaces the backoff
    assert policy.next_delay(1, 7.0, 4.0) is None  # would end past max_elapsed_s
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # a zero (or negative) wait would spin: the pacer must only sleep when it has to wait
        assert seconds > 0, f"pacer asked for a sleep of {seconds}"
        self.sleeps.append(seconds)
        self.now += seconds


def _starts(limiter: RateLimiter, clock: FakeClock, tokens: list[int]) -> list[float]:
    async def go():
        out = []
        for t in tokens:
            await limiter.acquire(t)
            out.append(clock.now)
        return out

    return asyncio.run(go())


def test_rpm_paces_requests_evenly():
    clock = FakeClock()
    limiter = RateLimiter(rpm=120, margin=1.0, clock=clock, sleep=clock.sleep)
    starts = _starts(limiter, clock, [0] * 5)
    assert [round(s - starts[0], 6) for s in starts] == [0, 0.5, 1.0, 1.5, 2.0]


def test_margin_slows_pacing():
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, margin=0.5, clock=clock, sleep=clock.sleep)
    starts = _starts(limiter, clock, [0] * 3)
    assert starts[2] - starts[0] == pytest.approx(4.0)


def test_tpm_paces_by_tokens_and_adjusts_to_real_usage():
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, margin=1.0, clock=clock, sleep=clock.sleep)  # 100 tokens/s
    starts = _starts(limiter, clock, [200, 100, 100])
    assert [round(s - starts[0], 6) for s in starts] == [0, 2.0, 3.0]
    limiter.adjust(300)  # the last request really cost 400 tokens
    assert _starts(limiter, clock, [0])[0] - starts[2] == pytest.approx(4.0)


def test_pause_until_holds_every_request():
    clock = FakeClock()
    limiter = RateLimiter(rpm=None, tpm=None, clock=clock, sleep=clock.sleep)
    assert not limiter.limited
    limiter.pause_until(clock.now + 3)
    assert _starts(limiter, clock, [0, 0]) == [103.0, 103.0]


def test_invalid_limits():
    with pytest.raises(ValueError, match="rate_margin"):
        RateLimiter(rpm=10, margin=0)
    with pytest.raises(ValueError, match="api.rpm"):
        RateLimiter(rpm=-1)


def test_token_estimate_is_upper_leaning():
    assert estimate_tokens("向量数据库") == 5
    assert estimate_tokens("hello world") == 4  # 11 chars / 3, rounded up
    assert estimate_tokens("") == 1
    assert estimate_rerank_tokens("abc", ["abcdef", "a"], overhead_per_document=10) == (1 + 2 + 10) + (1 + 1 + 10)


def test_a_stalled_loop_releases_no_burst():
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, margin=1.0, clock=clock, sleep=clock.sleep)
    first = _starts(limiter, clock, [0])[0]
    clock.now += 10.0  # the event loop was busy for ten intervals
    starts = _starts(limiter, clock, [0, 0, 0])
    assert starts[0] == first + 10.0
    assert [round(b - a, 6) for a, b in zip(starts, starts[1:])] == [1.0, 1.0]  # no catch-up burst


def test_concurrent_waiters_are_spaced():
    clock = FakeClock()
    limiter = RateLimiter(rpm=600, margin=1.0, clock=clock, sleep=clock.sleep)
    sent: list[float] = []

    async def one():
        await limiter.acquire()
        sent.append(clock.now)

    async def go():
        await asyncio.gather(*(one() for _ in range(8)))

    asyncio.run(go())
    gaps = [round(b - a, 6) for a, b in zip(sent, sent[1:])]
    assert len(sent) == 8 and min(gaps) >= 0.1 - 1e-9


def test_small_wakeup_delays_keep_the_cadence():
    clock = FakeClock()

    async def late_sleep(seconds: float) -> None:  # every timer fires 10 ms late
        clock.now += seconds + 0.01

    limiter = RateLimiter(rpm=60, margin=1.0, clock=clock, sleep=late_sleep)
    starts = _starts(limiter, clock, [0] * 11)
    assert starts[-1] - starts[0] == pytest.approx(10.01)  # lateness does not accumulate
