"""A table bought by a budgeted collection (sidecar ``budget.uniform_queries``): `fit` trains on
every row but computes its held-out figures on the uniformly drawn queries only, and says so."""

from __future__ import annotations

import json

import numpy as np

from pipeline.__main__ import main
from pipeline.calibration.metrics import agreement
from pipeline.calibration.synthetic import skewed_sample
from pipeline.data.table import read_table_meta, write_table, write_table_meta


def test_held_out_figures_come_from_the_uniform_part_only(tmp_path, capsys):
    s = skewed_sample(120, seed=3)
    qids = np.char.add("q", s.groups.astype(str))
    path = write_table(
        tmp_path / "t.csv",
        {"query_id": qids, "doc_id": np.arange(s.local.size).astype(str), "reference": s.reference, "local": s.local},
    )
    uniform = sorted({f"q{q}" for q in range(0, 120, 3)})
    write_table_meta(path, {**read_table_meta(path), "budget": {"uniform_queries": uniform, "rounds": []}})
    args = [f"data.path={path}", "data.sources=[local]", "evaluate.n_bootstrap=50", "calibrator=poly"]
    assert main(["evaluate", *args, f"report.dir={tmp_path / 'r'}"]) == 0
    captured = capsys.readouterr()
    out = " ".join((captured.out + captured.err).split())
    rows = np.isin(qids, uniform)
    assert f"held-out figures on the {len(uniform)} queries drawn uniformly at random ({rows.sum()} of" in out
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    raw = metrics["configurations"]["raw local"]["metrics"]
    expected, _ = agreement(s.local[rows], s.reference[rows], qids[rows], n_bootstrap=50, seed=0)
    assert raw["mae"]["value"] == round(expected["mae"].value, 6)
    everything, _ = agreement(s.local, s.reference, qids, n_bootstrap=0)
    assert abs(everything["mae"].value - expected["mae"].value) > 1e-4  # the restriction is visible
