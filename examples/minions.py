"""Local workers (Minions-style): the LLM plans, SLM workers read a long document on the
device, the LLM answers from their findings; prints remote tokens vs sending the document.

Run: python examples/minions.py ["question"] [--model slm=smollm2-135m --model llm=smollm2-135m]
"""

from __future__ import annotations

from pathlib import Path

from _common import parse_args, with_overrides

from tandemlm import compile_flow, load_flow

args = parse_args(__doc__ or "", "How many days do customers have to return an unused item?")

# The "long document": the example shop's policies, concatenated.
kb = Path(__file__).parent / "data" / "kb" / "policies"
document = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(kb.glob("*.md")))

spec = with_overrides(load_flow("minions"), args)
result = compile_flow(spec).run(args.question, variables={"document": document})

print(result.answer)
print()
plan = result.vars["plan"]
print(f"plan: {plan['subtasks']} over {plan['chunks']} chunks")
print(f"findings kept: {len(result.vars['findings'])} of {result.usage['slm']['calls']} worker calls")
report = result.vars["minions"]
print(f"remote tokens: {report['remote_tokens']} (whole document would be "
      f"~{report['full_document_tokens_est']}; saving {report['saving']:.0%})")
print(f"path: {' -> '.join(result.path)}")
