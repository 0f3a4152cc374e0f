"""Resilient: the LLM answers; if it is down or slow, the SLM answers (degraded) and the
question is queued for `tandem escalations replay`.

Run: python examples/resilient.py "Say hello." [--model slm=smollm2-135m]
     By default the LLM points at a closed port, to show the fallback.
"""

from __future__ import annotations

import socket

from _common import parse_args, with_overrides

from tandemlm import compile_flow
from tandemlm.escalations import EscalationQueue
from tandemlm.flows.loader import load_flow

args = parse_args(__doc__ or "", "Say hello in French.")
data = with_overrides(load_flow("resilient"), args).to_dict()
if not any(m.startswith("llm=") for m in args.model):  # simulate an unreachable LLM
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data["models"]["llm"] = {"provider": "ollama", "model": "qwen2.5:7b",
                             "host": f"http://127.0.0.1:{port}", "timeout": 2}
result = compile_flow(data).run(args.question)
print(result.answer)
print(f"answered by {result.answered_by}; degraded: {result.degraded}")
for error in result.errors:
    print(f"  {error['error']} (queued as {error.get('queued')})")
print(f"pending escalations: {len(EscalationQueue().list())} (tandem escalations list)")
