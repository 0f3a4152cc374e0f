"""``pass``: a node that does nothing; a place to hang a route on (route before any model)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tandemlm.core.node import Node, NodeCall


class Passthrough(Node):
    """No-op node, e.g. the entry of the ``route`` preset, whose router reads the input."""

    type_name = "pass"

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> dict[str, Any]:
        return {}
