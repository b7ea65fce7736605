"""The retry policy's edges: which settings it refuses (with the key named), which Retry-After
values it honours, and exactly where the attempt and total-time budgets end."""

from __future__ import annotations

import random
import time
from email.utils import formatdate

import pytest

from pipeline.api.retry import RetryPolicy, parse_retry_after


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"attempts": 0}, "api.retry_attempts must be >= 1, got 0"),
        ({"attempts": -3}, "api.retry_attempts must be >= 1, got -3"),
        ({"initial_s": -0.1}, "backoff and elapsed-time bounds must be >= 0"),
        ({"max_s": -1.0}, "backoff and elapsed-time bounds must be >= 0"),
        ({"max_elapsed_s": -1.0}, "backoff and elapsed-time bounds must be >= 0"),
    ],
)
def test_impossible_settings_are_refused_with_the_rule(kw, message):
    with pytest.raises(ValueError) as info:
        RetryPolicy(**kw)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "kw",
    [
        {"attempts": 1},  # one attempt and no retry is a valid choice
        {"initial_s": 0.0, "max_s": 0.0, "max_elapsed_s": 0.0},  # retry at once, within no time at all
    ],
)
def test_the_boundary_settings_are_accepted(kw):
    policy = RetryPolicy(**kw, rng=random.Random(0))
    for name, value in kw.items():
        assert getattr(policy, name) == value


def test_zero_backoff_retries_at_once_and_one_attempt_never_retries():
    assert RetryPolicy(attempts=2, initial_s=0.0, max_s=0.0, max_elapsed_s=0.0).next_delay(1, 0.0, None) == 0.0
    assert RetryPolicy(attempts=1).next_delay(1, 0.0, None) is None


@pytest.mark.parametrize(
    "value", ["", "   ", "\t\n", "nan", "NaN", "soon", "Wed, 32 Foo 2015 07:28:00 GMT", "Wed, 21 Oct 2015 25:28:00 GMT"]
)
def test_unusable_retry_after_values_give_no_hint(value):
    assert parse_retry_after(value) is None


def test_retry_after_as_an_http_date():
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now_epoch=now) == 30.0
    assert parse_retry_after(formatdate(now - 30, usegmt=True), now_epoch=now) == 0.0  # already past: go now
    assert parse_retry_after("inf") == float("inf")  # a server that says "never": the elapsed budget ends it
    # without now_epoch the date is measured from the wall clock
    wall = time.time()
    assert parse_retry_after(formatdate(wall + 120, usegmt=True)) == pytest.approx(120, abs=2)
    assert parse_retry_after(formatdate(wall - 120, usegmt=True)) == 0.0


def test_the_elapsed_budget_is_inclusive():
    """A wait that ends exactly at max_elapsed_s is still taken; one a hair later is not."""
    policy = RetryPolicy(attempts=5, max_elapsed_s=10.0, initial_s=1.0, max_s=1.0)
    assert policy.next_delay(1, 6.0, 4.0) == 4.0
    assert policy.next_delay(1, 6.0, 4.000001) is None
    assert policy.next_delay(4, 0.0, 0.0) == 0.0  # the fourth failure still gets the fifth attempt
    assert policy.next_delay(5, 0.0, 0.0) is None
    assert policy.next_delay(1, 0.0, float("inf")) is None


def test_backoff_without_retry_after_uses_the_jittered_schedule():
    policy = RetryPolicy(attempts=10, max_elapsed_s=1000.0, initial_s=2.0, max_s=100.0, rng=random.Random(7))
    twin = random.Random(7)
    assert policy.next_delay(3, 0.0, None) == twin.uniform(4.0, 8.0)
