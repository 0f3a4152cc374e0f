"""GSM8K on the embedded Qwen pair: SLM-only, LLM-only, cascade (threshold sweep) and route.

Usage (resumable: results and model calls are cached in SQLite, by default in
``~/.cache/tandemlm/gsm8k_eval.db``, outside the checkout; rerun to continue)::

    python benchmarks/gsm8k_eval.py --limit 100            # everything, prints the figures
    python benchmarks/gsm8k_eval.py --limit 30 --phase models   # only the model runs
    python benchmarks/gsm8k_eval.py --dataset my_math.jsonl --limit 50   # another dataset

What runs: the first ``--limit`` problems of ``--dataset`` (default: the bundled GSM8K
sample; a file is scored by what its golds look like, ``numeric`` for ``#### N``), greedy decoding,
prompt "solve step by step, briefly, end with 'Answer: N'", max_tokens 512 for both models,
scorer ``numeric``. SLM-only and LLM-only are the baselines of the cascade (same prompt), so
the cascade's draft and escalation calls are the same calls: every threshold of the sweep
replays them from the cache (latency counts each replayed call at its measured duration).
``route`` is the routing engineer's preset (a router that decides before any model runs)
with the same prompt, when it exists.

Prints: per flow accuracy, LLM-call share, mean/p95 latency; the sweep's points; APGR,
CPT(50%/80%/95%), AIQ of the cascade's confidence router beside random and oracle routers;
whether the goal (>= 95% of LLM-only accuracy with <= 60% LLM calls and lower mean latency
than LLM-only) is met. Writes results.json, PNGs and report.html to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SYSTEM = "You are a careful math tutor."
PROMPT = (
    "Solve the problem step by step, briefly. End with a last line 'Answer: N' where N is "
    "the final number.\n\nProblem: {input}"
)


def cascade_spec(threshold: float, max_tokens: int) -> dict[str, Any]:
    gen = {"type": "generate", "system": SYSTEM, "prompt": PROMPT}
    return {
        "name": "cascade",
        "description": "GSM8K cascade: SLM drafts with token confidence; low confidence -> LLM",
        "models": {
            "slm": {"role": "slm", "params": {"max_tokens": max_tokens}, "context_window": 2048},
            "llm": {"role": "llm", "params": {"max_tokens": max_tokens}, "context_window": 2048},
        },
        "nodes": {
            "draft": {**gen, "model": "slm", "output": "draft", "logprobs": True},
            "accept": {"type": "accept", "field": "draft"},
            "escalate": {**gen, "model": "llm", "output": "answer"},
        },
        "entry": "draft",
        "routes": [
            {
                "from": "draft",
                "name": "gate",
                "router": {"type": "confidence", "field": "draft", "metric": "mean_prob", "threshold": threshold},
                "branches": {"small": "accept", "large": "escalate"},
            }
        ],
        "edges": [{"from": "accept", "to": "end"}, {"from": "escalate", "to": "end"}],
    }


def route_spec(max_tokens: int) -> Any:
    """The ``route`` preset with the GSM8K prompt on both branches, or None if absent."""
    from tandemlm.flows import load_flow, presets

    if "route" not in presets():
        return None
    spec = load_flow("route")
    data = spec.to_dict()
    for node in data.get("nodes", {}).values():
        if node.get("type") == "generate" and node.get("model") in ("slm", "llm"):
            node.update({"system": SYSTEM, "prompt": PROMPT})
            if node["model"] == "slm":  # same call as the baselines' (logprobs leave greedy output unchanged)
                node["logprobs"] = True
            node.pop("max_tokens", None)
    for name in ("slm", "llm"):
        if name in data.get("models", {}):
            data["models"][name].setdefault("params", {})["max_tokens"] = max_tokens
            data["models"][name]["context_window"] = 2048
    return load_flow(data)


def trained_route_spec(route: Any, router_file: Path, rate: float) -> Any:
    """``route`` with a logistic router trained on RouteLLM's GSM8K table (its *test* split,
    disjoint from the bundled train-split sample), threshold calibrated to ``rate`` LLM calls
    on that table. The router never sees our models' results: no test-on-train."""
    import numpy as np

    from tandemlm.evaluation.metrics import threshold_for_rate
    from tandemlm.flows import load_flow
    from tandemlm.routing.training import fit_router, load_table

    table = load_table(HERE / "data" / "routellm" / "gsm8k_responses.csv")
    model = fit_router("logistic", table)
    threshold = threshold_for_rate(np.asarray(model.scores(table.texts)), rate)
    router_file.parent.mkdir(parents=True, exist_ok=True)
    model.save(router_file, threshold=threshold)
    data = route.to_dict()
    data["routes"][0]["router"] = {"type": "logistic", "path": str(router_file), "threshold": threshold}
    data["name"] = "route_trained"
    return load_flow(data)


