"""Atomic file writes and content hashes, the one place every stage writes files through.

A stage that crashes half-way must never leave a file that looks complete: every write goes to
a temporary file in the same directory, is flushed and fsynced, then renamed over the target
(``os.replace`` is atomic on POSIX and Windows within one filesystem).
"""

from __future__ import annotations

import os
from datetime import UTC
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in chunks (tables can be large)."""
    import hashlib  # lazily: OpenSSL's load is most of `import pipeline.inference` beyond numpy

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def utc_now() -> str:
    """UTC timestamp, to the second, for the files stages write (manifests, sidecars)."""
    from datetime import datetime

    return datetime.now(UTC).replace(microsecond=0).isoformat()


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def umask() -> int:
    """The process umask, read without changing it (``os.umask`` can only be read by setting it,
    which would briefly leave other threads creating files with a wrong mask)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)  # no /proc: read it the only portable way, and put it back
    os.umask(current)
    return current


def release_mode(directory: bool = False) -> int:
    """What a plain ``open``/``mkdir`` would give (0644 / 0755 under the usual umask 022):
    temporary files and directories start private (0600 / 0700), which would leave an artifact
    unreadable to the service account that loads it."""
    return (0o777 if directory else 0o666) & ~umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    import tempfile  # lazily: keeps `import pipeline.inference` light

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, release_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def dumps_json(obj: Any) -> str:
    """Canonical JSON used for every file we hash: sorted keys, stable floats, trailing newline."""
    import json

    return json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, dumps_json(obj))


def atomic_output_path(path: str | os.PathLike) -> tuple[Path, Path]:
    """Return ``(tmp, final)`` for writers that need a real path (Parquet, savefig).

    The caller writes ``tmp`` then calls :func:`commit_output` (or removes ``tmp`` on error).
    """
    import tempfile

    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=final.suffix or ".tmp", dir=final.parent)
    os.fchmod(fd, release_mode())
    os.close(fd)
    return Path(tmp), final


def commit_output(tmp: Path, final: Path) -> Path:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final
