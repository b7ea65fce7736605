"""``python -m pipeline fit``: evaluate on held-out queries, then fit on all rows and export."""

from __future__ import annotations

from pipeline.stages import require_extras

require_extras(__name__)  # before the heavy imports: a missing extra is named, not a missing module

from pipeline.config import PipelineConfig
from pipeline.evaluation import report_dict
from pipeline.stages.common import describe_table, load_table
from pipeline.stages.evaluate import fit_final, run_evaluation
from pipeline.stages.export import check_destination, held_out_summary, run_export


def run(cfg: PipelineConfig) -> int:
    table = load_table(cfg)
    print(describe_table(table))
    check_destination(cfg, table)  # a bad name or a foreign artifact fails before the evaluation runs
    model = fit_final(cfg, table)
    report = run_evaluation(cfg, table, model)
    run_export(cfg, table, model, held_out_summary(report_dict(report, table)))
    return 0
