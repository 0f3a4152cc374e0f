"""Cascade: the SLM answers; when its token confidence is low, the LLM answers instead.

Run: python examples/cascade.py "What is 17 + 25?" [--model slm=smollm2-135m]
"""

from __future__ import annotations

from _common import parse_args, with_overrides

from tandemlm import Flow

args = parse_args(__doc__ or "", "What is 17 + 25?")

SYSTEM = "You are a precise assistant. Answer briefly and directly."
flow = (
    Flow("cascade_example")
    .model("slm", role="slm")  # Ollama when a server answers, else the embedded Qwen 0.5B
    .model("llm", role="llm")  # ... else the embedded Qwen 1.5B
    .node("draft", "generate", model="slm", system=SYSTEM, output="draft", logprobs=True)
    .node("accept", "accept", field="draft")
    .node("escalate", "generate", model="llm", system=SYSTEM)
    # escalate when 1 - mean token probability >= 0.2
    .route("draft", "confidence", field="draft", threshold=0.2,
           branches={"small": "accept", "large": "escalate"})
    .edge("accept", "end")
    .edge("escalate", "end")
)

compiled = Flow.from_spec(with_overrides(flow.to_spec(), args)).compile()
result = compiled.run(args.question)
decision = result.decisions[0]
print(result.answer)
print(f"path: {' -> '.join(result.path)}")
print(f"answered by {result.answered_by}: score {decision['score']:.3f} vs threshold "
      f"{decision['threshold']} ({decision['reason']})")
print(f"models: {result.models}")
