"""``decompose``: a model splits a question into a bounded list of sub-questions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import Field

from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.errors import ModelUnavailableError
from tandemlm.nodes import structured
from tandemlm.nodes.template import fields, render

SCHEMA = {"subquestions": "list[str]"}
DEFAULT_PROMPT = (
    "Split the question into at most {max_items} short, self-contained sub-questions, one "
    "per fact to look up. A question that asks one thing stays one sub-question.\n"
    'Example: "How much is the tent and how heavy is it?" -> '
    '{{"subquestions": ["How much is the tent?", "How heavy is the tent?"]}}\n\n'
    "Question: {input}"
)
MAX_CHARS = 300


def clean(items: list[str], max_items: int) -> list[str]:
    """Strip, drop empties and case-insensitive repeats, cap length and count."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in items:
        text = " ".join(str(raw).split())[:MAX_CHARS].strip(" -*\u2022")
        key = text.lower().rstrip("?. ")
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    return out[:max_items]


class Decompose(Node):
    """Ask ``model`` for sub-questions (structured output) and write them to ``output``.

    Falls back to ``[input]`` when the model fails, the reply does not parse, or the list is
    empty; the fallback is recorded as a recovered error and as the output's metadata
    ``fallback``.

    Args:
        model: model name (usually the SLM).
        prompt: template; ``{max_items}`` is filled in, then state fields.
        system: optional system prompt.
        max_items: the most sub-questions kept (1-16).
        output: state field for the list.
        include_original: also keep the original question as the first item.
        max_tokens: override the model's ``max_tokens``.
    """

    type_name = "decompose"

    model: str
    prompt: str = Field(DEFAULT_PROMPT, max_length=20_000)
    system: str | None = Field(
        "You break questions into sub-questions. You never answer them.", max_length=20_000
    )
    max_items: int = Field(4, ge=1, le=16)
    output: str = "subquestions"
    include_original: bool = False
    max_tokens: int | None = Field(None, ge=1, le=4096)

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def _prompt_fields(self) -> set[str]:
        return (fields(self.prompt) | fields(self.system or "")) - {"max_items"}

    def inputs(self) -> dict[str, Any]:
        # ``input`` is the fallback (and the original question), whatever the prompt says.
        return dict.fromkeys(sorted(self._prompt_fields() | {"input"}), Any)

    def model_inputs(self, param: str) -> set[str]:
        """The model sees the prompt's fields only (the fallback never reaches it)."""
        return self._prompt_fields()

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(list, doc="sub-questions")}

    def messages(self, state: Mapping[str, Any]) -> list[BaseMessage]:
        prompt = render(self.prompt.replace("{max_items}", str(self.max_items)), state)
        out: list[BaseMessage] = []
        if self.system:
            out.append(SystemMessage(content=render(self.system, state)))
        out.append(HumanMessage(content=f"{prompt}\n\n{structured.instruction(SCHEMA)}"))
        return out

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        question = str(state.get("input", ""))
        problem: str | None = None
        items: list[str] = []
        options: dict[str, Any] = {"max_tokens": self.max_tokens} if self.max_tokens else {}
        try:
            reply = await call.chat(self.model, self.messages(state), **options)
            items = clean(structured.parse(reply.text, SCHEMA)["subquestions"], self.max_items)
            if not items:
                problem = "the model returned no sub-questions"
        except ModelUnavailableError as exc:
            problem = f"model failed: {exc}"
        except ValueError as exc:
            problem = f"structured output: {exc}"
        if self.include_original:
            items = clean([question, *items], self.max_items)
        fallback = not items
        if fallback:
            items = [question]
        if problem:
            call.error(f"decomposition fell back: {problem}")
        return NodeResult(outputs={self.output: items}, meta={self.output: {"fallback": fallback}})
