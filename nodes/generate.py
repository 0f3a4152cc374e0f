"""``generate``: call a model with a prompt template; ``accept``: adopt an output as the answer."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import ConfigDict, Field, field_validator

from tandemlm.flows.state import FlowState, lookup, write
from tandemlm.nodes import structured
from tandemlm.nodes.base import Node, NodeCall
from tandemlm.nodes.models.call import call_model
from tandemlm.nodes.template import fields
from tandemlm.telemetry.hops import hop_inputs


def answer_update(text: str, model: str | None) -> dict[str, Any]:
    """State update that makes ``text`` the final answer, credited to ``model``."""
    update: dict[str, Any] = {"answer": text, "messages": [AIMessage(content=text)]}
    if model:
        update["answered_by"] = model
    return update


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

    def reads(self) -> set[str]:
        return fields(self.prompt) | fields(self.system or "") | ({"messages"} if self.history else set())

    def writes(self) -> set[str]:
        return {self.output}

    def messages(self, state: FlowState) -> list[BaseMessage]:
        """The chat messages this node sends for ``state``."""
        from tandemlm.nodes.template import render

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

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.max_tokens:
            options["max_tokens"] = self.max_tokens
        reply = await call_model(
            call,
            self.model,
            self.messages(state),
            logprobs=self.logprobs,
            sources=hop_inputs(state, self.reads()),
            **options,
        )
        update: dict[str, Any] = {**reply.usage(), "meta": {self.output: reply.meta()}}
        value: Any = reply.text
        if self.schema_:
            try:
                value = structured.parse(reply.text, self.schema_)
            except ValueError as exc:
                value = {}
                update["errors"] = [
                    {"node": call.name, "error": f"structured output: {exc}", "recovered": True}
                ]
        if self.output == "answer":
            update.update(answer_update(str(value), self.model))
        else:
            update.update(write(self.output, value))
        update["steps"] = [{"node": call.name, "model": self.model, "output": self.output}]
        return update


class Accept(Node):
    """Make an earlier output (e.g. the SLM's ``draft``) the final answer.

    Args:
        field: the state field holding the text to accept.
    """

    type_name = "accept"

    field: str = "draft"

    def reads(self) -> set[str]:
        return {self.field}

    def writes(self) -> set[str]:
        return {"answer"}

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        text = lookup(state, self.field)
        model = ((state.get("meta") or {}).get(self.field) or {}).get("model")
        update = answer_update("" if text is None else str(text), model)
        update["steps"] = [{"node": call.name, "model": model, "output": "answer"}]
        return update
