"""Answer-consistency cascade vs token-confidence cascade on unseen GSM8K items (embedded pair).

Usage (resumable: every item's runs are appended to ``--cache``; rerun to continue, or to
print again)::

    python benchmarks/consistency_cascade.py --offset 400 --limit 20

What runs, per item (items ``offset .. offset+limit-1`` of the bundled GSM8K sample; the
first 100 are ``gsm8k_eval.py``'s, the first 30 ``token_route.py``'s and the first 12 the
preset fit's, so the default offset 400 is unseen by every setting in the repository):

1. the flow ``draft`` (``generate``, SLM, greedy, token confidence) -> ``consistency``
   (``draft: draft``: the greedy draft is sample 1; up to ``--samples`` samples at
   temperature 0.7, stop when the first two agree; final answers by the ``numeric``
   extractor). One real run on the embedded Qwen2.5-Coder-0.5B.
2. the flow ``generate`` on the LLM (Qwen2.5-Coder-1.5B), greedy: LLM-only.
3. the ``verifier`` router with the LLM as judge over the greedy draft (one prefill and a
   one-token Yes/No verdict; P(yes) from its token probability), the draft passed as a run
   variable. Rows cached before this signal existed get their verdict on the next run.

Same prompt for both ("solve step by step, briefly, end with 'Answer: N'"), max_tokens 512.
The four strategies are read off these runs; the cascades' escalation call is the LLM-only
call (same greedy prompt, so the same answer), counted only where the cascade escalates:

- ``slm-only``: the greedy draft; ``llm-only``: the LLM answer;
- ``cascade@T`` (the ``cascade`` preset's gate: ``confidence``, ``mean_prob``): the draft when
  ``1 - mean token probability < T``, else the LLM answer (``T`` = 0.2, the preset's value);
- ``consistency@T`` (the ``cascade_consistency`` preset's gate): the majority answer when
  ``1 - agreement < T``, else the LLM answer. With 3 samples only T = 0.3 (LLM unless the
  samples are unanimous) and 0.5 (LLM unless two agree, the preset's value) differ.
- ``verifier@0.5``: the draft unless the LLM judge's ``1 - P(yes) >= 0.5``;
- ``<signal> top N%``: the N% of items a signal scores highest go to the LLM (a threshold
  set by LLM-call share, as ``tandem router calibrate --rate`` does, no labels used), for
  confidence, consistency, verifier and a **learned** deferral score: a logistic regression
  over confidence, agreement and the draft's length (and, in a second row, the verifier's
  verdict), cross-validated (5 folds: every item is scored by a model trained on the others).

Cost: the LLM priced as a remote model (``--llm-price``, a table entry of
:mod:`tandemlm.models.prices`, per 1M input/output tokens), local SLM work priced by energy
(measured process CPU seconds x watts per core x electricity price, the defaults of
:mod:`tandemlm.models.prices`; the greedy draft alone is counted as the SLM run's CPU time
divided by its number of samples; the verifier call is priced as a remote LLM call). Prints n, time, load, accuracy, LLM-call share, cost per item
and the share of LLM-only cost; AUROC of each signal for "the SLM's answer is right".
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SYSTEM = "You are a careful math tutor."
PROMPT = (
    "Solve the problem step by step, briefly. End with a last line 'Answer: N' where N is "
    "the final number.\n\nProblem: {input}"
)


def models(max_tokens: int) -> dict[str, Any]:
    params = {"max_tokens": max_tokens}
    return {"slm": {"role": "slm", "params": params, "context_window": 2048},
            "llm": {"role": "llm", "params": params, "context_window": 2048}}


def slm_spec(samples: int, max_tokens: int) -> dict[str, Any]:
    return {
        "name": "consistency_probe",
        "models": {"slm": models(max_tokens)["slm"]},
        "nodes": {
            "draft": {"type": "generate", "model": "slm", "system": SYSTEM, "prompt": PROMPT,
                      "output": "draft", "logprobs": True},
            "vote": {"type": "consistency", "model": "slm", "system": SYSTEM, "prompt": PROMPT,
                     "draft": "draft", "n": samples, "early_stop": 2, "temperature": 0.7,
                     "answer": "numeric", "output": "majority", "score_output": "consistency"},
        },
        "entry": "draft",
        "edges": [{"from": "draft", "to": "vote"}, {"from": "vote", "to": "end"}],
    }


def llm_spec(max_tokens: int) -> dict[str, Any]:
    return {
        "name": "llm_only",
        "models": {"llm": models(max_tokens)["llm"]},
        "nodes": {"answer": {"type": "generate", "model": "llm", "system": SYSTEM, "prompt": PROMPT}},
        "entry": "answer",
        "edges": [{"from": "answer", "to": "end"}],
    }


VERIFY_PROMPT = (  # the verifier router's prompt; the draft comes in as a run variable
    "Question: {input}\n\nAnswer to verify: {draft}\n\nIs this answer correct? Yes or No."
)


def verifier_spec(max_tokens: int) -> dict[str, Any]:
    """The ``verifier`` router with the LLM as judge over a given draft: one prefill and a
    one-token verdict (P(yes) from its probability), no answer generated."""
    return {
        "name": "verifier_probe",
        "models": {"llm": models(max_tokens)["llm"]},
        "nodes": {"begin": {"type": "pass"}},
        "entry": "begin",
        "routes": [{"from": "begin", "name": "gate",
                    "router": {"type": "verifier", "model": "llm", "field": "input",
                               "prompt": VERIFY_PROMPT, "threshold": 0.5},
                    "branches": {"small": "end", "large": "end"}}],
        "edges": [],
    }


async def verify(flow: Any, question: str, draft: str) -> dict[str, Any]:
    """P(yes) of the LLM verifier for ``draft``, with the call's usage and wall time."""
    wall = time.perf_counter()
    result = await flow.arun(question, variables={"draft": draft})
    decision = result.decisions[0]
    return {"p_yes": float(decision["details"]["p_yes"]), "usage": result.usage.get("llm", {}),
            "wall": time.perf_counter() - wall}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed(flow: Any, question: str) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = await flow.arun(question)
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


