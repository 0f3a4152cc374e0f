"""Fusion: several models answer in parallel; a fuse node picks or writes the answer.

Run: python examples/fusion.py "What is 12 * 7?" [--method vote|weighted|aggregate|best_of]
     [--model slm=smollm2-135m --model llm=smollm2-135m]
"""

from __future__ import annotations

from _common import parse_args, with_overrides

from tandemlm import compile_flow
from tandemlm.flows.loader import load_flow

args = parse_args(
    __doc__ or "",
    "What is 12 * 7?",
    ("--method", {"default": "weighted", "choices": ["vote", "weighted", "aggregate", "best_of"]}),
)
method = args.method

data = with_overrides(load_flow("fusion"), args).to_dict()
data["nodes"]["fuse"]["method"] = method
if method in ("aggregate", "best_of"):
    data["nodes"]["fuse"]["model"] = "llm"  # the aggregator / verifier
result = compile_flow(data).run(args.question)
fuse = result.decisions[-1]
for field in ("direct", "stepwise", "strong"):
    print(f"{field:>9}: {str(result.vars.get(field, ''))[:80]!r}")
print(f"fused ({method}): {result.answer}")
print(f"{fuse['reason']}; answered by {result.answered_by}")
