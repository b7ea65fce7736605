"""The project's terminal style, in one place: lines folded to 100 columns, warnings as
``WARNING: <text>`` on stderr, each once. Imports only the standard library, so every stage
(collect included) can use it without loading the evaluation stack."""

from __future__ import annotations

import sys
import textwrap

#: widest line the project prints (a long line wraps before it, continuation lines indented)
WIDTH = 100


def wrap_lines(text: str, indent: str = "  ") -> list[str]:
    return textwrap.wrap(text, width=WIDTH, subsequent_indent=indent, break_on_hyphens=False)


def wrapped(text: str) -> str:
    """``text`` folded to the report's width (continuation lines indented), for one-off lines."""
    return "\n".join(wrap_lines(text))


def print_warnings(messages: list[str]) -> None:
    """The project's one warning style: ``WARNING: <text>`` on stderr, each message once."""
    for message in dict.fromkeys(messages):
        print(wrapped(f"WARNING: {message}"), file=sys.stderr)