async def run_item(slm: Any, llm: Any, item: Any) -> dict[str, Any]:
    from tandemlm.evaluation.scorers import numeric

    small, small_wall, small_cpu = await timed(slm, item.question)
    large, large_wall, large_cpu = await timed(llm, item.question)
    conf = (small.steps[0]["meta"]["draft"].get("confidence") or {}) if small.steps else {}
    return {
        "id": item.id, "gold": item.gold,
        "draft": small.vars["draft"], "majority": small.vars["majority"],
        "consistency": small.vars["consistency"], "mean_prob": conf.get("mean_prob"),
        "llm": large.answer,
        "draft_ok": numeric(small.vars["draft"], item.gold),
        "majority_ok": numeric(small.vars["majority"], item.gold),
        "llm_ok": numeric(large.answer, item.gold),
        "slm_usage": small.usage.get("slm", {}), "llm_usage": large.usage.get("llm", {}),
        "slm_wall": small_wall, "slm_cpu": small_cpu, "llm_wall": large_wall, "llm_cpu": large_cpu,
        "load": os.getloadavg()[0],
    }


def auroc(scores: list[float], good: list[bool]) -> float | None:
    """P(a wrong answer scores higher than a right one); ties count half."""
    bad_s = [s for s, g in zip(scores, good, strict=True) if not g]
    good_s = [s for s, g in zip(scores, good, strict=True) if g]
    if not bad_s or not good_s:
        return None
    wins = sum((b > g) + 0.5 * (b == g) for b in bad_s for g in good_s)
    return wins / (len(bad_s) * len(good_s))


