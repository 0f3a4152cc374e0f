"""Node types tests register: work reported outside ``call.chat``, as token-level engines do."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tandemlm.core.node import Node, NodeCall, Port


def token_level_node(type_name: str, output: str, *, input_tokens: int, output_tokens: int,
                     text: str = "drafted", attributes: Mapping[str, Any] | None = None) -> type[Node]:
    """A node type that reports one model use with ``record_model_use`` (the token-level
    engines' path) and writes ``text`` to ``output``; ``attributes`` go on its chat span."""
    extra = {"attributes": dict(attributes)} if attributes else {}

    class TokenLevel(Node):
        model: str

        def model_refs(self) -> dict[str, str]:
            return {"model": self.model}

        def inputs(self) -> dict[str, Any]:
            return {"input": str}

        def outputs(self) -> dict[str, Port]:
            return {output: Port(str)}

        async def run(self, state: Any, call: NodeCall) -> dict[str, Any]:
            call.record_model_use(self.model, input_tokens=input_tokens, output_tokens=output_tokens,
                                  seconds=0.01, **extra)
            return {output: text}

    TokenLevel.type_name = type_name
    TokenLevel.__name__ = TokenLevel.__qualname__ = f"TokenLevel_{type_name}"
    return TokenLevel
