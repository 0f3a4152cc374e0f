"""Threshold sweeps: evaluate a routed flow at many thresholds and measure its router.

``--sweep threshold=0.1:0.9:9`` sets the router threshold of every route of a flow (or
``gate.threshold=...`` only route ``gate``) to 9 evenly spaced values and evaluates each,
giving the measured cost-quality curve (share of LLM calls vs accuracy). With call replay
the SLM and LLM calls of all thresholds are made once.

Router metrics come from :mod:`tandemlm.evaluation.metrics` (RouteLLM/RouterBench
definitions, one implementation shared with offline router evaluation), on the table
(router score, SLM-only correctness, LLM-only correctness) per item:

- ``router``: the flow's own router scores (recorded at every threshold; the first route).
- ``random``: uniform random scores; ``oracle``: the strong model's gain over the weak one.
- ``measured``: APGR/AIQ of the measured sweep points, with the SLM-only (0 LLM calls) and
  LLM-only (all LLM calls) baselines as the curve's end points.

The table is exact for flows whose small branch gives the SLM-only answer and whose large
branch gives the LLM-only answer (a cascade or a router with the baselines' prompts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tandemlm.errors import TandemError
from tandemlm.evaluation.baselines import baseline_flows
from tandemlm.evaluation.cache import EvalCache
from tandemlm.evaluation.runner import EvalFlow, EvalRun, run_eval, summarize_records

__all__ = ["parse_sweep", "router_metrics", "run_sweeps", "with_threshold"]

MAX_POINTS = 101


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """Parse ``threshold=START:STOP:N`` or ``threshold=V1,V2,...`` (or ``ROUTE.threshold=...``).

    Raises:
        TandemError: bad syntax, values outside [0, 1] or too many points.
    """
    param, sep, values = text.partition("=")
    param = param.strip()
    if not sep or not (param == "threshold" or param.endswith(".threshold")):
        raise TandemError(
            f"--sweep {text!r}: expected threshold=START:STOP:N (e.g. threshold=0.1:0.9:9) "
            "or ROUTE.threshold=V1,V2,..."
        )
    try:
        if ":" in values:
            start, stop, count = values.split(":")
            n = int(count)
            if n < 1 or n > MAX_POINTS:
                raise TandemError(f"--sweep: give between 1 and {MAX_POINTS} points, not {n}")
            lo, hi = float(start), float(stop)
            points = [lo] if n == 1 else [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        else:
            points = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise TandemError(f"--sweep {text!r}: values must be numbers, e.g. threshold=0.1:0.9:9") from None
    if not points or len(points) > MAX_POINTS:
        raise TandemError(f"--sweep: give between 1 and {MAX_POINTS} values")
    if any(not 0.0 <= p <= 1.0 for p in points):
        raise TandemError("--sweep: thresholds must lie in [0, 1]")
    return param, [round(p, 6) for p in points]


def with_threshold(flow: EvalFlow, param: str, value: float) -> EvalFlow:
    """A copy of ``flow`` with the router threshold(s) set to ``value``.

    Raises:
        TandemError: the flow has no route (or no route with the given name).
    """
    spec = flow.spec
    target = param.rsplit(".", 1)[0] if "." in param else None
    routes = []
    hit = False
    for route in spec.routes:
        if target is None or route.node_name() == target or route.name == target:
            router = route.router.model_copy(update={"threshold": value})
            route = route.model_copy(update={"router": router})
            hit = True
        routes.append(route)
    if not hit:
        names = ", ".join(r.node_name() for r in spec.routes) or "none"
        raise TandemError(
            f"flow {flow.label!r}: cannot sweep {param!r}: no such route (routes: {names})"
        )
    label = f"{flow.label}@{param}={value:g}"
    return EvalFlow(
        label=label,
        spec=spec.model_copy(update={"routes": routes}),
        models=flow.models,
        kind="sweep",
        params={"base": flow.label, param: value},
    )


def _clean(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def router_metrics(
    scores: Sequence[float], weak: Sequence[float], strong: Sequence[float], *, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """APGR, AUC, AIQ and CPT of a router beside the random and oracle routers.

    Uses :func:`tandemlm.evaluation.metrics.evaluate_scores`; a table without a quality gap
    between the models gets ``None`` metrics and an ``error`` note instead of raising.
    """
    from tandemlm.evaluation import metrics

    out: dict[str, dict[str, Any]] = {}
    candidates = {
        "router": list(scores),
        "random": metrics.random_scores(len(scores), seed=seed).tolist(),
        "oracle": metrics.oracle_scores(weak, strong).tolist(),
    }
    for name, values in candidates.items():
        try:
            m, _ = metrics.evaluate_scores(name, values, weak, strong)
        except ValueError as exc:
            out[name] = {"apgr": None, "aiq": None, "auc": None, "cpt": {}, "error": str(exc)}
            continue
        data = m.as_dict()
        data["cpt"] = {k: _clean(v) for k, v in m.cpt.items()}
        out[name] = {k: (_clean(v) if isinstance(v, float) else v) for k, v in data.items()}
    return out


def _measured(points: list[dict[str, Any]], weak: float, strong: float) -> dict[str, Any]:
    from tandemlm.evaluation import metrics

    xs = [0.0, *[p["llm_share"] for p in points], 1.0]
    ys = [weak, *[p["accuracy"] for p in points], strong]
    result: dict[str, Any] = {"cpt": {}}
    try:
        c = metrics.curve_from_points(xs, ys, weak, strong)
        result.update(
            apgr=metrics.apgr(c),
            auc=metrics.auc(c),
            aiq=metrics.aiq(c.strong_share, c.accuracy, cost_range=(0.0, 1.0)),
            cpt={f"{round(p * 100)}%": _clean(metrics.cpt(c, p)) for p in (0.5, 0.8, 0.95)},
        )
    except ValueError as exc:
        result.update(apgr=None, auc=None, aiq=None, error=str(exc))
    return result


def run_sweeps(
    run: EvalRun,
    flows: Sequence[EvalFlow],
    sweep: tuple[str, list[float]],
    *,
    cache: EvalCache | str | Path = ".tandem/eval/cache.db",
    concurrency: int = 1,
    replay: bool = True,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Sweep ``flows`` (those with routes) over ``sweep`` on ``run``'s items and scorer.

    SLM-only and LLM-only baselines are taken from ``run`` when present, else evaluated.

    Returns:
        One dict per flow: ``flow``, ``param``, ``points`` (``value``, ``label``, ``accuracy``,
        ``llm_share``, ``latency_mean``, ``cost_mean``), ``weak_accuracy``,
        ``strong_accuracy`` and ``metrics`` (``router``, ``random``, ``oracle``, ``measured``).

    Raises:
        TandemError: none of ``flows`` has a route.
    """
    param, values = sweep
    routed = [f for f in flows if f.spec.routes]
    if not routed:
        raise TandemError("--sweep needs a flow with a route (a router and branches)")
    out = []
    for flow in routed:
        variants = [with_threshold(flow, param, v) for v in values]
        extra = [b for b in baseline_flows(flow) if b.label not in run.records]
        swept = run_eval(
            [*extra, *variants], run.items, scorer=run.scorer, cache=cache,
            concurrency=concurrency, replay=replay, progress=progress, dataset=run.dataset,
        )
        records = {**run.records, **swept.records}
        run.records.update(swept.records)
        run.flows.extend(f for f in [*extra, *variants] if f.label not in {x.label for x in run.flows})
        run.models.update(swept.models)
        ids = [item.id for item in run.items]
        weak = [float(records["slm-only"][i]["score"]) for i in ids]
        strong = [float(records["llm-only"][i]["score"]) for i in ids]
        first = variants[0].label
        scores = [_first_score(records[first][i]) for i in ids]
        points = []
        for variant, value in zip(variants, values, strict=True):
            s = summarize_records([records[variant.label][i] for i in ids])
            points.append(
                {
                    "value": value,
                    "label": variant.label,
                    "accuracy": s["accuracy"],
                    "llm_share": s["llm_share"],
                    "latency_mean": s["latency_mean"],
                    "cost_mean": s["cost_mean"],
                }
            )
        weak_acc, strong_acc = sum(weak) / len(weak), sum(strong) / len(strong)
        metrics = router_metrics(scores, weak, strong)
        metrics["measured"] = _measured(points, weak_acc, strong_acc)
        out.append(
            {
                "flow": flow.label,
                "param": param,
                "points": points,
                "weak_accuracy": weak_acc,
                "strong_accuracy": strong_acc,
                "metrics": metrics,
            }
        )
    return out


def _first_score(record: dict[str, Any]) -> float:
    scores = record.get("route_scores") or {}
    if not scores:
        return 1.0  # failed before routing: counts as needing the large model
    return float(next(iter(scores.values())))
