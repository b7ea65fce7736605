"""The API errors: what each carries for the retry loop (status, Retry-After), and redaction, the
one guard that keeps a key a server echoes back out of every message."""

from __future__ import annotations

import pytest

from pipeline.api.errors import ApiError, FatalApiError, RetryableError, redact
from pipeline.core.errors import PipelineError


@pytest.mark.parametrize(
    "text, secrets, want",
    [
        ("key sk-123 leaked", ("sk-123",), "key *** leaked"),
        ("sk-1 and sk-1 again", ("sk-1",), "*** and *** again"),  # every occurrence
        ("a=A1 b=B2", ("A1", "B2"), "a=*** b=***"),  # every secret, not only the first
        ("a=A1 b=B2", (None, "B2"), "a=A1 b=***"),  # a missing secret is skipped, the next still applies
        ("a=A1 b=B2", ("", "A1"), "a=*** b=B2"),  # an empty secret would match everywhere: skipped
        ("nothing here", (), "nothing here"),
        ("nothing here", (None,), "nothing here"),
    ],
)
def test_redact_replaces_every_secret(text, secrets, want):
    assert redact(text, *secrets) == want


def test_fatal_error_carries_message_and_status():
    exc = FatalApiError("401 Unauthorized", status=401)
    assert str(exc) == "401 Unauthorized" and exc.args == ("401 Unauthorized",)
    assert exc.status == 401
    assert FatalApiError("no status").status is None
    assert isinstance(exc, ApiError) and isinstance(exc, PipelineError) and isinstance(exc, RuntimeError)


def test_retryable_error_carries_status_and_the_servers_hint():
    exc = RetryableError("429 rate limited", status=429, retry_after=2.5)
    assert str(exc) == "429 rate limited" and exc.args == ("429 rate limited",)
    assert (exc.status, exc.retry_after) == (429, 2.5)
    bare = RetryableError("timeout")
    assert str(bare) == "timeout" and bare.status is None and bare.retry_after is None
    with pytest.raises(TypeError):
        RetryableError("x", 429)  # keyword-only: a positional status would be a silent mix-up
