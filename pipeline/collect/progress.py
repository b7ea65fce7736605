"""One progress bar per source, on stderr (tqdm; off with ``collect.progress=false``)."""

from __future__ import annotations

import sys


def bar(total: int, desc: str, position: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="pair",
        position=position,
        leave=True,
        dynamic_ncols=True,
        mininterval=0.5,
        disable=not enabled or total == 0,
        file=sys.stderr,
    )
