"""Paired-score table: one row per (query_id, doc_id), one float column per score source.

This is the contract between ``collect`` (which writes it) and ``fit`` (which reads it). Which
column is the reference (target) and which are local sources is configuration, not schema.
A sidecar ``<table>.meta.json`` (written by collect, or by the demo simulator) records where
each column came from: model ids, revisions, scorer fingerprints, and whether it is simulated.

Validation never drops a row silently: every problem is an error naming file, line/row and
column, except queries with a single document, which are kept (they count for score metrics)
and reported (they cannot count for rank metrics).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.files import atomic_output_path, atomic_write_json, commit_output, sha256_file
from pipeline.data.validation import Problems, require_file

MAX_LISTED = 5


class TableError(PipelineError, ValueError):
    """The paired-score table cannot be used as configured; the message says where and why."""


@dataclass
class PairedTable:
    """A validated paired-score table, in memory, rows in file order."""

    path: Path
    sha256: str
    query_ids: np.ndarray  # object array of str
    doc_ids: np.ndarray  # object array of str
    target: np.ndarray  # (n,) float64
    sources: np.ndarray  # (n, k) float64
    target_name: str
    source_names: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    #: columns only reported raw (``data.compare``), same rows
    compare: dict[str, np.ndarray] = field(default_factory=dict)
    #: (query_ids it was computed from, codes, first rows, sizes): see _query_index
    _index: tuple | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def n_rows(self) -> int:
        return int(self.target.shape[0])

    @property
    def n_queries(self) -> int:
        return int(self._query_index()[2].shape[0])

    def group_codes(self) -> np.ndarray:
        """Integer query codes (0..n_queries-1) in order of first appearance; used for CV groups.
        Computed once per table (a read-only array: the unique of a million string ids costs a
        second, and evaluation asks for it many times)."""
        return self._query_index()[0]

    def small_queries(self) -> int:
        """Number of queries with fewer than 2 documents (excluded from rank metrics only)."""
        return int(np.sum(self._query_index()[2] < 2))

    def _query_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(group codes, first row of each code's query, documents per query), computed once."""
        if self._index is None or self._index[0] is not self.query_ids:
            _, first, inverse, counts = np.unique(
                self.query_ids, return_index=True, return_inverse=True, return_counts=True
            )
            rank = np.argsort(np.argsort(first))
            codes = rank[inverse.ravel()]
            codes.setflags(write=False)
            self._index = (self.query_ids, codes, np.sort(first), counts[np.argsort(rank)])
        return self._index[1:]


def detect_format(path: Path, fmt: str = "auto") -> str:
    if fmt != "auto":
        return fmt
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return "parquet"
    if suffix in {".csv", ".tsv", ".txt"}:
        return "csv"
    raise TableError(f"{path}: cannot tell the table format from the suffix '{suffix}'; set data.format=csv or parquet")


def _location(fmt: str, index: int) -> str:
    # CSV: the header is line 1, so data row i (0-based) is line i + 2.
    return f"line {index + 2}" if fmt == "csv" else f"row {index + 1}"


def _read_frame(path: Path, fmt: str, numeric: Sequence[str] = ()):
    """The file as a frame. CSV score columns (``numeric``) are parsed as numbers by pandas' C
    parser (the same values as Python's ``float``, 10x faster than text plus a conversion per
    cell); when a cell does not parse, the file is read as text and :func:`_float_column` names
    every bad cell."""
    import pandas as pd

    require_file(path, "paired-score table", TableError)
    try:
        if fmt == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            header = pd.read_csv(path, nrows=0, sep=sep).columns
            typed = {c: (np.float64 if c in set(numeric) else object) for c in header}
            try:
                return pd.read_csv(path, dtype=typed, keep_default_na=False, sep=sep)
            except ValueError:
                pass  # a score cell that is not a number: read as text below, to name it
            return pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep)
        return pd.read_parquet(path)
    except TableError:
        raise
    except Exception as exc:
        raise TableError(f"{path}: cannot read as {fmt}: {exc}") from exc


def _float_column(frame, column: str, path: Path, fmt: str) -> np.ndarray:
    """Parse one score column; every non-numeric, missing, NaN or infinite cell is an error."""
    raw = frame[column].to_numpy()
    if fmt != "csv" and not (np.issubdtype(raw.dtype, np.number) and not np.issubdtype(raw.dtype, np.bool_)):
        first = next((v for v in raw if v is not None), None)
        raise TableError(
            f"{path}: column '{column}': a {fmt} score column must be numeric, it holds "
            f"{raw.dtype} values (row 1: {str(first)[:40]!r}); write the scores as numbers"
        )
    try:
        values = np.asarray(raw, dtype=np.float64)  # parsed already, or the same float() per cell in C
    except (TypeError, ValueError):
        values = None
    if values is not None and np.isfinite(values).all():
        return values
    # some cell is bad: the loop below finds and names every one
    values = np.empty(raw.shape[0], dtype=np.float64)
    problems = Problems(MAX_LISTED)
    for i, cell in enumerate(raw):
        if cell is None or (isinstance(cell, str) and cell.strip() == ""):
            problems.add(f"{_location(fmt, i)}: missing value")
            values[i] = np.nan
            continue
        try:
            value = float(cell)
        except (TypeError, ValueError):
            problems.add(f"{_location(fmt, i)}: non-numeric value {str(cell)[:40]!r}")
            values[i] = np.nan
            continue
        if not math.isfinite(value):
            problems.add(f"{_location(fmt, i)}: {value!r} is not a finite number")
        values[i] = value
    if problems:
        raise TableError(f"{path}: column '{column}': {problems.inline()}")
    return values


