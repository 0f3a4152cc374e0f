"""``oracle`` router (evaluation only): reads the known outcome of each model."""

from __future__ import annotations

from typing import Any

from tandemlm.core.node import NodeCall
from tandemlm.core.state import FlowState, lookup
from tandemlm.nodes.routers.base import Router, RouteScore


def oracle_score(weak: float, strong: float) -> float:
    """1 when only the strong model is right, 0 when only the weak one is, else 0.5."""
    return (max(-1.0, min(1.0, float(strong) - float(weak))) + 1.0) / 2.0


class OracleRouter(Router):
    """Knows, from labels passed in ``variables``, whether each model answers well.

    For offline evaluation and tests: pass ``variables={"oracle": {"weak": 0, "strong": 1}}``
    to a run. Never use it to serve users: the labels are the answers' grades.

    Args:
        field: the variable holding ``{"weak": quality, "strong": quality}``.
    """

    type_name = "oracle"

    field: str = "oracle"
    threshold: float = 0.75

    def evaluate(self, label: Any) -> RouteScore:
        if not isinstance(label, dict) or "weak" not in label or "strong" not in label:
            return RouteScore(0.5, f"no oracle label in '{self.field}'")
        score = oracle_score(label["weak"], label["strong"])
        return RouteScore(score, f"oracle weak={label['weak']} strong={label['strong']}")

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        return self.evaluate(lookup(state, self.field))
