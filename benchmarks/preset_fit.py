"""Do the cascade/route presets' token limits and threshold fit the default pair on math?

Runs the ``cascade`` preset's two generate calls (the SLM draft with token confidence and
the LLM answer, same system prompt and template) on the first ``--limit`` problems of a
dataset with a generous token cap (``--cap``), then prints, per model, how many answers
would have been cut off at each candidate ``max_tokens`` and the spread of the cascade's
router score (1 - mean token probability), with the thresholds that send 25/50/75% of
these questions to the LLM.

Usage (real models; one thread each on a shared machine)::

    TANDEM_THREADS=1 python benchmarks/preset_fit.py --limit 12

The calls go through the evaluation cache (``--cache``, default under ``~/.cache``), so a
rerun is instant. The default dataset is the bundled GSM8K sample (development data).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="gsm8k")
    parser.add_argument("--limit", type=int, default=12)
    parser.add_argument("--cap", type=int, default=1024, help="max_tokens while measuring")
    parser.add_argument("--limits", default="256,384,512,640,768", help="candidate max_tokens")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "tandemlm" / "preset_fit.db"))
    args = parser.parse_args()

    from tandemlm.evaluation.baselines import baseline_flows
    from tandemlm.evaluation.datasets import load_dataset
    from tandemlm.evaluation.runner import EvalFlow, run_eval
    from tandemlm.evaluation.scorers import guess_scorer
    from tandemlm.flows import load_flow

    items = load_dataset(args.dataset, limit=args.limit)
    data = load_flow("cascade").to_dict()
    for model in data["models"].values():
        model.setdefault("params", {})["max_tokens"] = args.cap
        model["context_window"] = 2048
    data["routes"][0]["router"]["threshold"] = 1.0  # never escalate: the LLM runs as llm-only
    cascade = EvalFlow("cascade", load_flow(data))
    flows = [*baseline_flows(cascade), cascade]
    started = time.perf_counter()
    run = run_eval(flows, items, scorer=guess_scorer(items), cache=args.cache, progress=True, dataset=args.dataset)
    elapsed = time.perf_counter() - started
    print(f"{args.dataset}: first {len(items)} items, cap {args.cap} tokens, threads "
          f"TANDEM_THREADS={os.environ.get('TANDEM_THREADS', '(default)')}, {platform.machine()} "
          f"{os.cpu_count()}-core shared machine, {elapsed:.0f} s (ran {run.executed}, reused {run.reused})")
    print(f"models: {run.models['cascade']}")
    limits = [int(v) for v in args.limits.split(",")]
    for label, model in (("slm-only", "slm"), ("llm-only", "llm")):
        out = np.array([run.records[label][i.id]["tokens"].get(model, {}).get("output", 0) for i in items])
        acc = np.mean([run.records[label][i.id]["score"] for i in items])
        cut = ", ".join(f"{lim}: {int(np.sum(out >= lim))}/{len(out)}" for lim in limits)
        print(f"{model}: accuracy {acc:.2f}; output tokens median {np.median(out):.0f}, max {out.max()}; "
              f"answers longer than (would be cut at) {cut}; at cap {int(np.sum(out >= args.cap))}")
    scores = np.array([next(iter(run.records["cascade"][i.id]["route_scores"].values())) for i in items])
    q = np.quantile(scores, [0, 0.25, 0.5, 0.75, 1])
    print("router score (1 - mean token prob.): min {:.3f} q25 {:.3f} median {:.3f} q75 {:.3f} max {:.3f}".format(*q))
    for rate in (0.25, 0.5, 0.75):
        t = float(np.quantile(scores, 1 - rate))
        print(f"  threshold {t:.3f} sends {np.mean(scores >= t):.0%} of these questions to the LLM")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
