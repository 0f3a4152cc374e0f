"""Custom components: nodes and a router written outside tandemlm, named from YAML.

A node declares inputs and outputs and returns only its outputs; a router returns a score in
[0, 1] and a reason. A package would register them by `tandemlm.nodes`/`.routers` entry points.

Run: python examples/custom_components.py "Why is the sky blue?" [--model llm=qwen2.5-coder-1.5b]
"""

from __future__ import annotations

from typing import Any

import yaml
from _common import parse_args, with_overrides
from langchain_core.messages import HumanMessage

from tandemlm import compile_flow
from tandemlm.core.node import Node, NodeCall, Port
from tandemlm.core.state import lookup
from tandemlm.flows import load_flow, register_node, register_router
from tandemlm.nodes.routers.base import Router, RouteScore


class WordCount(Node):
    """Count the words of the input into ``words`` (a node that calls no model)."""

    type_name = "word_count"

    def inputs(self) -> dict[str, Any]:
        return {"input": str}

    def outputs(self) -> dict[str, Port]:
        return {"words": Port(int, doc="number of words")}

    async def run(self, state: Any, call: NodeCall) -> dict[str, Any]:
        return {"words": len(str(state["input"]).split())}


class Terse(Node):
    """Answer with ``model`` in at most ``limit`` words (a node that calls a model)."""

    type_name = "terse"
    model: str
    limit: int = 40

    def model_refs(self) -> dict[str, str]:  # checked against the spec's models at compile time
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        return {"input": str}

    def outputs(self) -> dict[str, Port]:
        return {"answer": Port(str)}

    async def run(self, state: Any, call: NodeCall) -> dict[str, Any]:
        ask = HumanMessage(content=f"Answer in at most {self.limit} words.\n\n{state['input']}")
        reply = await call.chat(self.model, [ask])  # traced, counted, budget-checked
        return {"answer": " ".join(reply.text.split()[: self.limit])}


class WordBudget(Router):
    """Large model when the request has ``max_words`` words or more (reads ``words``)."""

    type_name = "word_budget"
    max_words: int = 12

    def reads(self) -> set[str]:
        return {"words"}

    async def score(self, state: Any, call: NodeCall) -> RouteScore:
        n = int(lookup(state, "words") or 0)
        return RouteScore(min(1.0, n / 2 / self.max_words), f"{n} words vs {self.max_words}")


register_node("word_count", WordCount)
register_node("terse", Terse)
register_router("word_budget", WordBudget)

FLOW = """
name: custom_components
models:
  slm: {provider: llamacpp, model: smollm2-135m, role: slm, params: {max_tokens: 96}}
  llm: {provider: llamacpp, model: smollm2-135m, role: llm, params: {max_tokens: 192}}
nodes:
  count: {type: word_count}
  small: {type: terse, model: slm, limit: 40}
  large: {type: generate, model: llm, prompt: "Think step by step, then answer: {input}"}
entry: count
routes:
  - {from: count, name: budget, branches: {small: small, large: large},
     router: {type: word_budget, max_words: 12, threshold: 0.5}}
edges: [{from: small, to: end}, {from: large, to: end}]
"""

args = parse_args(__doc__ or "", "Why is the sky blue?")
result = compile_flow(with_overrides(load_flow(yaml.safe_load(FLOW)), args)).run(args.question)
d = result.decisions[0]
print(f"{result.answer}\npath: {' -> '.join(result.path)}")
print(f"{d['router']}: {d['score']:.2f} vs {d['threshold']} -> {result.answered_by}, {d['reason']}")
