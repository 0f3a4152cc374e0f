"""Cost-quality curves and router metrics (RouteLLM's and RouterBench's definitions).

Everything works on plain numpy arrays over a labelled table: for every query, whether
(or how well) the weak model answered (``weak``), the same for the strong model
(``strong``), and a router's score (higher = more need for the strong model).

Definitions follow RouteLLM ``routellm/evals/evaluate.py`` and ``evals/benchmarks.py``:

- The curve: thresholds are the ``n + 1`` quantile bin edges of the scores (``pd.qcut``
  edges, duplicates kept); at edge ``i`` a query goes to the strong model when
  ``score >= t`` (``score > t`` at the last edge), giving one point
  (share of strong calls, accuracy) per threshold.
- ``PGR = (acc - weak_acc) / (strong_acc - weak_acc)``.
- ``CPT(p)``: the share of strong calls at which the curve first reaches
  ``weak_acc + p * (strong_acc - weak_acc)``, linearly interpolated between curve points.
  For a non-decreasing curve this is RouteLLM's
  ``np.interp(target, accuracy, strong_percentage)``.
- ``AUC = trapz(accuracy, share)``; ``APGR = (AUC - weak_AUC) / (strong_AUC - weak_AUC)``
  where weak/strong AUC integrate the constant weak/strong accuracy over the same x values.
- AIQ (RouterBench, Hu et al. 2024): area under the non-decreasing convex hull of the
  (cost, quality) points divided by the cost range.

Shares and accuracies are fractions in [0, 1] (RouteLLM prints percentages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

# numpy >= 2 renamed trapz to trapezoid; keep 1.26 working
_trapz = getattr(np, "trapezoid", None) or np.trapz  # type: ignore[attr-defined]  # numpy 1.x name

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


@dataclass(frozen=True)
class Curve:
    """A cost-quality curve: points sorted by share of strong calls.

    Attributes:
        strong_share: share of queries sent to the strong model at each point, ascending.
        accuracy: mean quality at each point.
        thresholds: the score threshold that produced each point (NaN when not applicable).
        weak_accuracy: accuracy when every query goes to the weak model.
        strong_accuracy: accuracy when every query goes to the strong model.
    """

    strong_share: np.ndarray
    accuracy: np.ndarray
    thresholds: np.ndarray
    weak_accuracy: float
    strong_accuracy: float


@dataclass
class RouterMetrics:
    """Summary metrics of one router's curve (see module docstring for definitions)."""

    name: str
    apgr: float
    auc: float
    aiq: float
    cpt: dict[str, float] = field(default_factory=dict)
    calls_for_95pct_strong: float = float("nan")
    weak_accuracy: float = float("nan")
    strong_accuracy: float = float("nan")

    def as_dict(self) -> dict[str, object]:
        """Plain-data view (JSON-serialisable)."""
        return asdict(self)