def learned_scores(rows: list[dict[str, Any]], verifier: bool, folds: int = 5) -> list[float]:
    """Out-of-fold P(majority answer wrong) of a logistic regression over the draft's
    features (1 - mean token probability, 1 - agreement, log draft length, and with
    ``verifier`` 1 - the LLM judge's P(yes)): every item is scored by a model that never
    saw it."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.array([[1 - (r["mean_prob"] or 0), r["consistency"]["score"], np.log1p(len(r["draft"])),
                   *([1 - r["verifier"]["p_yes"]] if verifier else [])] for r in rows])
    y = np.array([not r["majority_ok"] for r in rows])
    k = min(folds, int(y.sum()), int((~y).sum()))
    if k < 2:
        return [0.5] * len(rows)
    model = make_pipeline(StandardScaler(), LogisticRegression())
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=0)
    return [float(p) for p in cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]]


def top_share(scores: list[float], share: float) -> list[bool]:
    """Escalate the ``share`` of items with the highest scores (no labels used)."""
    count = round(share * len(scores))
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    chosen = set(order[:count])
    return [i in chosen for i in range(len(scores))]


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from tandemlm.models.prices import DEFAULT_ENERGY, remote_price

    price = remote_price(args.llm_price)
    energy = DEFAULT_ENERGY

    def priced(usage: dict[str, Any]) -> float:
        return price.cost(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0)))

    def slm_cost(r: dict[str, Any], draft_only: bool) -> float:
        cpu = r["slm_cpu"] / max(1, r["consistency"]["samples"]) if draft_only else r["slm_cpu"]
        return energy.cost(energy.joules(cpu))

    n = len(rows)
    has_verifier = all("verifier" in r for r in rows)
    signals: dict[str, list[float]] = {
        "confidence": [1 - (r["mean_prob"] or 0) for r in rows],
        "consistency": [r["consistency"]["score"] for r in rows],
    }
    if has_verifier:
        signals["verifier"] = [1 - r["verifier"]["p_yes"] for r in rows]
        signals["learned+verifier (CV)"] = learned_scores(rows, verifier=True)
    signals["learned (5-fold CV)"] = learned_scores(rows, verifier=False)

    def outcome(signal: str, r: dict[str, Any], up: bool) -> tuple[bool, bool, float]:
        """(right, LLM called, cost) of one item under a cascade on ``signal``."""
        samples = signal.startswith(("consistency", "learned"))  # needs every sample
        cost = slm_cost(r, not samples)
        if "verifier" in signal:  # one LLM prefill over the draft, priced as remote
            cost += priced(r["verifier"]["usage"])
        if up:
            return bool(r["llm_ok"]), True, cost + priced(r["llm_usage"])
        return bool(r["majority_ok"] if samples else r["draft_ok"]), False, cost

    strategies: dict[str, list[tuple[bool, bool, float]]] = {
        "slm-only": [(bool(r["draft_ok"]), False, slm_cost(r, True)) for r in rows],
        "llm-only": [(bool(r["llm_ok"]), True, priced(r["llm_usage"])) for r in rows],
    }
    thresholds = {"confidence": (0.1, 0.2), "consistency": (0.3, 0.5), "verifier": (0.5,)}
    for signal, values in thresholds.items():
        if signal in signals:
            for t in values:
                name = f"{'cascade' if signal == 'confidence' else signal}@{t}"
                strategies[name] = [outcome(signal, r, sc >= t) for r, sc in zip(rows, signals[signal], strict=True)]
    for signal, scores in signals.items():
        for share in (0.3, 0.4, 0.5):
            ups = top_share(scores, share)
            strategies[f"{signal} top {share:.0%}"] = [
                outcome(signal, r, up) for r, up in zip(rows, ups, strict=True)]
    base_acc = sum(ok for ok, _, _ in strategies["llm-only"]) / n
    base_cost = sum(c for _, _, c in strategies["llm-only"]) / n
    print(f"{'flow':30s} {'accuracy':>8s} {'% of LLM':>8s} {'LLM calls':>9s} {'$/item':>10s} {'% LLM $':>8s}")
    best: tuple[str, float, float] | None = None
    closest: tuple[float, str, float, float] | None = None
    for name, outcomes in strategies.items():
        acc = sum(ok for ok, _, _ in outcomes) / n
        calls = sum(big for _, big, _ in outcomes) / n
        cost = sum(c for _, _, c in outcomes) / n
        rel_acc = acc / base_acc if base_acc else 0.0
        rel_cost = cost / base_cost if base_cost else 0.0
        print(f"{name:30s} {acc:8.3f} {rel_acc:8.0%} {calls:9.2f} {cost:10.6f} {rel_cost:8.0%}")
        if name in ("slm-only", "llm-only"):
            continue
        if rel_acc >= 0.95 and rel_cost <= 0.5 and (best is None or rel_cost < best[2]):
            best = (name, rel_acc, rel_cost)
        if rel_cost <= 0.5 and (closest is None or rel_acc > closest[0]):
            closest = (rel_acc, name, rel_acc, rel_cost)
    slm_j = sum(energy.joules(r["slm_cpu"]) for r in rows) / n
    print(f"SLM energy (consistency, all samples): {slm_j:.0f} J = {slm_j / 3600:.3f} Wh per item; "
          f"samples per item {sum(r['consistency']['samples'] for r in rows) / n:.2f}")
    print("'top N%': the N% of items the signal scores highest go to the LLM (no labels used); "
          "'learned': logistic regression over confidence, agreement and the draft's length "
          "(+verifier: and the LLM judge's verdict), each item scored by a model trained on the "
          "other folds (5)")
    for label, scores in signals.items():
        wrong_draft = auroc(scores, [bool(r["draft_ok"]) for r in rows])
        wrong_major = auroc(scores, [bool(r["majority_ok"]) for r in rows])
        shown = " ".join("n/a" if v is None else f"{v:.3f}" for v in (wrong_draft, wrong_major))
        print(f"AUROC of {label:20s} for 'SLM draft wrong' / 'majority wrong': {shown}")
    if best:
        print(f"goal: met ({best[0]}: {best[1]:.0%} of LLM-only accuracy at {best[2]:.0%} of its cost; n={n})")
    else:
        near = f"; closest at <= 50% cost: {closest[1]} at {closest[2]:.0%} of its accuracy" if closest else ""
        print(f"goal: missed (no cascade reaches >= 95% of LLM-only accuracy at <= 50% of its cost{near}; n={n})")


def save(path: Path, done: dict[str, dict[str, Any]]) -> None:
    """Rewrite the cache (one JSON row per item) atomically."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row) + "\n" for row in done.values()))
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--offset", type=int, default=400)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--samples", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--llm-price", default="gpt-4o-mini", help="remote price table entry for the LLM")
    parser.add_argument("--cache", type=Path, default=HERE / "results" / "consistency_cascade.jsonl")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()

    from tandemlm import compile_flow, load_flow
    from tandemlm.evaluation.datasets import load_dataset

    items = load_dataset("gsm8k", limit=args.offset + args.limit)[args.offset:]
    done: dict[str, dict[str, Any]] = {}
    if args.cache.exists():
        for line in args.cache.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["id"]] = row
    started, load0 = time.perf_counter(), os.getloadavg()[0]
    print(f"machine: {platform.machine()} {os.cpu_count()} cores (shared); {dt.date.today()}; "
          f"load average at start {load0:.2f}; TANDEM_THREADS={os.environ.get('TANDEM_THREADS', 'auto')}; "
          f"GSM8K sample items {args.offset}..{args.offset + args.limit - 1}; 1 run", flush=True)
    if not args.report_only:
        slm = compile_flow(load_flow(slm_spec(args.samples, args.max_tokens)))
        llm = compile_flow(load_flow(llm_spec(args.max_tokens)))
        judge = compile_flow(load_flow(verifier_spec(args.max_tokens)))
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        for i, item in enumerate(items):
            row = done.get(item.id)
            if row is not None and "verifier" in row:
                continue
            if row is None:
                row = asyncio.run(run_item(slm, llm, item))
            # rows measured before the verifier signal was added get their verdict now
            row["verifier"] = asyncio.run(verify(judge, item.question, row["draft"]))
            done[item.id] = row
            save(args.cache, done)
            print(f"[{i + 1}/{len(items)}] {item.id}: draft {row['draft_ok']:.0f} majority "
                  f"{row['majority_ok']:.0f} llm {row['llm_ok']:.0f} agreement "
                  f"{row['consistency']['agreement']:.2f} ({row['consistency']['samples']} samples) "
                  f"P(yes) {row['verifier']['p_yes']:.2f} slm {row['slm_wall']:.0f}s "
                  f"llm {row['llm_wall']:.0f}s load {row['load']:.1f}", flush=True)
    rows = [done[item.id] for item in items if item.id in done]
    if not rows:
        print("no items measured yet")
        return
    wall = sum(r["slm_wall"] + r["llm_wall"] for r in rows)
    print(f"n={len(rows)} items; model time {wall / 60:.1f} min ({wall / len(rows):.0f} s per item); "
          f"load average now {os.getloadavg()[0]:.2f}; this invocation {time.perf_counter() - started:.0f} s")
    report(rows, args)


if __name__ == "__main__":
    main()
