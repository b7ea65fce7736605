"""Helpers shared by the fit-side stages: read the configured table, report errors cleanly."""

from __future__ import annotations

from pipeline.config import PipelineConfig
from pipeline.data import PairedTable, TableError, read_table


def load_table(cfg: PipelineConfig) -> PairedTable:
    d = cfg.data
    table = read_table(d.path, target=d.target, sources=list(d.sources), query_col=d.query_col, doc_col=d.doc_col,
                       fmt=d.format.value)
    if d.compare:
        overlap = sorted(set(d.compare) & set(d.sources))
        if overlap:
            raise TableError(f"data.compare lists {overlap}, which data.sources fits already")
        other = read_table(d.path, target=d.target, sources=list(d.compare), query_col=d.query_col, doc_col=d.doc_col,
                           fmt=d.format.value)
        table.compare = {name: other.sources[:, j] for j, name in enumerate(other.source_names)}
    return table


def describe_table(table: PairedTable) -> str:
    simulated = " [SIMULATED demo data: not real API scores]" if table.meta.get("simulated") else ""
    from pipeline.console import wrapped

    return wrapped(f"table {table.path}: {table.n_rows} pairs, {table.n_queries} queries, "
                   f"target '{table.target_name}', sources {table.source_names}{simulated}")
