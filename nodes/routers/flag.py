"""``flag`` router: a boolean or a score already in the state decides (no model call)."""

from __future__ import annotations

from typing import Any

from tandemlm.core.node import NodeCall
from tandemlm.core.state import FlowState, lookup
from tandemlm.nodes.routers.base import Router, RouteScore


class FlagRouter(Router):
    """Score from a state field: ``true`` -> 1, ``false``/missing -> 0, a number as is.

    Loops use it: ``verify`` writes ``verification.retry`` and the route sends the flow back
    to the large model while it is true (``branches: {large: answer, small: end}``).

    Args:
        field: field to read; dotted paths reach into dicts (``verification.retry``).
        invert: use ``1 - value`` (e.g. route on ``verification.verified``).
    """

    type_name = "flag"

    field: str
    invert: bool = False

    def reads(self) -> set[str]:
        return {self.field.split(".", 1)[0]}

    def value(self, state: FlowState) -> Any:
        head, *rest = self.field.split(".")
        value: Any = lookup(state, head)
        for key in rest:
            value = value.get(key) if isinstance(value, dict) else None
        return value

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        value = self.value(state)
        if isinstance(value, bool) or value is None:
            score = 1.0 if value else 0.0
        else:
            try:
                score = min(1.0, max(0.0, float(value)))
            except (TypeError, ValueError):
                score = 1.0 if value else 0.0
        if self.invert:
            score = 1.0 - score
        inverted = " (inverted)" if self.invert else ""
        return RouteScore(score, f"{self.field} = {value!r}{inverted}")
