"""Uncertainty of evaluation figures: bootstrap intervals over items and the random bound.

Small evaluations swing widely (at n=20 one item is 5 points), so every figure a report
shows comes with how far it could move:

- :func:`bootstrap_ci`: a seeded percentile bootstrap over items (resample the items with
  replacement, recompute the figure, take the 2.5th and 97.5th percentiles). Works for any
  figure computed from per-item values (accuracy, LLM-call share, APGR, CPT).
- :func:`random_bound`: a random router's APGR, AIQ and CPT as the mean and standard
  deviation over many seeds on the same table (one seed is one draw from a wide
  distribution: at n=20 one seed gave 0.625 where the mean over 200 was 0.526, sd 0.204),
  plus the 2.5-97.5 percentile band a random router lands in.

Both are deterministic for a given seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["RESAMPLES", "SEEDS", "bootstrap_ci", "bootstrap_cis", "mean_ci", "random_bound"]

RESAMPLES = 1000
SEEDS = 1000


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_ci(
    stat: Callable[[np.ndarray], float],
    n: int,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``stat`` over ``n`` items.

    Args:
        stat: the figure computed on a resample, given the item indices (may raise
            ``ValueError`` or return NaN when undefined on that resample: it is skipped).
        n: number of items.
        resamples: bootstrap resamples.
        seed: random seed (the same seed gives the same interval).
        level: coverage of the interval.

    Returns:
        ``(low, high)``, or ``None`` when fewer than half of the resamples are defined.
    """
    if n < 1:
        return None
    values = []
    for idx in _indices(n, resamples, seed):
        try:
            value = float(stat(idx))
        except (ValueError, ZeroDivisionError):
            continue
        if math.isfinite(value):
            values.append(value)
    if len(values) < resamples / 2:
        return None
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_cis(
    stats: Callable[[np.ndarray], Mapping[str, float]],
    n: int,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float] | None]:
    """Like :func:`bootstrap_ci` for several figures computed together on each resample.

    ``stats(indices)`` returns ``{name: value}``; a resample that raises ``ValueError`` is
    skipped as a whole, a NaN value only for its figure.
    """
    collected: dict[str, list[float]] = {}
    for idx in _indices(max(n, 1), resamples, seed) if n > 0 else []:
        try:
            values = stats(idx)
        except (ValueError, ZeroDivisionError):
            continue
        for name, value in values.items():
            if value is not None and math.isfinite(float(value)):
                collected.setdefault(name, []).append(float(value))
    tail = (1.0 - level) / 2 * 100
    out: dict[str, tuple[float, float] | None] = {}
    for name, got in collected.items():
        if len(got) < resamples / 2:
            out[name] = None
            continue
        low, high = np.percentile(got, [tail, 100 - tail])
        out[name] = (float(low), float(high))
    return out


def mean_ci(
    values: Sequence[float] | np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0, level: float = 0.95
) -> tuple[float, float] | None:
    """Bootstrap interval of the mean of per-item ``values`` (vectorised)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return None
    means = arr[_indices(arr.size, resamples, seed)].mean(axis=1)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def _stats(values: list[float]) -> dict[str, Any]:
    arr = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    if arr.size == 0:
        return {"mean": None, "sd": None, "band": None}
    low, high = np.percentile(arr, [2.5, 97.5])
    return {"mean": float(arr.mean()), "sd": float(arr.std(ddof=1)) if arr.size > 1 else 0.0,
            "band": [float(low), float(high)]}


def random_bound(
    weak: Sequence[float] | np.ndarray,
    strong: Sequence[float] | np.ndarray,
    *,
    seeds: int = SEEDS,
    num_results: int = 10,
    levels: Sequence[float] = (0.5, 0.8, 0.95),
) -> dict[str, Any]:
    """A random router's metrics over ``seeds`` seeds on one table.

    Returns:
        ``{"seeds", "apgr": {"mean", "sd", "band"}, "aiq": {...}, "cpt": {"50%": {...}},
        "apgr_values": [...]}`` (``band``: the 2.5-97.5 percentiles over seeds;
        ``apgr_values`` lets a caller say how many random routers a real one beats).

    Raises:
        ValueError: no quality gap between the weak and strong model.
    """
    from tandemlm.evaluation.metrics import evaluate_scores

    n = len(weak)
    apgrs, aiqs = [], []
    cpts: dict[str, list[float]] = {f"{round(p * 100)}%": [] for p in levels}
    for seed in range(seeds):
        scores = np.random.default_rng(seed).random(n)
        m, _ = evaluate_scores("random", scores, weak, strong, num_results, levels=levels)
        apgrs.append(m.apgr)
        aiqs.append(m.aiq)
        for key, values in cpts.items():
            values.append(m.cpt[key])
    return {
        "seeds": seeds,
        "apgr": _stats(apgrs),
        "aiq": _stats(aiqs),
        "cpt": {key: _stats(values) for key, values in cpts.items()},
        "apgr_values": apgrs,
    }
