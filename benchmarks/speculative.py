"""Speculative decoding on the embedded Qwen2.5-Coder pair: speed, acceptance, cost model.

Usage::

    python benchmarks/speculative.py                 # all prompts, max 96 tokens each
    python benchmarks/speculative.py --max-tokens 48 --runs 2

One run, same prompts, greedy: the 1.5B model alone; speculative decoding with the 0.5B
drafter at fixed k (the cost-model check) and adaptive k (the node's default); and, on
retrieval-grounded prompts (answers that quote a passage), prompt-lookup drafting. All
greedy outputs are checked to equal the LLM alone token for token.

Prints per prompt set: LLM-alone tok/s, speculative tok/s, their ratio, acceptance rate
(accepted / drafted), measured c_d (one 0.5B draft step) and c_v(k) (one verification pass:
the pending token plus k draft tokens with logits at every position), both in units of one
1.5B decode step, the speedup bound ((1 - a^(k+1)) / (1 - a)) / (k*c_d + c_v(k)) with ``a``
the per-token acceptance probability fitted to the measured tokens per round, and where the
time goes (draft passes, verification passes, Python overhead).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from dataclasses import dataclass, field

from tandemlm.decoding import (
    AdaptiveDraftLength,
    Decoder,
    GenerationResult,
    ModelDrafter,
    PromptLookupDrafter,
    autoregressive,
    chat_prompt_tokens,
    speculative,
)
from tandemlm.models.llamacpp import get_llama

SYSTEM = "You are a precise assistant. Answer briefly and directly."
CODE = [
    "Complete this Python function:\n\ndef is_prime(n: int) -> bool:\n    \"\"\"Return True if n is prime.\"\"\"",
    "Write a Python function `flatten(nested)` that flattens a list of lists.",
    "Complete this Python function:\n\ndef word_count(text: str) -> dict[str, int]:\n    \"\"\"Count how often each word occurs.\"\"\"",
    "Write a Python function that reads a CSV file and returns the rows as a list of dicts.",
]
SHORT = [
    "What is the capital of Japan? Answer in one sentence.",
    "Explain in two sentences what a hash map is.",
    "What does HTTP status code 404 mean? One sentence.",
]
PASSAGE = (
    "The Zephyr-9 router supports firmware updates over USB only. To update it, download "
    "the image file zephyr9-fw-4.2.1.bin, copy it to a FAT32-formatted USB stick, insert "
    "the stick into the rear port, and hold the reset button for ten seconds until the "
    "status light blinks amber. The update takes about four minutes; do not unplug the "
    "router while the light is amber. Afterwards the light turns solid green."
)
GROUNDED = [
    (f"Passage:\n{PASSAGE}\n\nUsing the passage, quoting it where possible: how do I update "
     "the firmware of the Zephyr-9 router?"),
    (f"Passage:\n{PASSAGE}\n\nQuote the sentence of the passage that says how long the update "
     "takes, then the one about the status light afterwards."),
]


@dataclass
class Totals:
    tokens: int = 0
    seconds: float = 0.0
    drafted: int = 0
    accepted: int = 0
    rounds: int = 0
    draft_seconds: float = 0.0
    target_seconds: float = 0.0
    mismatches: list[str] = field(default_factory=list)

    def add(self, result: GenerationResult) -> None:
        self.tokens += len(result.tokens)
        self.seconds += result.seconds
        self.drafted += result.drafted
        self.accepted += result.accepted
        self.rounds += result.rounds
        self.draft_seconds += result.draft_seconds
        self.target_seconds += result.target_seconds

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def fit_alpha(tokens_per_round: float, k: int) -> float:
    """The per-token acceptance a with (1 - a^(k+1)) / (1 - a) == tokens_per_round."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        expected = sum(mid**i for i in range(k + 1))
        lo, hi = (mid, hi) if expected < tokens_per_round else (lo, mid)
    return (lo + hi) / 2


def step_costs(target: Decoder, draft: Decoder, prompt: list[int], k: int, reps: int
               ) -> tuple[float, float, float]:
    """Median seconds of: one LLM decode step, one draft step, one (k+1)-token verification."""
    def median_of(decoder: Decoder, width: int, logits: str) -> float:
        decoder.reset()
        decoder.feed(prompt)
        base = decoder.n_past
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            decoder.feed(prompt[-width:], logits=logits)
            times.append(time.perf_counter() - start)
            decoder.truncate(base)
        return statistics.median(times)

    return (median_of(target, 1, "last"), median_of(draft, 1, "last"),
            median_of(target, k + 1, "all"))


