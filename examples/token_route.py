"""Per-token routing: the SLM writes, the LLM writes the tokens the SLM is unsure of.

Run: python examples/token_route.py "A shop sells pens at 3 for $2. How much do 12 pens cost?"
     python examples/token_route.py --model slm=smollm2-135m --model llm=smollm2-135m  # quick

Whenever the SLM's top-token probability is below min_prob, the LLM writes the next token,
then the SLM resumes. Both models must be embedded (llama.cpp) and share a tokenizer
(default: Qwen2.5-Coder 0.5B and 1.5B). TANDEM_SLM / TANDEM_LLM also override.
"""

from __future__ import annotations

import os

from _common import parse_args, with_overrides

from tandemlm import Flow

args = parse_args(__doc__ or "", "A shop sells pens at 3 for $2. How much do 12 pens cost?")
args.model += [f"{n}={os.environ[f'TANDEM_{n.upper()}']}" for n in ("slm", "llm")
               if os.environ.get(f"TANDEM_{n.upper()}")]

flow = (
    Flow("token_route_example")
    .model("slm", provider="llamacpp", model="qwen2.5-coder-0.5b", params={"max_tokens": 256})
    .model("llm", provider="llamacpp", model="qwen2.5-coder-1.5b", params={"max_tokens": 256})
    .node("answer", "token_route", slm="slm", llm="llm", min_prob=0.5, handoff_tokens=1,
          system="You are a careful assistant. Solve step by step, briefly.")
    .edge("answer", "end")
)

compiled = Flow.from_spec(with_overrides(flow.to_spec(), args)).compile()
result = compiled.run(args.question)
step = result.steps[0]
print(result.answer)
print(f"\n{step['output_tokens']} tokens at {step['tokens_per_second']:.1f} tok/s; the LLM wrote "
      f"{step['llm_tokens']} ({step['llm_token_share']:.0%}) in {step['handoffs']} handoffs")
print(f"answered by {result.answered_by}; usage: {result.usage}")
