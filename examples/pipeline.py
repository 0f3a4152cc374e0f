"""Pipeline: the SLM extracts intent and key facts (validated JSON); the LLM answers with them.

Run: python examples/pipeline.py "..." [--model slm=smollm2-135m --model llm=smollm2-135m]
"""

from __future__ import annotations

from _common import parse_args, with_overrides
from pydantic import BaseModel

from tandemlm import Flow


class Brief(BaseModel):
    intent: str
    facts: list[str]


args = parse_args(__doc__ or "", "I bought 3 notebooks at 4 euros each and a pen for 2 euros. What did I spend?")

flow = (
    Flow("pipeline_example")
    .model("slm", role="slm")
    .model("llm", role="llm")
    .node("extract", "generate", model="slm", schema=Brief, output="brief",
          prompt="Request: {input}\n\nState the intent in a few words and list the key facts.")
    .node("answer", "generate", model="llm",
          prompt="Request: {input}\nIntent: {brief.intent}\nKey facts: {brief.facts}\n\nAnswer the request.")
    .edge("extract", "answer")
    .edge("answer", "end")
)

result = Flow.from_spec(with_overrides(flow.to_spec(), args)).compile().run(args.question)
print(result.answer)
print(f"brief: {result.vars['brief']}")
print(f"path: {' -> '.join(result.path)}; tokens: "
      + ", ".join(f"{m}={int(u['input_tokens'])}+{int(u['output_tokens'])}" for m, u in result.usage.items()))
