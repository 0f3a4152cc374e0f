"""The decision node the compiler inserts for each route: score, threshold, choice, reason."""

from __future__ import annotations

import time
from typing import Any

from tandemlm.errors import BudgetExceededError
from tandemlm.flows.state import FlowState
from tandemlm.nodes.base import Node, NodeCall
from tandemlm.nodes.routers.base import LARGE, SMALL, Router


def decision_of(state: FlowState, route: str) -> str:
    """The choice recorded by route node ``route`` (used by the conditional edge)."""
    return str(((state.get("meta") or {}).get(route) or {}).get("choice", SMALL))


class RouteNode(Node):
    """Runs a router and records its decision; the conditional edge reads the choice."""

    type_name = "route"

    router: Router

    def model_refs(self) -> dict[str, str]:
        return {f"router.{k}": v for k, v in self.router.model_refs().items()}

    def reads(self) -> set[str]:
        return self.router.reads()

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        start = time.perf_counter()
        verdict = await self.router.score(state, call)
        score = min(1.0, max(0.0, float(verdict.score)))
        choice = self.router.choose(score)
        reason = verdict.reason
        budget = call.context.settings.budget
        if (
            choice == LARGE
            and budget
            and budget.max_escalations is not None
            and call.context.counters.escalations >= budget.max_escalations
        ):
            if budget.on_exceed == "error":
                raise BudgetExceededError(
                    f"route '{call.name}' would escalate beyond max_escalations="
                    f"{budget.max_escalations}"
                )
            choice, reason = SMALL, f"{reason}; budget max_escalations reached"
        if choice == LARGE:
            call.context.counters.add(escalations=1)
        decision = {
            "router": self.router.type_name,
            "score": round(score, 6),
            "threshold": self.router.threshold,
            "choice": choice,
            "reason": reason,
            "latency_ms": round((time.perf_counter() - start) * 1000, 3),
            **({"details": verdict.details} if verdict.details else {}),
        }
        return {
            "meta": {call.name: decision},
            "steps": [{"node": call.name, "model": None, "decision": decision}],
        }
