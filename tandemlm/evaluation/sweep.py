"""Threshold sweeps: evaluate a routed flow at many thresholds and measure its router.

``--sweep threshold=0.1:0.9:9`` sets the router threshold of every route of a flow (or
``gate.threshold=...`` only route ``gate``) to 9 evenly spaced values and evaluates each,
giving the measured cost-quality curve (share of LLM calls vs accuracy). With call replay
the SLM and LLM calls of all thresholds are made once. ``--sweep auto`` (or ``auto:N``,
``gate.threshold=auto``) takes the thresholds from the router scores the flow produced in
the main run (quantiles of the observed scores), so every point is a different operating
point even when the scores sit in a narrow band (a confidence router on math: 0.05-0.16).

A sweep is checked before any model runs (:func:`plan_sweeps`: syntax, route names). A
``threshold=`` sweep applies to the routed flows whose router gave graded scores in the
main run; a route whose scores were all 0 or 1 (a ``rule`` router) is reported as not
swept, since every threshold in (0, 1] gives the same result.

Router metrics come from :mod:`tandemlm.evaluation.metrics` (RouteLLM/RouterBench
definitions, one implementation shared with offline router evaluation), on each flow's own
table (router score, SLM-only correctness, LLM-only correctness of *that flow's* baselines):

- ``router``: the flow's own router scores (the swept route), with 95% bootstrap intervals.
- ``random``: a random router as the mean and sd over many seeds, and the 2.5-97.5
  percentile band (:func:`tandemlm.evaluation.intervals.random_bound`); the router entry
  says which share of random routers it beats (``beats_random``).
- ``oracle``: the strong model's gain over the weak one.
- ``measured``: APGR/AIQ of the measured sweep points, with the flow's SLM-only (0 LLM calls)
  and LLM-only (all LLM calls) baselines as the curve's end points, with intervals.

The table is exact for flows whose small branch gives the SLM-only answer and whose large
branch gives the LLM-only answer (a cascade or a router with the baselines' prompts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tandemlm.errors import TandemError
from tandemlm.evaluation.baselines import baseline_flows, baselines_of
from tandemlm.evaluation.cache import EvalCache
from tandemlm.evaluation.runner import EvalFlow, EvalRun, run_eval, summarize_records

__all__ = ["auto_thresholds", "parse_sweep", "plan_sweeps", "router_metrics", "run_sweeps", "with_threshold"]

MAX_POINTS = 101
AUTO_POINTS = 9

Sweep = tuple[str, "list[float] | int"]
"""``(param, values)``: thresholds to evaluate, or an int N for ``auto`` with N points."""


def parse_sweep(text: str) -> tuple[str, list[float] | int]:
    """Parse ``threshold=START:STOP:N``, ``threshold=V1,V2,...``, ``auto``/``auto:N`` (also
    ``threshold=auto:N``), each optionally for one route: ``ROUTE.threshold=...``.

    Returns:
        ``(param, values)``; ``values`` is the list of thresholds, or the number of points
        for ``auto`` (thresholds chosen later from the observed router scores).

    Raises:
        TandemError: bad syntax, values outside [0, 1] or too many points.
    """
    text = text.strip()
    if text == "auto" or text.startswith("auto:"):
        text = "threshold=" + text
    param, sep, values = text.partition("=")
    param = param.strip()
    if not sep or not (param == "threshold" or param.endswith(".threshold")):
        raise TandemError(
            f"--sweep {text!r}: expected threshold=START:STOP:N (e.g. threshold=0.1:0.9:9), "
            "ROUTE.threshold=V1,V2,... or auto[:N]"
        )
    values = values.strip()
    if values == "auto" or values.startswith("auto:"):
        count = values.partition(":")[2] or str(AUTO_POINTS)
        if not count.isdigit() or not 2 <= int(count) <= MAX_POINTS:
            raise TandemError(f"--sweep {text!r}: auto:N needs N between 2 and {MAX_POINTS}")
        return param, int(count)
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


def _target(param: str) -> str | None:
    return param.rsplit(".", 1)[0] if "." in param else None


def _has_route(flow: EvalFlow, target: str) -> bool:
    return any(r.node_name() == target or r.name == target for r in flow.spec.routes)


def plan_sweeps(flows: Sequence[EvalFlow], sweep: tuple[str, list[float] | int]) -> list[EvalFlow]:
    """The flows ``sweep`` applies to, checked before any model runs.

    ``threshold=...`` applies to every flow with a route; ``ROUTE.threshold=...`` to the
    flows that have that route.

    Raises:
        TandemError: no flow has a route, or no flow has the named route.
    """
    param = sweep[0]
    routed = [f for f in flows if f.spec.routes]
    if not routed:
        raise TandemError("--sweep needs a flow with a route (a router and branches)")
    target = _target(param)
    if target is None:
        return routed
    chosen = [f for f in routed if _has_route(f, target)]
    if not chosen:
        names = ", ".join(f"{f.label}: {', '.join(r.node_name() for r in f.spec.routes)}" for f in routed)
        raise TandemError(f"--sweep {param}: no flow has a route {target!r} (routes: {names})")
    return chosen


def auto_thresholds(scores: Sequence[float], points: int = AUTO_POINTS) -> list[float]:
    """Up to ``points`` thresholds spread over the observed router ``scores``.

    Each threshold sits just below an observed score (by 1e-6: recorded scores are rounded
    to 6 decimals, so that score still reaches it), taken at evenly spaced quantiles strictly
    inside the distribution: each gives a different share of LLM calls. The 0% and 100%
    ends are the baselines.
    """
    distinct = sorted({float(s) for s in scores})
    if len(distinct) < 2:
        return [_below(distinct[0])] if distinct else []
    inner = distinct[1:]  # a threshold at the lowest score sends everything to the LLM
    if len(inner) <= points:
        chosen = inner
    else:
        qs = [(i + 1) / (points + 1) for i in range(points)]
        ordered = sorted(float(s) for s in scores)
        chosen = sorted({_quantile_value(ordered, q) for q in qs} - {distinct[0]})
    return sorted({_below(v) for v in chosen})


def _below(score: float) -> float:
    return max(0.0, round(score - 1e-6, 6))


def _quantile_value(ordered: list[float], q: float) -> float:
    """The observed value at quantile ``q`` (inverted CDF: always one of the values)."""
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
    return ordered[index]


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


def _clean(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _ci(value: tuple[float, float] | None) -> list[float] | None:
    return None if value is None else [round(value[0], 6), round(value[1], 6)]


def _metric_dict(m: Any) -> dict[str, Any]:
    data = m.as_dict()
    data["cpt"] = {k: _clean(v) for k, v in m.cpt.items()}
    return {k: (_clean(v) if isinstance(v, float) else v) for k, v in data.items()}


def router_metrics(
    scores: Sequence[float] | Any, weak: Sequence[float] | Any, strong: Sequence[float] | Any, *, seed: int = 0,
    seeds: int | None = None, resamples: int | None = None,
) -> dict[str, dict[str, Any]]:
    """APGR, AUC, AIQ and CPT of a router beside the random and oracle routers.

    Uses :func:`tandemlm.evaluation.metrics.evaluate_scores`; the router's figures carry 95%
    bootstrap intervals over items (``apgr_ci``, ``aiq_ci``, ``cpt_ci``, seeded by ``seed``)
    and ``beats_random`` (share of random routers with a lower APGR); ``random`` holds the
    mean over ``seeds`` seeds with ``apgr_sd``/``apgr_band`` (see
    :func:`~tandemlm.evaluation.intervals.random_bound`). A table without a quality gap
    between the models gets ``None`` metrics and an ``error`` note instead of raising.
    """
    import numpy as np

    from tandemlm.evaluation import intervals, metrics

    seeds = seeds or intervals.SEEDS
    resamples = resamples or intervals.RESAMPLES
    out: dict[str, dict[str, Any]] = {}
    w, g, sc = np.asarray(weak, float), np.asarray(strong, float), np.asarray(scores, float)
    for name, values in (("router", sc), ("oracle", metrics.oracle_scores(w.tolist(), g.tolist()))):
        try:
            m, _ = metrics.evaluate_scores(name, values, w, g)
        except ValueError as exc:
            out[name] = {"apgr": None, "aiq": None, "auc": None, "cpt": {}, "error": str(exc)}
            continue
        out[name] = _metric_dict(m)
    try:
        bound = intervals.random_bound(w, g, seeds=seeds)
    except ValueError as exc:
        out["random"] = {"apgr": None, "aiq": None, "auc": None, "cpt": {}, "error": str(exc)}
        return out
    out["random"] = {
        "name": "random",
        "seeds": bound["seeds"],
        "apgr": bound["apgr"]["mean"],
        "apgr_sd": bound["apgr"]["sd"],
        "apgr_band": bound["apgr"]["band"],
        "aiq": bound["aiq"]["mean"],
        "aiq_sd": bound["aiq"]["sd"],
        "cpt": {k: v["mean"] for k, v in bound["cpt"].items()},
        "cpt_sd": {k: v["sd"] for k, v in bound["cpt"].items()},
    }
    router = out.get("router") or {}
    if router.get("apgr") is not None:
        router["beats_random"] = float(np.mean([router["apgr"] > v for v in bound["apgr_values"]]))

        def stats(idx: np.ndarray) -> dict[str, float]:
            m, _ = metrics.evaluate_scores("router", sc[idx], w[idx], g[idx])
            return {"apgr": m.apgr, "aiq": m.aiq, **{f"cpt {k}": v for k, v in m.cpt.items()}}

        cis = intervals.bootstrap_cis(stats, len(sc), resamples=resamples, seed=seed)
        router["apgr_ci"] = _ci(cis.get("apgr"))
        router["aiq_ci"] = _ci(cis.get("aiq"))
        router["cpt_ci"] = {k: _ci(cis.get(f"cpt {k}")) for k in router.get("cpt", {})}
    return out


def _measured_curve(shares: Sequence[float], accs: Sequence[float], weak: float, strong: float) -> dict[str, float]:
    from tandemlm.evaluation import metrics

    c = metrics.curve_from_points([0.0, *shares, 1.0], [weak, *accs, strong], weak, strong)
    return {
        "apgr": metrics.apgr(c),
        "auc": metrics.auc(c),
        "aiq": metrics.aiq(c.strong_share, c.accuracy, cost_range=(0.0, 1.0)),
        **{f"{round(p * 100)}%": metrics.cpt(c, p) for p in (0.5, 0.8, 0.95)},
    }


def _measured(
    correct: Any, called: Any, weak: Any, strong: Any, *, seed: int = 0, resamples: int | None = None
) -> dict[str, Any]:
    """APGR/AUC/AIQ/CPT of the measured points (``correct``/``called``: points x items)."""
    import numpy as np

    from tandemlm.evaluation import intervals

    cpt_keys = ("50%", "80%", "95%")
    result: dict[str, Any] = {"cpt": {}}
    try:
        full = _measured_curve(called.mean(axis=1), correct.mean(axis=1), weak.mean(), strong.mean())
    except ValueError as exc:
        result.update(apgr=None, auc=None, aiq=None, error=str(exc))
        return result
    result.update(apgr=full["apgr"], auc=full["auc"], aiq=full["aiq"],
                  cpt={k: _clean(full[k]) for k in cpt_keys})

    def stats(idx: np.ndarray) -> dict[str, float]:
        got = _measured_curve(called[:, idx].mean(axis=1), correct[:, idx].mean(axis=1),
                              weak[idx].mean(), strong[idx].mean())
        return {"apgr": got["apgr"], **{f"cpt {k}": got[k] for k in cpt_keys}}

    cis = intervals.bootstrap_cis(stats, weak.size, resamples=resamples or intervals.RESAMPLES, seed=seed)
    result["apgr_ci"] = _ci(cis.get("apgr"))
    result["cpt_ci"] = {k: _ci(cis.get(f"cpt {k}")) for k in cpt_keys}
    return result


def _route_node(flow: EvalFlow, param: str) -> str:
    target = _target(param)
    for route in flow.spec.routes:
        if target is None or route.node_name() == target or route.name == target:
            return route.node_name()
    return flow.spec.routes[0].node_name()


def _scores(records: dict[str, dict[str, Any]], ids: Sequence[str], node: str) -> list[float]:
    out = []
    for i in ids:
        scores = records[i].get("route_scores") or {}
        # failed before routing: counts as needing the large model
        out.append(float(scores.get(node, next(iter(scores.values()), 1.0))) if scores else 1.0)
    return out


def run_sweeps(
    run: EvalRun,
    flows: Sequence[EvalFlow],
    sweep: tuple[str, list[float] | int],
    *,
    cache: EvalCache | str | Path = ".tandem/eval/cache.db",
    concurrency: int = 1,
    replay: bool = True,
    progress: bool = False,
    per_flow: bool | None = None,
    seed: int = 0,
    resamples: int | None = None,
    seeds: int | None = None,
) -> list[dict[str, Any]]:
    """Sweep ``flows`` (those :func:`plan_sweeps` selects) over ``sweep`` on ``run``'s items.

    Each flow is measured against its own SLM-only and LLM-only baselines, taken from
    ``run`` when present (``EvalFlow.params["base"]``), else evaluated (labelled per flow
    when ``per_flow``; default: when ``run`` holds several evaluated flows).

    Returns:
        One dict per flow: ``flow``, ``param``, ``route``, ``baselines`` (labels),
        ``points`` (``value``, ``label``, ``accuracy``, ``accuracy_ci``, ``llm_share``,
        ``latency_mean``, ``cost_mean``, ``truncated``), ``weak_accuracy``,
        ``strong_accuracy``, ``score_range`` and ``metrics`` (``router``, ``random``,
        ``oracle``, ``measured``); or ``skipped`` (why) and no points.

    Raises:
        TandemError: no flow to sweep (see :func:`plan_sweeps`).
    """
    import numpy as np

    param, values = sweep
    if per_flow is None:
        per_flow = sum(1 for f in run.flows if f.kind == "flow") > 1
    ids = [item.id for item in run.items]
    out = []
    for flow in plan_sweeps(flows, sweep):
        node = _route_node(flow, param)
        observed = _scores(run.records[flow.label], ids, node) if flow.label in run.records else []
        entry: dict[str, Any] = {"flow": flow.label, "param": param, "route": node, "points": []}
        if observed:
            entry["score_range"] = [min(observed), max(observed)]
        if observed and set(observed) <= {0.0, 1.0}:
            entry["skipped"] = (
                f"route {node!r} scored every item 0 or 1 (a rule-like router): every threshold "
                "in (0, 1] gives the same result, nothing to sweep"
            )
            out.append(entry)
            continue
        thresholds = values if isinstance(values, list) else auto_thresholds(observed, values)
        if not thresholds:
            entry["skipped"] = f"route {node!r} has no observed scores to choose thresholds from"
            out.append(entry)
            continue
        variants = [with_threshold(flow, param, v) for v in thresholds]
        have = baselines_of(run.flows, flow.label)
        extra = [b for b in baseline_flows(flow, per_flow=per_flow) if b.params["side"] not in have]
        extra = [b for b in extra if b.label not in run.records]
        swept = run_eval(
            [*extra, *variants], run.items, scorer=run.scorer, cache=cache,
            concurrency=concurrency, replay=replay, progress=progress, dataset=run.dataset,
            title=f"sweep {flow.label}",
        )
        run.records.update(swept.records)
        run.flows.extend(f for f in [*extra, *variants] if f.label not in {x.label for x in run.flows})
        run.models.update(swept.models)
        pair = baselines_of(run.flows, flow.label)
        if set(pair) != {"slm", "llm"}:
            entry["skipped"] = f"flow {flow.label!r} has no SLM-only and LLM-only pair to measure against"
            out.append(entry)
            continue
        records = run.records
        weak = np.array([float(records[pair["slm"].label][i]["score"]) for i in ids])
        strong = np.array([float(records[pair["llm"].label][i]["score"]) for i in ids])
        scores = _scores(records[variants[0].label], ids, node)
        correct = np.array([[float(records[v.label][i]["score"]) for i in ids] for v in variants])
        called = np.array([[1.0 if records[v.label][i].get("llm_called") else 0.0 for i in ids] for v in variants])
        points = []
        for variant, value in zip(variants, thresholds, strict=True):
            s = summarize_records([records[variant.label][i] for i in ids], seed=seed)
            points.append(
                {
                    "value": value,
                    "label": variant.label,
                    "accuracy": s["accuracy"],
                    "accuracy_ci": s["accuracy_ci"],
                    "llm_share": s["llm_share"],
                    "latency_mean": s["latency_mean"],
                    "cost_mean": s["cost_mean"],
                    "truncated": s["truncated"],
                }
            )
        metrics = router_metrics(scores, weak, strong, seed=seed, seeds=seeds, resamples=resamples)
        metrics["measured"] = _measured(correct, called, weak, strong, seed=seed, resamples=resamples)
        entry.update(
            baselines={"slm": pair["slm"].label, "llm": pair["llm"].label},
            points=points,
            weak_accuracy=float(weak.mean()),
            strong_accuracy=float(strong.mean()),
            metrics=metrics,
        )
        if len({(p["llm_share"], p["accuracy"]) for p in points}) < len(points):
            entry["note"] = "some thresholds gave the same operating point: try --sweep auto"
        out.append(entry)
    return out
