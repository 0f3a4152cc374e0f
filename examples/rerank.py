"""Generate-then-rank: the SLM proposes several answers, the LLM scores each one with a
one-token Yes/No verdict and the best is returned (LLM-Blender's ranker pattern).

Run: python examples/rerank.py ["question"] [--n 4] [--pairwise]
     [--model slm=smollm2-135m --model llm=smollm2-135m]
"""

from __future__ import annotations

from _common import parse_args, with_overrides

from tandemlm import compile_flow, load_flow

args = parse_args(
    __doc__ or "",
    "A tent costs 349 and its footprint 39. What do both cost together?",
    ("--n", {"type": int, "default": 4, "help": "candidates (the first greedy)"}),
    ("--pairwise", {"action": "store_true", "help": "compare candidates in pairs"}),
)
spec = with_overrides(load_flow("rerank"), args).to_dict()
spec["nodes"]["propose"]["n"] = args.n
if args.pairwise:
    spec["nodes"]["pick"]["method"] = "pairwise"
result = compile_flow(spec).run(args.question)

decision = result.decisions[0]
for row in decision["details"]["candidates"]:
    print(f"score {row['score']:.3f}  x{row['votes']}  {row['answer']!r}")
print(f"pick: {decision['choice']} ({decision['reason']})")
print()
print(result.answer)
print(f"answered by: {result.answered_by}; LLM calls: {result.usage.get('llm', {}).get('calls', 0)}")
