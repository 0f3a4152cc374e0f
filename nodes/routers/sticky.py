"""``sticky`` router: hysteresis around another router, so conversations do not flap.

In a multi-turn thread (a checkpointer plus ``thread_id``) the route's previous decision
is still in the state when the next turn reaches the route. Once a conversation went to
the large model it stays there until the inner score falls below ``threshold - margin``;
a conversation on the small model moves up only at ``threshold + margin``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from tandemlm.core.node import NodeCall
from tandemlm.core.state import FlowState
from tandemlm.nodes.routers.base import LARGE, SMALL, Router, RouteScore


class StickyRouter(Router):
    """Wrap ``router`` with hysteresis of width ``margin`` around ``threshold``.

    Args:
        router: the inner router's spec (``{type: confidence, ...}``); its own threshold is
            ignored: the sticky router's ``threshold`` applies.
        margin: half-width of the dead band.
    """

    type_name = "sticky"

    router: dict[str, Any]
    margin: float = Field(0.15, ge=0.0, le=0.5)

    @field_validator("router")
    @classmethod
    def _inner(cls, value: dict[str, Any]) -> dict[str, Any]:
        cls._build(value)
        return value

    @staticmethod
    def _build(spec: dict[str, Any]) -> Router:
        from tandemlm.flows.registry import router_type

        params = dict(spec)
        kind = params.pop("type", None)
        if not kind or kind == "sticky":
            raise ValueError("router: give the inner router's type (not 'sticky')")
        return router_type(str(kind), path="router.router.type").model_validate(params)

    def inner(self) -> Router:
        return self._build(self.router)

    def reads(self) -> set[str]:
        return self.inner().reads()

    def model_refs(self) -> dict[str, str]:
        return {f"router.{k}": v for k, v in self.inner().model_refs().items()}

    def adjust(self, score: float, previous: str | None) -> tuple[float, str]:
        """The effective score given the previous turn's choice, and why."""
        t = self.threshold
        if previous == LARGE and score >= t - self.margin and score < t:
            return t, f"stays large (score {score:.3f} >= {t - self.margin:.3f})"
        if previous == SMALL and t <= score < t + self.margin:
            return max(0.0, t - 1e-9), f"stays small (score {score:.3f} < {t + self.margin:.3f})"
        return score, "no hysteresis applied" if previous else "first turn"

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        inner = await self.inner().score(state, call)
        before = (state.get("choices") or {}).get(call.name)
        effective, why = self.adjust(float(inner.score), before)
        return RouteScore(
            effective,
            f"{inner.reason}; sticky: previous turn {before or 'none'}, {why}",
            {**inner.details, "inner_score": round(float(inner.score), 6), "previous": before},
        )
