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