def build_parser() -> argparse.ArgumentParser:
    """The command line (a function so tests can check its defaults)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="gsm8k", help="bundled name or .jsonl/.csv file")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--threshold", type=float, default=0.1, help="the cascade's listed threshold")
    parser.add_argument("--sweep", default="threshold=0.0:0.3:31")
    parser.add_argument("--phase", choices=["models", "all"], default="all")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "tandemlm" / "gsm8k_eval.db"))
    parser.add_argument("--out", default=str(HERE / "results" / "gsm8k"))
    parser.add_argument("--no-route", action="store_true")
    parser.add_argument("--route-rate", type=float, default=0.5,
                        help="LLM-call rate the trained router is calibrated to (on RouteLLM's table)")
    parser.add_argument("--only", help="with --phase models: run only this baseline (slm-only or llm-only)")
    parser.add_argument("--reverse", action="store_true", help="with --phase models: last item first (a second worker)")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads per model (default: all cores)")
    return parser


def main() -> int:
    args = build_parser().parse_args()

    from tandemlm.evaluation.baselines import baseline_flows
    from tandemlm.evaluation.datasets import default_scorer, load_dataset
    from tandemlm.evaluation.runner import EvalFlow, run_eval
    from tandemlm.flows import load_flow

    items = load_dataset(args.dataset, limit=args.limit)
    scorer = default_scorer(args.dataset, items) or "numeric"
    dataset = Path(args.dataset).stem if Path(args.dataset).suffix else args.dataset
    if args.threads:  # the first load of a model file fixes its thread count
        from tandemlm.models.llamacpp import get_llama

        get_llama("qwen2.5-coder-0.5b", 2048, n_threads=args.threads)
        get_llama("qwen2.5-coder-1.5b", 2048, n_threads=args.threads)
    cascade = EvalFlow("cascade", load_flow(cascade_spec(args.threshold, args.max_tokens)))
    flows = baseline_flows(cascade)
    if args.phase == "models":
        flows = [f for f in flows if not args.only or f.label == args.only]
        if args.reverse:  # two workers sharing the cache meet in the middle
            items = items[::-1]
        run = run_eval(flows, items, scorer=scorer, cache=args.cache, progress=True, dataset=dataset)
        for label, summary in run.summaries().items():
            print(f"{label}: n={summary['n']} accuracy={summary['accuracy']:.3f} "
                  f"latency_mean={summary['latency_mean']:.1f}s errors={summary['errors']}")
        return 0

    from tandemlm.evaluation.report import write_report
    from tandemlm.evaluation.sweep import parse_sweep, run_sweeps

    flows.append(cascade)
    route = None if args.no_route else route_spec(args.max_tokens)
    if route is not None:
        flows.append(EvalFlow("route", route))
        trained = trained_route_spec(route, Path(args.out) / "routellm_logistic.json", args.route_rate)
        flows.append(EvalFlow("route-trained", trained))
    run = run_eval(flows, items, scorer=scorer, cache=args.cache, progress=True, dataset=dataset)
    sweeps = run_sweeps(
        run, [cascade], parse_sweep(args.sweep), cache=args.cache, progress=True,
    )
    machine = {
        "machine": f"{platform.machine()} {os.cpu_count()}-core CPU VM, {platform.system()}",
        "python": platform.python_version(),
        "date": dt.date.today().isoformat(),
        "models": run.models.get("cascade", {}),
        "max_tokens": args.max_tokens,
        "decoding": "greedy (temperature 0)",
    }
    paths = write_report(run, args.out, sweeps=sweeps, meta=machine)
    print(f"{dataset} ({scorer}), n={len(items)} problems, {machine['machine']}, {machine['date']}")
    print(f"models: {machine['models']}")
    print(f"{'flow':<24} {'accuracy':>9} {'LLM calls':>10} {'mean lat.':>10} {'p95 lat.':>9} "
          f"{'SLM tok/q':>10} {'LLM tok/q':>10}")
    for label, s in run.summaries().items():
        if "@" in label:  # sweep points: listed below
            continue
        tok = {m: t["input"] + t["output"] for m, t in s["tokens_mean"].items()}
        print(f"{label:<24} {s['accuracy']:>9.3f} {s['llm_share']:>10.2f} "
              f"{s['latency_mean']:>9.1f}s {s['latency_p95']:>8.1f}s "
              f"{tok.get('slm', 0):>10.0f} {tok.get('llm', 0):>10.0f}")
    llm = run.summary("llm-only")
    for sweep in sweeps:
        print(f"\nsweep {sweep['flow']} {sweep['param']}:")
        print(f"{'threshold':>9} {'accuracy':>9} {'LLM calls':>10} {'mean lat.':>10} {'% of LLM acc':>13}")
        for p in sweep["points"]:
            rel = p["accuracy"] / llm["accuracy"] if llm["accuracy"] else float("nan")
            print(f"{p['value']:>9.3f} {p['accuracy']:>9.3f} {p['llm_share']:>10.2f} "
                  f"{p['latency_mean']:>9.1f}s {rel:>12.0%}")
        print("router metrics (cascade's confidence router vs random (mean over seeds) and oracle):")
        for name, m in sweep["metrics"].items():
            cpts = ", ".join(f"CPT({k})={'-' if v is None else f'{v:.2f}'}" for k, v in m["cpt"].items())
            extra = ""
            if m.get("apgr_ci"):
                extra = f" APGR 95% interval [{m['apgr_ci'][0]:.3f}, {m['apgr_ci'][1]:.3f}]"
            if m.get("apgr_sd") is not None:
                extra = f" (sd {m['apgr_sd']:.3f} over {m['seeds']} seeds)"
            apgr = "-" if m.get("apgr") is None else f"{m['apgr']:.3f}"
            aiq = "-" if m.get("aiq") is None else f"{m['aiq']:.3f}"
            print(f"  {name:<10} APGR={apgr} AIQ={aiq} {cpts}{extra}")
        goal = [
            p for p in sweep["points"]
            if llm["accuracy"] and p["accuracy"] >= 0.95 * llm["accuracy"]
            and p["llm_share"] <= 0.60 and p["latency_mean"] < llm["latency_mean"]
        ]
        print("goal (>=95% of LLM-only accuracy, <=60% LLM calls, lower mean latency): "
              + (f"met at threshold(s) {[p['value'] for p in goal]} (chosen on the same data)" if goal else "NOT met"))
    print(f"\nwrote {', '.join(str(p) for p in paths.values())}")
    sys.stdout.flush()
    (Path(args.out) / "figures.json").write_text(json.dumps(run.summaries(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
