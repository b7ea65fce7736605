"""The SQLite score cache: keys, one transaction per write, WAL, several connections."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from pipeline.core.cache import CacheError, ScoreCache, pair_key


def test_pair_key_is_unambiguous_and_stable():
    assert pair_key("ab", "c") != pair_key("a", "bc")
    assert pair_key("q", "d") == pair_key("q", "d")
    assert pair_key("q", "d") != pair_key("d", "q")
    assert len(pair_key("向量", "数据库")) == 64


def test_put_and_get_many(tmp_path):
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        keys = [pair_key("q", f"d{i}") for i in range(1200)]  # more than one IN (...) chunk
        assert cache.put_many("h1", zip(keys, range(1200))) == 1200
        found = cache.get_many("h1", keys + ["absent"])
        assert len(found) == 1200 and found[keys[7]] == 7.0
        assert cache.get_many("h2", keys) == {}  # another scorer's fingerprint: another key space
        assert cache.count("h1") == 1200 and cache.count() == 1200


def test_write_is_one_transaction(tmp_path):
    with ScoreCache(tmp_path / "c.sqlite") as cache:
        with pytest.raises(ValueError, match="non-finite"):
            cache.put_many("h", [("a", 0.5), ("b", float("nan"))])
        assert cache.count() == 0  # nothing of the failed batch is stored


def test_wal_mode_and_persistence(tmp_path):
    path = tmp_path / "c.sqlite"
    with ScoreCache(path) as cache:
        cache.register("h", {"model": "m", "instruction": "x"})
        cache.put_many("h", [("k", 0.25)])
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    with ScoreCache(path) as cache:
        assert cache.get_many("h", ["k"]) == {"k": 0.25}
        assert cache.fingerprint("h") == {"model": "m", "instruction": "x"}
        assert cache.fingerprint("other") is None


def test_two_threads_write_the_same_file(tmp_path):
    path = tmp_path / "c.sqlite"
    ScoreCache(path).close()

    def writer(name: str) -> None:
        with ScoreCache(path) as cache:
            for i in range(50):
                cache.put_many(name, [(f"k{i}", float(i))])

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with ScoreCache(path) as cache:
        assert cache.count("a") == cache.count("b") == 50


def test_bad_files_are_reported(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheError, match="cannot open score cache"):
        ScoreCache(bad)
    path = tmp_path / "v.sqlite"
    ScoreCache(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE info SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(CacheError, match="schema version 99"):
        ScoreCache(path)
