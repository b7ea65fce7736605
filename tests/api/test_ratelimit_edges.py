"""The pacer's edges: which limits it refuses (naming the key), how the margin scales each
limit, where "a little late" ends and the schedule restarts, and that a pause is never shortened."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.api.ratelimit import RateLimiter
from tests.api.test_retry_ratelimit import FakeClock, _starts


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"rpm": 0}, "api.rpm must be positive or null (unlimited), got 0"),
        ({"rpm": -5.0}, "api.rpm must be positive or null (unlimited), got -5.0"),
        ({"tpm": 0}, "api.tpm must be positive or null (unlimited), got 0"),
        ({"tpm": -1}, "api.tpm must be positive or null (unlimited), got -1"),
        ({"margin": 0}, "rate_margin must be in (0, 1], got 0"),
        ({"margin": -0.5}, "rate_margin must be in (0, 1], got -0.5"),
        ({"margin": 1.01}, "rate_margin must be in (0, 1], got 1.01"),
        ({"margin": 1.5}, "rate_margin must be in (0, 1], got 1.5"),
    ],
)
def test_impossible_limits_are_refused_with_the_key(kw, message):
    with pytest.raises(ValueError) as info:
        RateLimiter(**kw)
    assert str(info.value) == message


@pytest.mark.parametrize("kw", [{"rpm": 0.5}, {"tpm": 0.5}, {"margin": 1.0}, {"margin": 0.01}])
def test_small_but_positive_limits_are_accepted(kw):
    assert RateLimiter(**kw).limited == ("rpm" in kw or "tpm" in kw)


def test_either_limit_alone_makes_the_limiter_limited():
    assert RateLimiter(rpm=10).limited and RateLimiter(tpm=10).limited
    assert not RateLimiter().limited


def test_margin_scales_the_token_limit_too():
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, margin=0.5, clock=clock, sleep=clock.sleep)  # 50 tokens/s
    starts = _starts(limiter, clock, [100, 100, 0])
    assert [round(s - starts[0], 6) for s in starts] == [0, 2.0, 4.0]


def test_an_rpm_limit_alone_ignores_tokens_and_a_tpm_limit_alone_ignores_requests():
    clock = FakeClock()
    rpm_only = RateLimiter(rpm=60, clock=clock, sleep=clock.sleep)
    starts = _starts(rpm_only, clock, [10_000, 10_000, 10_000])
    assert [round(s - starts[0], 6) for s in starts] == [0, 1.0, 2.0]
    clock = FakeClock()
    tpm_only = RateLimiter(tpm=60, clock=clock, sleep=clock.sleep)  # 1 token/s
    assert _starts(tpm_only, clock, [0, 0, 0, 1, 0]) == [100.0, 100.0, 100.0, 100.0, 101.0]


def test_a_request_without_a_token_count_claims_none():
    clock = FakeClock()
    limiter = RateLimiter(tpm=60, clock=clock, sleep=clock.sleep)

    async def go():
        for _ in range(3):
            await limiter.acquire()
        return clock.now

    assert asyncio.run(go()) == 100.0 and clock.sleeps == []


@pytest.mark.parametrize(
    "late, next_gap",
    [
        (0.0, 1.0),
        (0.3, 0.7),  # a little late: the next slot stays on the old cadence
        (0.4, 0.6),
        (0.5, 0.5),  # half an interval is still "a little"
        (0.51, 1.0),  # more than half: the schedule restarts from now
        (0.9, 1.0),
        (3.0, 1.0),
    ],
)
def test_where_a_late_request_restarts_the_schedule(late, next_gap):
    clock = FakeClock()
    limiter = RateLimiter(rpm=60, clock=clock, sleep=clock.sleep)  # one request a second
    first = _starts(limiter, clock, [0])[0]
    clock.now = first + 1.0 + late  # the second request asks late
    second, third = _starts(limiter, clock, [0, 0])
    assert second == first + 1.0 + late
    assert third - second == pytest.approx(next_gap)


def test_a_later_pause_extends_an_earlier_one_never_shortens_it():
    clock = FakeClock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    limiter.pause_until(110.0)
    limiter.pause_until(104.0)  # a shorter Retry-After from another response
    assert _starts(limiter, clock, [0]) == [110.0]
    limiter.pause_until(115.0)
    assert _starts(limiter, clock, [0]) == [115.0]


def test_a_response_that_used_fewer_tokens_frees_the_schedule_early():
    clock = FakeClock()
    limiter = RateLimiter(tpm=6000, clock=clock, sleep=clock.sleep)  # 100 tokens/s
    _starts(limiter, clock, [300])  # claims 3 s
    limiter.adjust(-200)  # it really cost 100
    assert _starts(limiter, clock, [0]) == [101.0]
    limiter.adjust(0)
    assert _starts(limiter, clock, [0]) == [101.0]
