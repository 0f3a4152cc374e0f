"""Run flows over a dataset: concurrency, a progress bar, and resume from the SQLite cache.

Every (flow, item) result is written to the cache as soon as it finishes, keyed by the
flow's fingerprint (its spec and resolved models) and the item's id plus question hash, so an
interrupted run continues where it stopped and no finished item runs twice. Items that
failed with an error are recorded too and run again next time.

Item records (one per flow and item) hold: ``run_id`` (the run's id, as on its trace),
``answer``, ``score``, ``path``, ``models``
(names of the models that ran), ``tokens`` (``{model: {"input", "output"}}``),
``llm_called``, ``llm_calls``, ``large_models``, ``latency`` (seconds), ``cost`` (token
prices plus the energy price of local compute), ``joules`` (that energy), ``errors``,
``answered_by``, ``route_scores`` (``{route: score}``), ``truncated`` (models whose reply
stopped at its token limit), ``replayed_calls`` and ``cached``; scoring adds ``score``,
``extracted`` and ``gold_extracted`` (what the scorer read from the answer and the gold).

Scores are never cached with the record: each run scores the cached answers with its own
scorer (verdicts of model-based scorers such as ``judge`` are cached by scorer, question,
gold and answer), so switching ``--scorer`` or fixing a gold answer takes effect at once.

``llm_called`` is the run result's (one definition for runs, eval, traces and distill, see
:func:`tandemlm.core.ledger.llm_called`): some node called a model whose role is not ``slm``
or that is ``local: false``. ``llm_calls`` counts the calls to those models.

Items a trained router of an evaluated flow learned from are left out for every flow of the
run, with one line on stderr (see :mod:`tandemlm.evaluation.holdout`; ``EvalRun.holdout``).

Latency: with call replay (see :mod:`tandemlm.evaluation.cache`) a replayed model call
counts with the duration it took when it really ran, so ``latency`` is what the run would
have taken without the cache; ``wall`` is the time actually spent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from tandemlm.core.ledger import is_large_model
from tandemlm.errors import TandemError
from tandemlm.evaluation.cache import EvalCache, ReplayChatModel, call_ledger
from tandemlm.evaluation.datasets import EvalItem
from tandemlm.evaluation.holdout import Holdout, hold_out
from tandemlm.evaluation.progress import EvalProgress
from tandemlm.evaluation.scorers import Scorer, get_scorer
from tandemlm.flows.spec import FlowSpec

__all__ = ["EvalFlow", "EvalRun", "large_models", "run_eval", "score_record", "summarize_records"]

RECORD_VERSION = 3  # 2: llm_called from the run ledger; 3: unscored records, truncation


@dataclass
class EvalFlow:
    """One flow to evaluate.

    Attributes:
        label: unique name in reports (``cascade``, ``slm-only``, ``cascade@threshold=0.3``).
        spec: the flow spec (thresholds, models and prompts as evaluated).
        models: chat models to use instead of building them from the spec (fakes in tests).
        kind: ``flow``, ``baseline`` or ``sweep``.
        params: what distinguishes it (e.g. ``{"base": "cascade", "threshold": 0.3}``).
    """

    label: str
    spec: FlowSpec
    models: Mapping[str, BaseChatModel] | None = None
    kind: str = "flow"
    params: dict[str, Any] = field(default_factory=dict)

    def large_models(self) -> set[str]:
        """Models of this flow that count as large (see :func:`large_models`)."""
        return large_models(self.spec)


def large_models(spec: FlowSpec) -> set[str]:
    """Names of the spec's models that count as "the large model": role other than ``slm``,
    or ``local: false`` (:func:`tandemlm.core.ledger.is_large_model`)."""
    return {name for name, m in spec.models.items() if is_large_model(m.role, m.local, name)}


def _model_identity(model: BaseChatModel | None, spec_desc: str, params: str) -> str:
    if model is not None:
        return f"override:{type(model).__name__}:{getattr(model, 'model_name', '') or getattr(model, 'model', '')}"
    return f"{spec_desc}|{params}"


@dataclass
class _Prepared:
    flow: EvalFlow
    key: str
    compiled: Any
    models: dict[str, str]


def _prepare(flow: EvalFlow, cache: EvalCache, replay: bool) -> _Prepared:
    """Resolve models, wrap deterministic ones for replay, compile, fingerprint."""
    from tandemlm.flows.compiler import compile_flow
    from tandemlm.models.pool import ModelPool
    from tandemlm.models.resolve import describe

    overrides = dict(flow.models or {})
    pool = ModelPool(flow.spec.models)
    chats: dict[str, BaseChatModel] = {}
    described: dict[str, str] = {}
    identities: dict[str, str] = {}
    for name in flow.spec.models:
        if name in overrides:
            chats[name] = overrides[name]
            identities[name] = _model_identity(overrides[name], "", "")
            described[name] = identities[name]
            continue
        resolved = pool.spec(name)
        described[name] = describe(resolved)
        params = resolved.params.model_dump_json() + f"|ctx={resolved.context_window}"
        identities[name] = _model_identity(None, described[name], params)
        if replay and resolved.provider not in ("scripted", "keyed"):
            chats[name] = ReplayChatModel(inner=pool.get(name), identity=identities[name], store=cache)
    compiled = compile_flow(flow.spec, models=chats or None)
    payload = json.dumps(
        {"spec": flow.spec.to_dict(), "models": identities, "v": RECORD_VERSION}, sort_keys=True, default=str
    )
    key = f"{flow.spec.name}:{hashlib.sha256(payload.encode()).hexdigest()[:16]}"
    return _Prepared(flow, key, compiled, described)


def _record(result: Any, calls: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    """The item record of a run result (``calls``: the replay cache's call log)."""
    usage = result.usage or {}
    tokens = {
        name: {"input": int(u.get("input_tokens", 0)), "output": int(u.get("output_tokens", 0))}
        for name, u in usage.items()
    }
    replayed = [c for c in calls if c["replayed"]]
    large = list(result.large_models)
    route_scores = {}
    truncated: list[str] = []
    for step in result.steps:  # scored decisions (routers), by deciding node
        decision = step.get("decision") or {}
        if isinstance(decision.get("score"), (int, float)):
            route_scores[step.get("node", "?")] = decision["score"]
        for meta in (step.get("meta") or {}).values():  # replies cut off at max_tokens
            if isinstance(meta, dict) and meta.get("finish_reason") == "length":
                truncated.append(str(meta.get("model") or step.get("model") or "?"))
    return {
        "run_id": result.run_id,
        "answer": result.answer,
        "answered_by": result.answered_by,
        "path": list(result.path),
        "models": [name for name, u in usage.items() if u.get("calls", 0)],
        "tokens": tokens,
        "llm_called": bool(result.llm_called),
        "llm_calls": int(sum(usage.get(name, {}).get("calls", 0) for name in large)),
        "large_models": large,
        "latency": round(wall + sum(c["seconds"] for c in replayed), 6),
        "wall": round(wall, 6),
        "cost": round(sum(float(u.get("cost", 0.0)) for u in usage.values()), 8),
        "joules": round(sum(float(u.get("joules", 0.0)) for u in usage.values()), 4),
        "errors": list(result.errors or []),
        "degraded": bool(result.degraded),
        "route_scores": route_scores,
        "truncated": truncated,
        "replayed_calls": len(replayed),
    }


def _error_record(exc: BaseException, wall: float) -> dict[str, Any]:
    return {
        "run_id": None,
        "answer": "",
        "answered_by": None,
        "path": [],
        "models": [],
        "tokens": {},
        "llm_called": False,
        "llm_calls": 0,
        "large_models": [],
        "latency": round(wall, 6),
        "wall": round(wall, 6),
        "cost": 0.0,
        "joules": 0.0,
        "errors": [{"error": f"{type(exc).__name__}: {exc}"}],
        "degraded": False,
        "route_scores": {},
        "truncated": [],
        "replayed_calls": 0,
    }


def _score_key(scorer: Any, item: EvalItem, answer: str) -> str:
    payload = json.dumps([getattr(scorer, "identity", scorer.name), item.question, item.gold, answer])
    return hashlib.sha256(payload.encode()).hexdigest()


async def score_record(scorer: Any, item: EvalItem, record: Mapping[str, Any], cache: EvalCache) -> dict[str, Any]:
    """``record`` with ``score``, ``extracted`` and ``gold_extracted`` from ``scorer``.

    Scorers marked ``cached`` (model-based: ``judge``) keep their verdicts in ``cache``.
    """
    answer = str(record.get("answer") or "")
    scored: dict[str, Any] | None = None
    key = _score_key(scorer, item, answer) if getattr(scorer, "cached", False) else None
    if key is not None:
        scored = cache.get_score(key)
    if scored is None:
        scored = await scorer.ascore(item.question, answer, item.gold)
        if key is not None:
            cache.put_score(key, scorer.name, {k: v for k, v in scored.items() if k != "usage"})
    out = {**record, "score": float(scored["score"])}
    if "judge" in scored:
        out["judge"] = scored["judge"]
    extracted = getattr(scorer, "extracted", None)
    if extracted is not None:
        out["extracted"], out["gold_extracted"] = extracted(answer, item.gold)
    return out


@dataclass
class EvalRun:
    """The outcome of :func:`run_eval`: items, flows, and one record per flow and item.

    ``records[label][item_id]`` is an item record (see the module docstring). ``items`` are
    the evaluated items; ``holdout`` names those left out because a router was trained on them.
    """

    items: list[EvalItem]
    flows: list[EvalFlow]
    records: dict[str, dict[str, dict[str, Any]]]
    models: dict[str, dict[str, str]]
    scorer: str
    dataset: str = ""
    executed: int = 0
    reused: int = 0
    holdout: Holdout | None = None

    def summary(self, label: str) -> dict[str, Any]:
        return summarize_records(list(self.records[label].values()))

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {f.label: self.summary(f.label) for f in self.flows}


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _score_spread(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per route: how many items it scored and the spread of its scores."""
    by_route: dict[str, list[float]] = {}
    for record in records:
        for route, score in (record.get("route_scores") or {}).items():
            by_route.setdefault(route, []).append(float(score))
    out = {}
    for route, values in by_route.items():
        ordered = sorted(values)
        out[route] = {
            "n": len(values),
            "min": ordered[0],
            "p25": _percentile(ordered, 0.25),
            "median": _percentile(ordered, 0.5),
            "p75": _percentile(ordered, 0.75),
            "max": ordered[-1],
            "distinct": len(set(values)),
        }
    return out


def summarize_records(records: Sequence[Mapping[str, Any]], *, seed: int = 0) -> dict[str, Any]:
    """Accuracy and LLM-call share (with 95% bootstrap intervals over items), latency, cost,
    tokens, model share, truncated answers and the spread of router scores."""
    from tandemlm.evaluation.intervals import mean_ci

    n = len(records)
    if n == 0:
        return {"n": 0}
    latencies = [float(r.get("latency", 0.0)) for r in records]
    answered: dict[str, int] = {}
    tokens: dict[str, dict[str, float]] = {}
    truncated: dict[str, int] = {}
    for record in records:
        who = record.get("answered_by") or "none"
        answered[who] = answered.get(who, 0) + 1
        for name, t in (record.get("tokens") or {}).items():
            mine = tokens.setdefault(name, {"input": 0.0, "output": 0.0})
            mine["input"] += t.get("input", 0) / n
            mine["output"] += t.get("output", 0) / n
        for name in set(record.get("truncated") or []):
            truncated[name] = truncated.get(name, 0) + 1
    scores = [float(r.get("score", 0.0)) for r in records]
    calls = [1.0 if r.get("llm_called") else 0.0 for r in records]
    return {
        "n": n,
        "accuracy": sum(scores) / n,
        "accuracy_ci": mean_ci(scores, seed=seed),
        "llm_share": sum(calls) / n,
        "llm_share_ci": mean_ci(calls, seed=seed),
        "latency_mean": statistics.fmean(latencies),
        "latency_p50": _percentile(latencies, 0.5),
        "latency_p95": _percentile(latencies, 0.95),
        "cost_total": sum(float(r.get("cost", 0.0)) for r in records),
        "cost_mean": sum(float(r.get("cost", 0.0)) for r in records) / n,
        "energy_wh_total": sum(float(r.get("joules", 0.0)) for r in records) / 3600.0,
        "tokens_mean": {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in tokens.items()},
        "answered_by": {k: v / n for k, v in sorted(answered.items())},
        "errors": sum(1 for r in records if r.get("errors") and not r.get("answer")),
        "truncated": sum(1 for r in records if r.get("truncated")),
        "truncated_by_model": dict(sorted(truncated.items())),
        "route_scores": _score_spread(records),
    }


async def _run_one(
    prepared: _Prepared,
    item: EvalItem,
    cache: EvalCache,
    semaphore: asyncio.Semaphore,
    on_done: Callable[[str, bool, float], None],
) -> tuple[str, dict[str, Any]]:
    """The unscored record of one item: from the cache, else by running the flow."""
    flow = prepared.flow
    item_key = item.key()
    found = cache.get_result(prepared.key, item_key)
    if found is not None:
        on_done(flow.label, False, 0.0)
        return item.id, {**found, "cached": True}
    async with semaphore:
        calls: list[dict[str, Any]] = []
        token = call_ledger.set(calls)
        start = time.perf_counter()
        status = "ok"
        try:
            result = await prepared.compiled.arun(item.question)
            record = _record(result, calls, time.perf_counter() - start)
        except (TandemError, ValueError, RuntimeError, OSError) as exc:
            record, status = _error_record(exc, time.perf_counter() - start), "error"
        finally:
            call_ledger.reset(token)
        cache.put_result(prepared.key, item_key, record, status=status)
    on_done(flow.label, True, float(record["wall"]))
    return item.id, {**record, "cached": False}


def run_eval(
    flows: Sequence[EvalFlow],
    items: Sequence[EvalItem],
    *,
    scorer: str | Scorer | Any = "exact",
    cache: EvalCache | str | Path = ".tandem/eval/cache.db",
    concurrency: int = 1,
    replay: bool = True,
    progress: bool | EvalProgress = False,
    dataset: str = "",
    backend: str = "local",
    address: str | None = None,
    title: str = "eval",
) -> EvalRun:
    """Run every flow on every item (resuming from ``cache``) and score the answers.

    Args:
        flows: the flows to evaluate (labels must be unique).
        items: the dataset items.
        scorer: a scorer name or object with ``ascore(question, answer, gold)``; cached
            answers are scored again by it (scores are not cached with the answers).
        cache: an :class:`EvalCache` or the path of its SQLite file.
        concurrency: items run at the same time (per process; local models serialise anyway).
        replay: answer identical deterministic model calls from the cache (see
            :mod:`tandemlm.evaluation.cache`); fakes passed in ``flow.models`` never replay.
        progress: show progress on stderr (a bar in a terminal, periodic lines elsewhere;
            see :class:`~tandemlm.evaluation.progress.EvalProgress`), or an ``EvalProgress``.
        dataset: the dataset's name, for reports.
        backend: ``local`` or ``ray`` (items on Ray workers, see
            :mod:`tandemlm.evaluation.ray_backend`; ``concurrency`` is then unused).
        address: Ray cluster address for ``backend="ray"`` (default: a local instance).
        title: what the progress line calls this run.

    Raises:
        TandemError: duplicate labels, an invalid spec, an unknown scorer.
        KeyboardInterrupt: the results finished so far are in the cache; the same call resumes.

    Items a trained router of ``flows`` was trained on are not evaluated (one line on
    stderr says how many; ``EvalRun.holdout``); every item being one raises TandemError.
    """
    return asyncio.run(
        arun_eval(
            flows, items, scorer=scorer, cache=cache, concurrency=concurrency,
            replay=replay, progress=progress, dataset=dataset, backend=backend, address=address,
            title=title,
        )
    )


async def arun_eval(
    flows: Sequence[EvalFlow],
    items: Sequence[EvalItem],
    *,
    scorer: str | Scorer | Any = "exact",
    cache: EvalCache | str | Path = ".tandem/eval/cache.db",
    concurrency: int = 1,
    replay: bool = True,
    progress: bool | EvalProgress = False,
    dataset: str = "",
    backend: str = "local",
    address: str | None = None,
    title: str = "eval",
) -> EvalRun:
    """Async :func:`run_eval`."""
    labels = [f.label for f in flows]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise TandemError(f"duplicate flow labels {duplicates}: give each evaluated flow a distinct name")
    if concurrency < 1:
        raise TandemError("concurrency must be at least 1")
    if backend not in ("local", "ray"):
        raise TandemError(f"unknown backend {backend!r}: use local or ray")
    scorer_obj = get_scorer(scorer) if isinstance(scorer, str) else scorer
    items, holdout = hold_out(flows, items)
    if holdout is not None:
        print(holdout.message(), file=sys.stderr, flush=True)
    owned = not isinstance(cache, EvalCache)
    store = cache if isinstance(cache, EvalCache) else EvalCache(cache)
    counts = {"executed": 0, "reused": 0}
    try:
        prepared = [_prepare(f, store, replay) for f in flows]
        semaphore = asyncio.Semaphore(concurrency)
        if isinstance(progress, EvalProgress):
            bar: EvalProgress | None = progress
        else:
            bar = EvalProgress(len(items) * len(flows), title=title, concurrency=concurrency) if progress else None

        last = [time.perf_counter()]

        def on_done(label: str, executed: bool, seconds: float | None = None) -> None:
            now = time.perf_counter()
            if seconds is None:  # Ray workers: the time since the last result (throughput)
                seconds = now - last[0]
            last[0] = now
            counts["executed" if executed else "reused"] += 1
            if bar:
                bar.advance(label, executed, seconds)

        records: dict[str, dict[str, dict[str, Any]]] = {}
        ray_pool = None
        try:
            if backend == "ray":
                from tandemlm.evaluation.ray_backend import RayEvalPool

                ray_pool = RayEvalPool(prepared, address=address)
            for prep in prepared:  # one flow at a time: models stay loaded, cache fills in order
                if ray_pool is not None:
                    raw = await ray_pool.run(prep, items, scorer_obj, store, on_done)
                else:
                    tasks = [_run_one(prep, item, store, semaphore, on_done) for item in items]
                    raw = dict(await asyncio.gather(*tasks))
                records[prep.flow.label] = {
                    item.id: await score_record(scorer_obj, item, raw[item.id], store) for item in items
                }
        finally:
            if ray_pool is not None:
                ray_pool.close()
            if bar and not isinstance(progress, EvalProgress):
                bar.close()
        return EvalRun(
            items=list(items),
            flows=list(flows),
            records=records,
            models={p.flow.label: p.models for p in prepared},
            scorer=getattr(scorer_obj, "name", str(scorer)),
            dataset=dataset,
            executed=counts["executed"],
            reused=counts["reused"],
            holdout=holdout,
        )
    finally:
        if owned:
            store.close()
