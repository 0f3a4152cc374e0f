"""Flows as nodes: the cascade preset (SLM first, LLM when unsure) runs as one step of a flow.

The SLM first rewrites the request as one short question; a `flow` node then runs the
`cascade` preset on it. The cascade uses this flow's models (same names: slm, llm), its
spans nest under the node's span, and its usage and escalation count in this run's result.

Run: python examples/subflow.py "hey, 17 + 25 = ?" [--model slm=smollm2-135m]
"""

from __future__ import annotations

from _common import parse_args, with_overrides

from tandemlm import Flow

args = parse_args(__doc__ or "", "hey, what's 17 + 25? need it for my invoice")

flow = (
    Flow("subflow_example")
    .model("slm", role="slm")  # Ollama when a server answers, else the embedded Qwen 0.5B
    .model("llm", role="llm")  # ... else the embedded Qwen 1.5B
    .node("clarify", "generate", model="slm", output="question", max_tokens=64,
          prompt="Rewrite this request as one short, self-contained question. "
                 "Reply with the question only.\n\n{input}")
    # the whole cascade preset as one node: its question is the clarified one
    .node("answer", "flow", flow="cascade", input="{question}")
    .edge("clarify", "answer")
    .edge("answer", "end")
)

compiled = Flow.from_spec(with_overrides(flow.to_spec(), args)).compile()
result = compiled.run(args.question)
step = result.steps[-1]  # the flow node's ledger entry
print(result.answer)
print(f"question: {result.vars['question']}")
print(f"path: {' -> '.join(result.path)} (inside answer: {' -> '.join(step['child_path'])})")
for decision in step["child_decisions"]:
    print(f"  {decision['node']}: {decision['choice']} (score {decision['score']:.3f} "
          f"vs threshold {decision['threshold']})")
print(f"answered by {result.answered_by}; large model called: {result.llm_called}")
for model, counts in result.usage.items():
    print(f"  {model}: {int(counts['calls'])} call(s), "
          f"{int(counts['input_tokens'] + counts['output_tokens'])} tokens")
