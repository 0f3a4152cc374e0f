"""CoVer verification: the LLM answers with its reasoning, the local SLM checks that the
reasoning supports the answer; inconsistent answers go back to the LLM with the critique.

Run: python examples/cover.py ["question"] [--samples 3] [--model slm=smollm2-135m --model llm=smollm2-135m]
"""

from __future__ import annotations

from _common import parse_args, with_overrides

from tandemlm import compile_flow, load_flow

args = parse_args(
    __doc__ or "",
    "A shop sells a tent for 349 and a backpack for 129. What do both cost together?",
    ("--samples", {"type": int, "default": 1, "help": "LLM samples, consistency-weighted"}),
)
samples = args.samples

spec = with_overrides(load_flow("cover"), args).to_dict()
spec["nodes"]["answer"]["samples"] = samples
result = compile_flow(spec).run(args.question)

verdict = result.vars["verification"]
print(result.answer)
print()
print(f"verified: {verdict['verified']} (score {verdict['score']}, round {verdict['round']}, "
      f"agreement {verdict['agreement']})")
print(f"critique: {verdict['critique']}")
print(f"path: {' -> '.join(result.path)}")
for decision in result.decisions:
    if decision["router"] == "verify":
        print(f"  check: {decision['choice']} (score {decision['score']} vs {decision['threshold']})")