def _as_float(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty: give at least one labelled query")
    return arr


def pgr(accuracy: float | np.ndarray, weak: float, strong: float) -> float | np.ndarray:
    """Performance gap recovered: ``(acc - weak) / (strong - weak)``.

    Raises:
        ValueError: when the strong and weak models have the same accuracy (no gap).
    """
    gap = strong - weak
    if gap == 0:
        raise ValueError("strong and weak accuracy are equal: the performance gap is zero")
    return (np.asarray(accuracy, dtype=float) - weak) / gap


def curve(
    scores: Sequence[float] | np.ndarray,
    weak: Sequence[float] | np.ndarray,
    strong: Sequence[float] | np.ndarray,
    num_results: int = 10,
) -> Curve:
    """The cost-quality curve of a router exactly as RouteLLM's GSM8K/MMLU benchmarks.

    Args:
        scores: router score per query (higher = send to the strong model).
        weak: weak model's correctness (0/1 or graded quality) per query.
        strong: strong model's correctness per query.
        num_results: number of quantile bins; the curve has ``num_results + 1`` points.

    Returns:
        The curve sorted by share of strong calls (ties keep threshold order).
    """
    s = _as_float(scores, "scores")
    w = _as_float(weak, "weak")
    g = _as_float(strong, "strong")
    if not (s.size == w.size == g.size):
        raise ValueError(f"length mismatch: scores {s.size}, weak {w.size}, strong {g.size}")
    if num_results < 1:
        raise ValueError("num_results must be >= 1")
    # pd.qcut(x, q, retbins=True) edges = linear-interpolated quantiles at linspace(0, 1, q+1)
    edges = np.quantile(s, np.linspace(0.0, 1.0, num_results + 1))
    shares, accs = [], []
    for i, t in enumerate(edges):
        chosen = s > t if i == len(edges) - 1 else s >= t
        shares.append(chosen.mean())
        accs.append(np.where(chosen, g, w).mean())
    return _sorted_curve(np.array(shares), np.array(accs), edges, float(w.mean()), float(g.mean()))


def curve_from_points(
    strong_share: Sequence[float], accuracy: Sequence[float], weak: float, strong: float
) -> Curve:
    """Build a curve from precomputed (share, accuracy) points (e.g. a hand-made table)."""
    x = _as_float(strong_share, "strong_share")
    y = _as_float(accuracy, "accuracy")
    if x.size != y.size:
        raise ValueError("strong_share and accuracy must have the same length")
    return _sorted_curve(x, y, np.full(x.size, np.nan), float(weak), float(strong))


def _sorted_curve(x: np.ndarray, y: np.ndarray, t: np.ndarray, weak: float, strong: float) -> Curve:
    order = np.argsort(x, kind="stable")
    return Curve(x[order], y[order], t[order], weak, strong)


def auc(c: Curve) -> float:
    """Area under the curve, ``trapz(accuracy, strong_share)``."""
    return float(_trapz(c.accuracy, c.strong_share))


def apgr(c: Curve) -> float:
    """Average performance gap recovered (RouteLLM): normalised area under the curve."""
    weak_auc = float(_trapz(np.full(c.accuracy.size, c.weak_accuracy), c.strong_share))
    strong_auc = float(_trapz(np.full(c.accuracy.size, c.strong_accuracy), c.strong_share))
    if strong_auc == weak_auc:
        raise ValueError("APGR is undefined: zero performance gap or a single-point curve")
    return (auc(c) - weak_auc) / (strong_auc - weak_auc)


def calls_to_reach(c: Curve, target_accuracy: float) -> float:
    """Share of strong calls at which the curve first reaches ``target_accuracy``.

    Linear interpolation inside the first segment that crosses the target; NaN when the
    curve never reaches it.
    """
    x, y = c.strong_share, c.accuracy
    if y[0] >= target_accuracy:
        return float(x[0])
    for i in range(1, y.size):
        if y[i] >= target_accuracy:
            y0, y1, x0, x1 = y[i - 1], y[i], x[i - 1], x[i]
            return float(x0 + (target_accuracy - y0) * (x1 - x0) / (y1 - y0))
    return float("nan")


def cpt(c: Curve, p: float) -> float:
    """Call-performance threshold: share of strong calls needed to recover ``p`` of the gap."""
    target = c.weak_accuracy + p * (c.strong_accuracy - c.weak_accuracy)
    return calls_to_reach(c, target)


def _upper_hull(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper concave hull (monotone chain) of points sorted by x."""
    hull: list[tuple[float, float]] = []
    for px, py in sorted(zip(x.tolist(), y.tolist(), strict=True)):
        while len(hull) >= 2:
            (ax, ay), (bx, by) = hull[-2], hull[-1]
            if (bx - ax) * (py - ay) - (by - ay) * (px - ax) >= 0:  # b is on/below line a-p
                hull.pop()
            else:
                break
        if hull and hull[-1][0] == px:
            if py <= hull[-1][1]:
                continue
            hull.pop()
        hull.append((px, py))
    hx, hy = zip(*hull, strict=True)
    return np.array(hx), np.array(hy)


def aiq(
    cost: Sequence[float] | np.ndarray,
    quality: Sequence[float] | np.ndarray,
    cost_range: tuple[float, float] | None = None,
) -> float:
    """Average Improvement in Quality (RouterBench).

    ``AIQ = 1 / (c_max - c_min) * integral of R~(c) dc`` where ``R~`` is the non-decreasing
    convex hull of the (cost, quality) points: the best quality any mix of operating points
    reaches at cost ``c``; beyond the best point the hull stays flat at its quality.

    Args:
        cost: cost of each operating point (e.g. share of strong calls).
        quality: quality of each point.
        cost_range: integration range, default (min cost, max cost).
    """
    x = _as_float(cost, "cost")
    y = _as_float(quality, "quality")
    lo, hi = cost_range if cost_range is not None else (float(x.min()), float(x.max()))
    if hi <= lo:
        raise ValueError("AIQ needs a cost range of positive width")
    hx, hy = _upper_hull(x, y)
    best = int(np.argmax(hy))
    hx, hy = hx[: best + 1], hy[: best + 1]  # non-decreasing part; flat afterwards
    grid = np.union1d(np.clip(hx, lo, hi), [lo, hi])
    # below the cheapest point nothing is reachable except that point's quality at its cost
    vals = np.interp(grid, hx, hy, left=hy[0], right=hy[-1])
    return float(_trapz(vals, grid) / (hi - lo))


def random_scores(n: int, seed: int = 0) -> np.ndarray:
    """Scores of the random baseline router (uniform, reproducible)."""
    return np.random.default_rng(seed).random(n)


def oracle_scores(weak: Sequence[float] | np.ndarray, strong: Sequence[float] | np.ndarray) -> np.ndarray:
    """Scores of the oracle router: the strong model's quality gain over the weak one.

    Queries where only the strong model is right come first (score 1), then ties
    (0.5), then queries where the weak model is better (0).
    """
    w = _as_float(weak, "weak")
    g = _as_float(strong, "strong")
    return (np.clip(g - w, -1.0, 1.0) + 1.0) / 2.0


def optimal_accuracy(weak: Sequence[float], strong: Sequence[float], share: float) -> float:
    """RouteLLM's ``get_optimal_accuracy`` for binary labels: best accuracy at ``share``."""
    w = _as_float(weak, "weak") > 0.5
    g = _as_float(strong, "strong") > 0.5
    bonus = min(share * w.size, float(np.sum(~w & g)))
    return float((np.sum(w) + bonus) / w.size)


def threshold_for_rate(scores: Sequence[float] | np.ndarray, rate: float) -> float:
    """Threshold so that ``score >= threshold`` sends about ``rate`` of queries to the LLM.

    Args:
        scores: router scores on sample queries.
        rate: target share of large-model calls in [0, 1].
    """
    s = _as_float(scores, "scores")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be in [0, 1], got {rate}")
    if rate <= 0.0:
        return float(np.nextafter(s.max(), np.inf))
    ordered = np.sort(s)[::-1]
    k = max(1, round(rate * s.size))
    return float(ordered[k - 1])


def evaluate_scores(
    name: str,
    scores: Sequence[float] | np.ndarray,
    weak: Sequence[float] | np.ndarray,
    strong: Sequence[float] | np.ndarray,
    num_results: int = 10,
    levels: Sequence[float] = (0.2, 0.5, 0.8, 0.95),
) -> tuple[RouterMetrics, Curve]:
    """All metrics of one router on a labelled table.

    Returns:
        (metrics, curve). ``cpt`` keys are ``"20%"``, ``"50%"``, ...;
        ``calls_for_95pct_strong`` is the share of strong calls needed to reach 95% of the
        strong model's accuracy.
    """
    c = curve(scores, weak, strong, num_results=num_results)
    m = RouterMetrics(
        name=name,
        apgr=apgr(c),
        auc=auc(c),
        aiq=aiq(c.strong_share, c.accuracy, cost_range=(0.0, 1.0)),
        cpt={f"{round(p * 100)}%": cpt(c, p) for p in levels},
        calls_for_95pct_strong=calls_to_reach(c, 0.95 * c.strong_accuracy),
        weak_accuracy=c.weak_accuracy,
        strong_accuracy=c.strong_accuracy,
    )
    return m, c
