"""Speculative decoding: the SLM drafts, the LLM verifies; the answer is the LLM's own.

Run: python examples/speculate.py "Write a Python function that reverses a list."
     python examples/speculate.py --lookup "..."   # prompt-lookup drafting, no draft model
     python examples/speculate.py --model slm=smollm2-135m --model llm=smollm2-135m  # quick

Both models must be embedded (llama.cpp) and share a tokenizer: the default pair is
Qwen2.5-Coder 0.5B (drafter) and 1.5B (verifier). TANDEM_SLM / TANDEM_LLM also override.
"""

from __future__ import annotations

import os

from _common import parse_args, with_overrides

from tandemlm import Flow

args = parse_args(
    __doc__ or "",
    "Write a Python function that reverses a list.",
    ("--lookup", {"action": "store_true", "help": "prompt-lookup drafting (no draft model)"}),
)
LOOKUP = args.lookup
args.model += [f"{n}={os.environ[f'TANDEM_{n.upper()}']}" for n in ("slm", "llm")
               if os.environ.get(f"TANDEM_{n.upper()}")]

flow = (
    Flow("speculate_example")
    .model("slm", provider="llamacpp", model="qwen2.5-coder-0.5b", params={"max_tokens": 200})
    .model("llm", provider="llamacpp", model="qwen2.5-coder-1.5b", params={"max_tokens": 200})
    # draft up to k tokens (adaptive between k_min and k_max), verify them in one LLM pass
    .node("answer", "speculate", slm="slm", llm="llm",
          draft="prompt_lookup" if LOOKUP else "model", k=4, k_max=8,
          system="You are a precise assistant. Answer briefly and directly.")
    .edge("answer", "end")
)

compiled = Flow.from_spec(with_overrides(flow.to_spec(), args)).compile()
result = compiled.run(args.question)
step = result.steps[0]
print(result.answer)
print(f"\n{step['output_tokens']} tokens at {step['tokens_per_second']:.1f} tok/s; "
      f"drafted {step['tokens_drafted']}, accepted {step['tokens_accepted']} "
      f"(acceptance {step['acceptance_rate']:.0%}) in {step['rounds']} LLM passes")
print(f"models: {result.models}")