def _id_column(frame, column: str, path: Path, fmt: str) -> np.ndarray:
    series = frame[column]
    if not series.isna().any():
        text = series.astype(str).str.strip()
        if not ((text == "") | (text.str.lower() == "nan")).any():
            return text.to_numpy(dtype=object)  # the same ids as the loop below, vectorised
    # an empty id somewhere: the loop finds and names the first
    raw = series.to_numpy()
    out = np.empty(raw.shape[0], dtype=object)
    for i, cell in enumerate(raw):
        text = "" if cell is None else str(cell).strip()
        if text == "" or text.lower() == "nan":
            raise TableError(f"{path}: {_location(fmt, i)}, column '{column}': empty id")
        out[i] = text
    return out


def _check_unique_pairs(qids: np.ndarray, dids: np.ndarray, path: Path, fmt: str, query_col: str, doc_col: str) -> None:
    """Every (query, document) pair once; the first repeat is named with the line it repeats."""
    import pandas as pd

    repeated = pd.DataFrame({"q": qids, "d": dids}).duplicated(keep="first").to_numpy()
    if not repeated.any():
        return
    i = int(np.argmax(repeated))
    key = (qids[i], dids[i])
    first = int(np.flatnonzero((qids[:i] == key[0]) & (dids[:i] == key[1]))[0])
    raise TableError(
        f"{path}: {_location(fmt, i)}: duplicate ({query_col}, {doc_col}) = {key}, first seen at {_location(fmt, first)}"
    )


def read_table(
    path: str | Path,
    *,
    target: str,
    sources: Sequence[str],
    query_col: str = "query_id",
    doc_col: str = "doc_id",
    fmt: str = "auto",
) -> PairedTable:
    """Read and validate a paired-score table (CSV or Parquet)."""
    path = Path(path)
    require_file(path, "paired-score table", TableError, "data.path")  # before the suffix: the first thing to fix
    fmt = detect_format(path, fmt)
    if not sources:
        raise TableError("data.sources is empty: name at least one local score column")
    if target in sources:
        raise TableError(f"column '{target}' is both the target and a source")
    if len(set(sources)) != len(sources):
        raise TableError(f"data.sources lists a column twice: {list(sources)}")
    frame = _read_frame(path, fmt, numeric=[target, *sources])
    wanted = [query_col, doc_col, target, *sources]
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise TableError(f"{path}: missing column(s) {missing}; the file has {list(map(str, frame.columns))}")
    if len(frame) == 0:
        raise TableError(f"{path}: the table has no rows")
    qids = _id_column(frame, query_col, path, fmt)
    dids = _id_column(frame, doc_col, path, fmt)
    _check_unique_pairs(qids, dids, path, fmt, query_col, doc_col)
    target_values = _float_column(frame, target, path, fmt)
    source_values = np.column_stack([_float_column(frame, c, path, fmt) for c in sources])
    return PairedTable(
        path=path,
        sha256=sha256_file(path),
        query_ids=qids,
        doc_ids=dids,
        target=target_values,
        sources=source_values,
        target_name=target,
        source_names=list(sources),
        meta=read_table_meta(path),
    )


def write_table(path: str | Path, columns: dict[str, Sequence[Any]], fmt: str = "auto") -> Path:
    """Write a table atomically; ``columns`` maps column name -> values (ids first by convention)."""
    import pandas as pd

    path = Path(path)
    fmt = detect_format(path, fmt)
    frame = pd.DataFrame(columns)
    tmp, final = atomic_output_path(path)
    try:
        if fmt == "csv":
            frame.to_csv(tmp, index=False, float_format="%.10g")
        else:
            frame.to_parquet(tmp, index=False)
        return commit_output(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def meta_path(table_path: str | Path) -> Path:
    table_path = Path(table_path)
    return table_path.with_name(table_path.name + ".meta.json")


def read_table_meta(table_path: str | Path) -> dict[str, Any]:
    """The sidecar metadata of a table, or ``{}`` when there is none."""
    import json

    path = meta_path(table_path)
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TableError(f"{path}: invalid JSON: {exc}") from exc


def write_table_meta(table_path: str | Path, meta: dict[str, Any]) -> Path:
    """Sidecar schema: ``{"simulated": bool, "sources": {column: {"kind", "model", "revision",
    "fingerprint", ...}}, ...}``; free-form beyond that, never containing secrets."""
    return atomic_write_json(meta_path(table_path), meta)
