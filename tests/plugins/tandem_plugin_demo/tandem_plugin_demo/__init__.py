"""A third-party tandemlm plugin: one node, one router and one model provider.

Registered only through entry points (see ``pyproject.toml``), never imported by tandemlm
by module path: flows name them ``demo_word_count``, ``demo_word_budget`` and
``demo_echo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import BaseModel, ConfigDict, Field

from tandemlm.core.node import Node, NodeCall, Port
from tandemlm.core.state import lookup
from tandemlm.models.providers import Provider
from tandemlm.models.spec import ModelSpec
from tandemlm.nodes.routers.base import Router, RouteScore


class WordCount(Node):
    """Count the words of ``field`` into ``output`` (calls no model)."""

    type_name = "demo_word_count"

    field: str = "input"
    output: str = "words"

    def inputs(self) -> dict[str, Any]:
        return {self.field: str}

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(int, doc="number of words")}

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> dict[str, Any]:
        return {self.output: len(str(state.get(self.field) or "").split())}


class WordBudgetRouter(Router):
    """Score 1 (large model) when the word count in ``field`` exceeds ``max_words``."""

    type_name = "demo_word_budget"

    field: str = "words"
    max_words: int = Field(8, ge=1)

    def reads(self) -> set[str]:
        return {self.field}

    async def score(self, state: Any, call: NodeCall) -> RouteScore:
        words = int(lookup(state, self.field) or 0)
        over = words > self.max_words
        return RouteScore(1.0 if over else 0.0, f"{words} words vs budget {self.max_words}")


class EchoOptions(BaseModel):
    """Settings of ``demo_echo`` models (``options:`` in the model spec)."""

    model_config = ConfigDict(extra="forbid")

    prefix: str = ""
    upper: bool = False


class EchoChatModel(BaseChatModel):
    """Stands in for a hosted chat API: echoes the last user message with a prefix."""

    model_name: str = "echo"
    prefix: str = ""
    upper: bool = False

    @property
    def _llm_type(self) -> str:
        return "demo_echo"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        text = str(messages[-1].content)
        reply = self.prefix + (text.upper() if self.upper else text)
        message = AIMessage(
            content=reply,
            usage_metadata={
                "input_tokens": sum(len(str(m.content).split()) for m in messages),
                "output_tokens": len(reply.split()),
                "total_tokens": 0,
            },
            response_metadata={"finish_reason": "stop", "model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


class EchoProvider(Provider):
    """``provider: demo_echo``: a remote-style model (not local unless the spec says so)."""

    local = False
    options_model = EchoOptions

    def check(self, spec: ModelSpec) -> None:
        if not spec.model:
            raise ValueError("provider 'demo_echo' needs 'model'")
        super().check(spec)

    def build(self, spec: ModelSpec) -> BaseChatModel:
        options = self.parse_options(spec)
        assert isinstance(options, EchoOptions)
        return EchoChatModel(model_name=spec.model or "echo", prefix=options.prefix, upper=options.upper)
