"""Route: a router reads the request first and picks one model (no draft is wasted).

Run: python examples/route.py "How many legs do 3 cats have?" [--model slm=smollm2-135m]
     python examples/route.py "..." --router router.json   # a trained logistic router
"""

from __future__ import annotations

from _common import parse_args, with_overrides

from tandemlm import compile_flow
from tandemlm.flows.loader import load_flow

args = parse_args(
    __doc__ or "",
    "How many legs do 3 cats have in total?",
    ("--router", {"default": None, "help": "a router file from `tandem router train`"}),
)
router_file = args.router

spec = with_overrides(load_flow("route"), args)
if router_file:
    data = spec.to_dict()
    data["routes"][0]["router"] = {"type": "logistic", "path": router_file, "threshold": 0.35}
    spec = load_flow(data)
result = compile_flow(spec).run(args.question)
decision = result.decisions[0]
print(result.answer)
print(f"path: {' -> '.join(result.path)}")
print(f"{decision['router']} router: score {decision['score']:.3f} vs {decision['threshold']} "
      f"-> {result.answered_by} ({decision['reason']})")
