"""Offline evaluation: cost-quality curves and router metrics (APGR, CPT, AIQ)."""

from tandemlm.evaluation.metrics import (
    Curve,
    RouterMetrics,
    aiq,
    apgr,
    auc,
    calls_to_reach,
    cpt,
    curve,
    curve_from_points,
    evaluate_scores,
    optimal_accuracy,
    oracle_scores,
    pgr,
    random_scores,
    threshold_for_rate,
)

__all__ = [
    "Curve",
    "RouterMetrics",
    "aiq",
    "apgr",
    "auc",
    "calls_to_reach",
    "cpt",
    "curve",
    "curve_from_points",
    "evaluate_scores",
    "optimal_accuracy",
    "oracle_scores",
    "pgr",
    "random_scores",
    "threshold_for_rate",
]

# --- evaluation harness (issue 5): imported lazily so `metrics` stays light --------------
_HARNESS = {
    "EvalItem": "datasets", "load_dataset": "datasets",
    "get_scorer": "scorers",
    "EvalFlow": "runner", "EvalRun": "runner", "run_eval": "runner",
    "baseline_flows": "baselines",
    "parse_sweep": "sweep", "run_sweeps": "sweep",
    "load_results": "report", "write_report": "report",
    "distill_dataset": "distill", "distill_traces": "distill", "validate_sft": "distill",
}
__all__ += [  # kept in sync with _HARNESS by a test
    "EvalFlow", "EvalItem", "EvalRun", "baseline_flows", "distill_dataset", "distill_traces",
    "get_scorer", "load_dataset", "load_results", "parse_sweep", "run_eval", "run_sweeps",
    "validate_sft", "write_report",
]


def __getattr__(name: str) -> object:
    if name in _HARNESS:
        import importlib

        return getattr(importlib.import_module(f"tandemlm.evaluation.{_HARNESS[name]}"), name)
    raise AttributeError(f"module 'tandemlm.evaluation' has no attribute {name!r}")
