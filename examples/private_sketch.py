"""Private sketch (CoGenesis-style): the remote LLM only sees placeholders; the local SLM
personalises the answer with the customer's record, which never leaves the device.

Run: python examples/private_sketch.py ["question"] [--model slm=smollm2-135m --model llm=smollm2-135m]
"""

from __future__ import annotations

import json
from pathlib import Path

from _common import parse_args, with_overrides

from tandemlm import compile_flow, load_flow

args = parse_args(
    __doc__ or "",
    "Hi, this is Priya Raman (priya.raman@example.org). My tent from order BP-5953876 has a "
    "broken pole. Can I get a replacement sent to 7 Quarry Street, Apt 3B, Eastwick 10293?",
)

# The customer's record is private context: only the local SLM reads it.
records = Path(__file__).parent / "data" / "customers.jsonl"
customer = json.loads(records.read_text(encoding="utf-8").splitlines()[2])
profile = (f"Loyalty: {customer['loyalty']}. Orders: "
           + "; ".join(f"{o['order_id']} {o['product']} ({o['date']})" for o in customer["orders"]))

spec = with_overrides(load_flow("private_sketch"), args)  # llm has local: false, privacy: strict
flow = compile_flow(spec)
result = flow.run(args.question, variables={"profile": profile})

print("sent to the remote model:", result.vars["redacted"])
print("remote sketch:          ", result.vars["sketch"])
print()
print(result.answer)
print()
print(f"path: {' -> '.join(result.path)}")
mapping = result.vars["_private"]
print(f"placeholders restored on the device: {', '.join(mapping)}")
