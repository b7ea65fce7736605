"""The modules that decide correctness, each with the test files that guard it: what
``make mutate`` runs mutmut on, one module at a time (mutation/run_mutmut.py).

Left out on purpose: the Ray, ``dvc repro``, wheel-build and kill -9 tests (minutes each, and the
Ray path shares collect's guards with the in-process path, whose tests kill those mutants).
"""

from __future__ import annotations

MODULES: dict[str, list[str]] = {
    # calibrators and fusion
    "pipeline/calibration/calibrators.py": [
        "tests/calibration/test_calibrators.py",
        "tests/calibration/test_calibrators_fit.py",
        "tests/calibration/test_param_ranges.py",
        "tests/calibration/test_input_dtypes.py",
        "tests/fit/test_fast_paths.py",
    ],
    "pipeline/calibration/fusion.py": [
        "tests/calibration/test_fusion_units.py",
        "tests/calibration/test_fusion.py",
        "tests/calibration/test_fusion_target.py",
        "tests/calibration/test_param_ranges.py",
        "tests/calibration/test_input_dtypes.py",
    ],
    "pipeline/calibration/fusion_scale.py": [
        "tests/calibration/test_fusion_scale.py",
        "tests/calibration/test_fusion.py",
        "tests/calibration/test_fusion_target.py",
        "tests/calibration/test_input_dtypes.py",
    ],
    "pipeline/calibration/pairwise.py": [
        "tests/calibration/test_pairwise.py",
        "tests/calibration/test_fusion.py",
        "tests/calibration/test_fusion_target.py",
        "tests/fit/test_fast_paths.py",
    ],
    # the fit-at-scale shortcuts: the weight bootstrap with fixed maps, NNLS on the normal equations
    "pipeline/calibration/fusion_bootstrap.py": [
        "tests/calibration/test_fusion_bootstrap_units.py",
        "tests/fit/test_fast_paths.py",
    ],
    "pipeline/calibration/nnls.py": ["tests/fit/test_fast_paths.py", "tests/calibration/test_calibrators_fit.py"],
    # keep/drop decisions at thresholds, per-score intervals (fitted, then applied numpy-only)
    "pipeline/calibration/decisions.py": ["tests/calibration/test_decisions.py", "tests/fit/test_decision_report.py"],
    "pipeline/calibration/conformal.py": ["tests/calibration/test_conformal.py", "tests/fit/test_interval_artifact.py"],
    "pipeline/runtime/intervals.py": [
        "tests/calibration/test_conformal.py",
        "tests/fit/test_interval_artifact.py",
        "tests/serve/test_return_interval.py",
    ],
    "pipeline/calibration/groups.py": ["tests/calibration/test_groups.py"],
    # budgeted collection: which pairs to buy, when to stop, what it may spend
    "pipeline/calibration/budget.py": ["tests/calibration/test_budget.py", "tests/calibration/test_budget_run.py"],
    "pipeline/calibration/budget_run.py": ["tests/calibration/test_budget_run.py", "tests/calibration/test_budget.py"],
    "pipeline/api/spend.py": ["tests/api/test_spend.py"],
    # metrics and the bootstrap
    "pipeline/calibration/metrics.py": [
        "tests/calibration/test_metrics.py",
        "tests/calibration/test_input_dtypes.py",
        "tests/fit/test_fast_paths.py",
    ],
    # the numpy-only runtime and artifact verification
    "pipeline/runtime/spec.py": ["tests/runtime/test_spec.py", "tests/runtime/test_inference.py"],
    "pipeline/runtime/loader.py": [
        "tests/runtime/test_inference.py",
        "tests/runtime/test_spec.py",
        "tests/fit/test_release_artifacts.py",
        "tests/runtime/test_legacy_artifacts.py",
    ],
    # the API client: retry, mapping, cache key, redaction, pacing
    "pipeline/api/retry.py": [
        "tests/api/test_retry_ratelimit.py",
        "tests/api/test_client.py",
        "tests/api/test_retry_policy.py",
    ],
    "pipeline/api/ratelimit.py": [
        "tests/api/test_retry_ratelimit.py",
        "tests/api/test_conformance.py",
        "tests/api/test_ratelimit_edges.py",
    ],
    "pipeline/api/adapters.py": [
        "tests/api/test_adapters.py",
        "tests/api/test_client.py",
        "tests/api/test_conformance.py",
        "tests/api/test_adapter_messages.py",
    ],
    "pipeline/api/collector.py": [
        "tests/api/test_api_fingerprint.py",
        "tests/api/test_conformance.py",
        "tests/api/test_collector_plan.py",
        "tests/api/test_collector_run.py",
    ],
    "pipeline/api/errors.py": ["tests/api/test_client.py", "tests/api/test_errors.py"],
    # collect's completeness and finiteness guards
    "pipeline/collect/local_side.py": ["tests/collect/test_local_side.py"],
    "pipeline/collect/units.py": ["tests/collect/test_local_side.py"],
    # serve's checks and batcher
    "pipeline/serve/batcher.py": ["tests/serve/test_batcher.py"],
    # SiliconFlow's wire format, both directions (servers and fake validate/answer, the client builds/reads)
    "pipeline/wire.py": [
        "tests/serve/test_wire.py",
        "tests/api/test_adapters.py",
        "tests/api/test_adapter_messages.py",
    ],
    # align's ranking and verdict
    "pipeline/align/search.py": ["tests/align/test_search.py"],
    # embed-check's gate
    "pipeline/embed_check/compare.py": ["tests/embed_check/test_compare.py"],
}
