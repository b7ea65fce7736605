"""Errors raised by the API client.

The split matters for the retry policy: :class:`RetryableError` is worth another attempt (429,
5xx, timeouts, dropped connections, and by default malformed responses), :class:`FatalApiError`
is not (400/401/403/404: asking again cannot help and may cost money). Messages are built here
from already-redacted text, so no message can carry the API key.
"""

from __future__ import annotations

from pipeline.core.errors import PipelineError


class ApiError(PipelineError, RuntimeError):
    """Any failure talking to the reference API; the message says what and where."""


class FatalApiError(ApiError):
    """A response that retrying cannot fix (bad request, bad key, forbidden, not found)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableError(ApiError):
    """A transient failure; ``retry_after`` (seconds) is the server's hint when it sent one."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class ResponseFormatError(ApiError):
    """A 200 response whose body breaks the wire format: not JSON, truncated, or a result set
    that does not give every requested document exactly one finite score."""


class RetriesExhausted(ApiError):
    """Every allowed attempt failed (or the total-time budget ran out)."""


def redact(text: str, *secrets: str | None) -> str:
    """Replace every non-empty secret in ``text`` by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
