"""Token estimates, used before a request is sent: by the TPM limiter and by the dry run.

The estimate is deliberately biased high, because it guards a rate limit and a bill:

* every CJK ideograph, kana or hangul syllable counts as one token (Qwen's BPE merges few of
  them; one per character is close for Chinese and slightly high for common words);
* every other run of characters counts as ``ceil(len / 3)`` tokens (English prose averages about
  four characters per token, code and formulas about three).

A rerank request is billed per (query, document) pair, so its estimate is
``sum(est(query) + est(document) + overhead)`` over its documents, where ``overhead`` is
``api.token_overhead_per_document`` (the provider's prompt template, if it bills it). An
embeddings request is ``sum(est(text))``. When a response reports real usage, the usage summary
uses it and the limiter is corrected by the difference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _is_cjk(code: int) -> bool:
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x3400 <= code <= 0x4DBF  # CJK extension A
        or 0x4E00 <= code <= 0x9FFF  # CJK unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # hangul syllables
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= code <= 0x2FA1F  # extensions B..
    )


def estimate_tokens(text: str) -> int:
    """Upper-leaning token estimate of one text (at least 1)."""
    cjk = sum(1 for ch in text if _is_cjk(ord(ch)))
    other = len(text) - cjk
    return max(1, cjk + math.ceil(other / 3))


def estimate_rerank_tokens(query: str, documents: Sequence[str], overhead_per_document: int = 0) -> int:
    q = estimate_tokens(query)
    return sum(q + estimate_tokens(d) + overhead_per_document for d in documents)


def estimate_embedding_tokens(texts: Sequence[str]) -> int:
    return sum(estimate_tokens(t) for t in texts)
