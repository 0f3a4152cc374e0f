"""``generate``: call a model with a prompt template; ``accept``: adopt an output as the answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import ConfigDict, Field, field_validator

from tandemlm.core.ledger import meta_of
from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.core.state import lookup
from tandemlm.nodes import structured
from tandemlm.nodes.template import fields, render


class Generate(Node):
    """Call ``model`` with ``prompt`` (a template over state fields) and store the reply.

    Args:
        model: model name from the flow's ``models``.
        prompt: template, e.g. ``"Answer briefly: {input}"``.
        system: optional system prompt (template).
        output: state field to write (``answer`` makes it the final answer).
        schema: ``{field: type}`` to request and validate a JSON object (structured output);
            if the reply does not parse, the output is ``{}`` and the error is recorded.
        logprobs: request token-probability confidence (for confidence routers).
        history: include the conversation's earlier messages (multi-turn).
        max_tokens: override the model's ``max_tokens`` for this node.
    """

    type_name = "generate"

    model: str
    prompt: str = Field("{input}", max_length=100_000)
    system: str | None = Field(None, max_length=100_000)
    output: str = "answer"
    schema_: dict[str, str] | None = Field(None, alias="schema")
    logprobs: bool = False
    history: bool = False
    max_tokens: int | None = Field(None, ge=1, le=32768)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is not None:
            structured.schema_model(value)
        return value

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        names = fields(self.prompt) | fields(self.system or "") | ({"messages"} if self.history else set())
        return dict.fromkeys(sorted(names), Any)

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(dict if self.schema_ else str)}

    def messages(self, state: Mapping[str, Any]) -> list[BaseMessage]:
        """The chat messages this node sends for ``state``."""
        out: list[BaseMessage] = []
        if self.system:
            out.append(SystemMessage(content=render(self.system, state)))
        if self.history:  # earlier turns, without the current input (the prompt carries it)
            out.extend(state.get("messages", [])[:-1])
        prompt = render(self.prompt, state)
        if self.schema_:
            prompt = f"{prompt}\n\n{structured.instruction(self.schema_)}"
        out.append(HumanMessage(content=prompt))
        return out

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.max_tokens:
            options["max_tokens"] = self.max_tokens
        reply = await call.chat(self.model, self.messages(state), logprobs=self.logprobs, **options)
        value: Any = reply.text
        if self.schema_:
            try:
                value = structured.parse(reply.text, self.schema_)
            except ValueError as exc:
                value = {}
                call.error(f"structured output: {exc}")
        return {self.output: value}


class Accept(Node):
    """Make an earlier output (e.g. the SLM's ``draft``) the final answer.

    Args:
        field: the state field holding the text to accept.
    """

    type_name = "accept"

    field: str = "draft"

    def inputs(self) -> dict[str, Any]:
        return {self.field: Any}

    def outputs(self) -> dict[str, Port]:
        return {"answer": Port(str)}

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        text = lookup(state, self.field)
        return NodeResult(
            outputs={"answer": "" if text is None else str(text)},
            credit=meta_of(state, self.field).get("model"),
        )
