"""What the readers of ``pipeline.data`` share: a missing file is one error naming it, and the
problems of a file are collected rather than stopped at the first, then raised as one error
that lists the first few and counts the rest, so a broken file is fixed in one pass.

The table lists a column's bad cells on one line (``line 2: missing value; line 5: ... (and 4
more)``); the dataset one problem a line (``file:3: documents[0].text: empty text``, then
``(and 2 more problem(s))``).
"""

from __future__ import annotations

from pathlib import Path


def require_file(path: Path, what: str, error: type[Exception], key: str | None = None) -> None:
    """``error("<path>: <what> not found (<key>)")`` unless ``path`` is a file; ``key`` names the
    setting that points at it."""
    if not path.is_file():
        raise error(f"{path}: {what} not found" + (f" ({key})" if key else ""))


class Problems:
    """The problems found in one file, in the order found; the listings show the first ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[str] = []

    def add(self, problem: str) -> None:
        self.items.append(problem)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def _more(self) -> int:
        return max(0, len(self.items) - self.limit)

    def inline(self) -> str:
        """``a; b; c (and N more)``"""
        more = f" (and {self._more} more)" if self._more else ""
        return "; ".join(self.items[: self.limit]) + more

    def lines(self) -> str:
        """One problem a line, then ``(and N more problem(s))``."""
        more = f"\n(and {self._more} more problem(s))" if self._more else ""
        return "\n".join(self.items[: self.limit]) + more