def run_set(name: str, prompts: list[str], target: Decoder, draft: Decoder, args: argparse.Namespace
            ) -> None:
    alone, fixed, adaptive, lookup = Totals(), Totals(), Totals(), Totals()
    k = args.k
    for text in prompts:
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
        prompt = chat_prompt_tokens(target.llama, messages)
        for _ in range(args.runs):
            base = autoregressive(target, prompt, max_tokens=args.max_tokens)
            alone.add(base)
            runs = [(fixed, ModelDrafter(draft), AdaptiveDraftLength(k=k, adaptive=False)),
                    (adaptive, ModelDrafter(draft), AdaptiveDraftLength(k=k, k_max=args.k_max))]
            if name == "grounded":
                runs.append((lookup, PromptLookupDrafter(len(prompt)),
                             AdaptiveDraftLength(k=k, k_max=args.k_max)))
            for totals, drafter, policy in runs:
                result = speculative(target, drafter, prompt, max_tokens=args.max_tokens,
                                     draft_length=policy)
                totals.add(result)
                if result.tokens != base.tokens:
                    totals.mismatches.append(text[:40])
    t_step, d_step, v_step = step_costs(target, draft, prompt, k, reps=args.reps)
    c_d, c_v = d_step / t_step, v_step / t_step
    print(f"\n== {name}: {len(prompts)} prompts x {args.runs} run(s), <= {args.max_tokens} tokens")
    print(f"LLM alone          {alone.rate:6.2f} tok/s  ({alone.tokens} tokens, {alone.seconds:.1f} s)")
    modes = [(f"speculative k={k}", fixed), ("speculative adapt", adaptive)]
    if name == "grounded":
        modes.append(("prompt lookup", lookup))
    for label, totals in modes:
        tpr = totals.tokens / totals.rounds if totals.rounds else 0.0
        acc = totals.accepted / totals.drafted if totals.drafted else 0.0
        other = totals.seconds - totals.draft_seconds - totals.target_seconds
        print(f"{label:18s} {totals.rate:6.2f} tok/s  ratio {totals.rate / alone.rate:4.2f}x  "
              f"acceptance {acc:.3f}  tokens/round {tpr:.2f}  identical to LLM alone: "
              f"{'yes' if not totals.mismatches else 'NO ' + str(totals.mismatches)}")
        print(f"{'':18s} time: draft {totals.draft_seconds:.1f} s, verify {totals.target_seconds:.1f} s,"
              f" other {other:.1f} s of {totals.seconds:.1f} s")
    tpr = fixed.tokens / fixed.rounds if fixed.rounds else 0.0
    alpha = fit_alpha(tpr, k)
    bound = sum(alpha**i for i in range(k + 1)) / (k * c_d + c_v)
    ceiling = (k + 1) / (k * c_d + c_v)
    print(f"costs (median of {args.reps}): LLM step {t_step * 1000:.1f} ms, draft step "
          f"{d_step * 1000:.1f} ms, verify k={k} {v_step * 1000:.1f} ms -> c_d {c_d:.3f}, "
          f"c_v({k}) {c_v:.3f}")
    print(f"bound at k={k}: a {alpha:.3f} (fitted to tokens/round) -> "
          f"{bound:.2f}x; measured {fixed.rate / alone.rate:.2f}x "
          f"({fixed.rate / alone.rate / bound:.0%} of bound); ceiling at a=1: {ceiling:.2f}x")
    if name == "grounded":
        lk = lookup.tokens / lookup.rounds if lookup.rounds else 0.0
        print(f"prompt lookup: c_d 0, bound {lk / c_v:.2f}x at tokens/round {lk:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--k-max", type=int, default=8)
    parser.add_argument("--reps", type=int, default=15, help="repetitions per cost measurement")
    parser.add_argument("--sets", default="code,short,grounded")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="llama.cpp threads per model (use 1 on a machine shared with "
                        "other busy processes: thread barriers stall when cores are oversubscribed)")
    args = parser.parse_args()
    big, big_lock = get_llama("qwen2.5-coder-1.5b", 4096, n_threads=args.threads)
    small, small_lock = get_llama("qwen2.5-coder-0.5b", 4096, n_threads=args.threads)
    target, draft = Decoder(big, "qwen2.5-coder-1.5b"), Decoder(small, "qwen2.5-coder-0.5b")
    load = os.getloadavg()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, {platform.python_version()}; "
          f"date {dt.date.today()}; threads {args.threads}; load average at start {load[0]:.2f}; greedy; "
          f"draft qwen2.5-coder-0.5b, target qwen2.5-coder-1.5b")
    sets = {"code": CODE, "short": SHORT, "grounded": GROUNDED}
    with big_lock, small_lock:
        for name in args.sets.split(","):
            run_set(name, sets[name], target, draft, args)
    print(f"\nload average at end {os.getloadavg()[0]:.2f} (other processes share the cores)")


if __name__ == "__main__":
    main()
