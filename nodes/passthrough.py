"""``pass``: a node that does nothing; a place to hang a route on (route before any model)."""

from __future__ import annotations

from typing import Any

from tandemlm.core.state import FlowState
from tandemlm.core.node import Node, NodeCall


class Passthrough(Node):
    """No-op node, e.g. the entry of the ``route`` preset, whose router reads the input."""

    type_name = "pass"

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        return {"steps": [{"node": call.name, "model": None}]}
