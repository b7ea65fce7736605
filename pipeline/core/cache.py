"""Content-addressed score store (SQLite, WAL): what makes a collect run resumable.

A score is stored under ``(scorer, pair)`` where ``scorer`` is the fingerprint hash of the
source that produced it (API or local scorer: model, template, instruction, ... ) and ``pair``
is the sha256 of the *preprocessed* query and document. So

* a re-run finds every pair it already paid for and sends no request for it;
* changing the model, template, instruction or preprocessing changes the key, never reuses a
  stale score;
* texts themselves are not stored, only their hash (the cache can be shared without the data).

Each API response is written in one transaction (:meth:`ScoreCache.put_many`), so a crash,
Ctrl-C or SIGKILL loses at most the requests in flight. WAL mode with ``synchronous=NORMAL``
survives the process dying at any point (only an OS crash or power loss can drop the last few
commits, which are then simply re-requested). One connection per thread; WAL lets a local scorer
thread and the API event loop write the same file.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError

SCHEMA_VERSION = 1
_CHUNK = 500  # keeps IN (...) lists under SQLite's host-parameter limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS scores (
    scorer TEXT NOT NULL,
    pair   TEXT NOT NULL,
    score  REAL NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (scorer, pair)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scorers (
    hash TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vectors (
    scorer TEXT NOT NULL,
    text   TEXT NOT NULL,
    vector BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (scorer, text)
) WITHOUT ROWID;
"""


class CacheError(PipelineError, RuntimeError):
    """The cache file cannot be used (wrong schema version, corrupt, not a database)."""


def pair_key(query: str, document: str) -> str:
    """sha256 of the length-prefixed (query, document) pair; unambiguous for any texts."""
    q = query.encode("utf-8")
    d = document.encode("utf-8")
    digest = hashlib.sha256()
    digest.update(len(q).to_bytes(8, "big"))
    digest.update(q)
    digest.update(len(d).to_bytes(8, "big"))
    digest.update(d)
    return digest.hexdigest()


class ScoreCache:
    """One SQLite connection to the score store; cheap to open, use one per thread."""

    def __init__(self, path: str | Path, *, timeout_s: float = 60.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(self.path), timeout=timeout_s, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM info WHERE key='schema_version'").fetchone()
            if row is None:
                self._db.execute("INSERT OR IGNORE INTO info VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise CacheError(f"{self.path}: score cache schema version {row[0]}, this code reads {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"{self.path}: cannot open score cache: {exc}") from exc

    # -- lifecycle
    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scorers
    def register(self, scorer_hash: str, fingerprint: dict[str, Any]) -> None:
        """Record what a scorer hash stands for (provenance; never contains secrets)."""
        text = json.dumps(fingerprint, sort_keys=True, default=str)
        self._db.execute("INSERT OR IGNORE INTO scorers VALUES (?, ?, ?)", (scorer_hash, text, time.time()))

    def fingerprint(self, scorer_hash: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT fingerprint FROM scorers WHERE hash=?", (scorer_hash,)).fetchone()
        return json.loads(row[0]) if row else None

    # -- scores
    def get_many(self, scorer_hash: str, keys: Sequence[str]) -> dict[str, float]:
        """Cached scores for the given pair keys (missing keys are absent from the result)."""
        return dict(self._select("scores", "pair", "score", scorer_hash, keys))

    def put_many(self, scorer_hash: str, items: Iterable[tuple[str, float]]) -> int:
        """Store ``(pair_key, score)`` items in one transaction; returns how many."""
        now = time.time()
        rows = []
        for key, score in items:
            value = float(score)
            if not math.isfinite(value):
                raise ValueError(f"refusing to cache non-finite score {value!r} for pair {key[:12]}")
            rows.append((scorer_hash, key, value, now))
        return self._insert("scores", rows)

    # -- embeddings (the embedding report's API side): float64 vectors keyed like scores
    def get_vectors(self, scorer_hash: str, keys: Sequence[str]) -> dict[str, Any]:
        """Cached vectors (numpy float64 arrays) for the given text keys; missing keys are absent."""
        import numpy as np

        rows = self._select("vectors", "text", "vector", scorer_hash, keys)
        return {key: np.frombuffer(blob, dtype="<f8").copy() for key, blob in rows}

    def put_vectors(self, scorer_hash: str, items: Iterable[tuple[str, Any]]) -> int:
        """Store ``(text_key, vector)`` items in one transaction; returns how many."""
        import numpy as np

        now = time.time()
        rows = []
        for key, vector in items:
            arr = np.asarray(vector, dtype="<f8")
            if arr.ndim != 1 or not np.all(np.isfinite(arr)):
                raise ValueError(f"refusing to cache a vector that is not 1-D and finite for text {key[:12]}")
            rows.append((scorer_hash, key, arr.tobytes(), now))
        return self._insert("vectors", rows)

    def _select(self, table: str, key: str, value: str, scorer_hash: str, keys: Sequence[str]) -> Iterable[tuple]:
        """``(key, value)`` rows of ``table`` for ``scorer_hash`` and ``keys``, in chunks that keep
        each ``IN (...)`` under SQLite's host-parameter limit."""
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))
            yield from self._db.execute(
                f"SELECT {key}, {value} FROM {table} WHERE scorer=? AND {key} IN ({marks})", (scorer_hash, *chunk)
            )

    def _insert(self, table: str, rows: list[tuple]) -> int:
        """``rows`` into ``table`` in one transaction (all or nothing); returns how many."""
        if not rows:
            return 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?)", rows)
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return len(rows)

    def count(self, scorer_hash: str | None = None) -> int:
        if scorer_hash is None:
            return int(self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0])
        return int(self._db.execute("SELECT COUNT(*) FROM scores WHERE scorer=?", (scorer_hash,)).fetchone()[0])
