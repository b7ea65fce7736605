"""Hand-planted bugs the suite must catch: each patch in mutation/patches/ is a small, realistic bug
that once slipped past every test (tests-that-catch issue), with the test files a developer would
naturally run for the module it touches. ``make mutate`` applies each to a copy of the working tree
and reports it killed (a test failed) or survived.

mutmut only mutates code inside functions and only in simple ways; these cover whole behaviours
(a constant set, a guard, a gate) that its operators would not produce.
"""

from __future__ import annotations

#: patch file (mutation/patches/<name>.patch) -> the test files that must catch it
EXAMPLES: dict[str, list[str]] = {
    "01-bootstrap-never-draws-the-last-query": ["tests/calibration/test_metrics.py"],
    "02-a-file-without-a-recorded-sha256-is-loaded": ["tests/runtime/test_inference.py"],
    "03-http-408-is-not-retried": ["tests/api/test_client.py", "tests/api/test_retry_ratelimit.py"],
    "04-a-nan-score-reaches-the-cache": ["tests/collect/test_collect.py"],
    "05-serve-accepts-any-instruction-when-the-api-default-was-used": ["tests/serve/test_serve_chunking.py"],
    "06-the-embed-check-gate-uses-the-mean-cosine": [
        "tests/embed_check/test_compare.py",
        "tests/embed_check/test_embed_check.py",
    ],
}
