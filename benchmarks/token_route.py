"""Per-token routing on GSM8K: accuracy and LLM-token share at a few thresholds.

Usage (resumable: every generation is appended to ``--cache``; rerun to continue)::

    python benchmarks/token_route.py                         # 30 questions, 3 thresholds
    python benchmarks/token_route.py --limit 10 --thresholds 0.4,0.7

What runs: the first ``--limit`` problems of the bundled GSM8K sample
(``benchmarks/data/gsm8k``, MIT, OpenAI), greedy, prompt "solve step by step, briefly,
end with 'Answer: N'", ``--max-tokens`` (default 384) for every mode. Modes: SLM alone
(Qwen2.5-Coder-0.5B), LLM alone (1.5B), and ``token_route`` at each threshold (the LLM
writes every token where the SLM's top-token probability is below the threshold). Scorer:
``numeric`` (the final number, ``Answer: N`` preferred). 30 questions take roughly 40
minutes on an idle 2-core CPU (about 10 s per SLM answer, 19 s per LLM answer).

Prints per mode: accuracy, LLM-token share, tokens/s and seconds per question.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
from pathlib import Path
from typing import Any

from tandemlm.decoding import (
    Decoder,
    RoutePolicy,
    autoregressive,
    chat_prompt_tokens,
    token_route,
)
from tandemlm.evaluation.scorers import numeric
from tandemlm.models.llamacpp import get_llama

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "gsm8k" / "train_sample.jsonl"
SYSTEM = "You are a careful math tutor."
PROMPT = (
    "Solve the problem step by step, briefly. End with a last line 'Answer: N' where N is "
    "the final number.\n\nProblem: {question}"
)


def load_questions(limit: int) -> list[dict[str, str]]:
    with DATA.open() as handle:
        return [json.loads(line) for _, line in zip(range(limit), handle, strict=False)]


def load_cache(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {row["key"]: row for row in rows}


def run_mode(mode: str, slm: Decoder, llm: Decoder, prompt: list[int], max_tokens: int
             ) -> tuple[list[int], int, float]:
    """(output tokens, LLM-written tokens, seconds) of one generation."""
    if mode == "slm-alone":
        out = autoregressive(slm, prompt, max_tokens=max_tokens)
        return out.tokens, 0, out.seconds
    if mode == "llm-alone":
        out = autoregressive(llm, prompt, max_tokens=max_tokens)
        return out.tokens, len(out.tokens), out.seconds
    threshold = float(mode.split("@", 1)[1])  # "route@0.5"
    routed = token_route(slm, llm, prompt, policy=RoutePolicy(min_prob=threshold),
                         max_tokens=max_tokens)
    return routed.tokens, routed.llm_tokens, routed.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description="token_route on GSM8K")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--thresholds", default="0.3,0.5,0.7")
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--cache", type=Path, default=HERE / "results" / "token_route.jsonl")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="llama.cpp threads per model (use 1 on a machine shared with "
                        "other busy processes: thread barriers stall when cores are oversubscribed)")
    args = parser.parse_args()
    modes = ["slm-alone", "llm-alone", *(f"route@{t}" for t in args.thresholds.split(","))]
    questions = load_questions(args.limit)
    cache = load_cache(args.cache)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    small, small_lock = get_llama("qwen2.5-coder-0.5b", 4096, n_threads=args.threads)
    big, big_lock = get_llama("qwen2.5-coder-1.5b", 4096, n_threads=args.threads)
    slm, llm = Decoder(small, "slm"), Decoder(big, "llm")
    print(f"machine: {platform.machine()} {os.cpu_count()} cores; date {dt.date.today()}; "
          f"threads {args.threads}; load average at start {os.getloadavg()[0]:.2f}; {len(questions)} GSM8K questions, "
          f"greedy, max_tokens {args.max_tokens}, 1 run")
    with small_lock, big_lock, args.cache.open("a") as out:
        for mode in modes:
            for index, item in enumerate(questions):
                key = f"{mode}|{index}|{args.max_tokens}"
                if key in cache:
                    continue
                messages = [{"role": "system", "content": SYSTEM},
                            {"role": "user", "content": PROMPT.format(question=item["question"])}]
                prompt = chat_prompt_tokens(big, messages)
                tokens, llm_tokens, seconds = run_mode(mode, slm, llm, prompt, args.max_tokens)
                text = llm.detokenize(tokens, prompt)
                row = {"key": key, "mode": mode, "index": index, "tokens": len(tokens),
                       "llm_tokens": llm_tokens, "seconds": seconds,
                       "correct": numeric(text, item["answer"]), "text": text}
                cache[key] = row
                out.write(json.dumps(row) + "\n")
                out.flush()
    print(f"{'mode':12s} {'accuracy':>8s} {'LLM share':>9s} {'tok/s':>6s} {'s/question':>10s}")
    for mode in modes:
        rows = [cache[f"{mode}|{i}|{args.max_tokens}"] for i in range(len(questions))]
        tokens = sum(r["tokens"] for r in rows)
        seconds = sum(r["seconds"] for r in rows)
        print(f"{mode:12s} {sum(r['correct'] for r in rows) / len(rows):8.1%} "
              f"{sum(r['llm_tokens'] for r in rows) / max(tokens, 1):9.1%} "
              f"{tokens / seconds:6.2f} {seconds / len(rows):10.1f}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
