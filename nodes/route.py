"""The decision node the compiler inserts for each route: score, threshold, choice, reason."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from tandemlm.core.node import Decision, Node, NodeCall, NodeResult
from tandemlm.errors import BudgetExceededError
from tandemlm.nodes.routers.base import LARGE, SMALL, Router


class RouteNode(Node):
    """Runs a router and records its decision; the conditional edge reads the choice."""

    type_name = "route"

    router: Router

    def model_refs(self) -> dict[str, str]:
        return {f"router.{k}": v for k, v in self.router.model_refs().items()}

    def inputs(self) -> dict[str, Any]:
        return dict.fromkeys(self.router.reads(), Any)

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        start = time.perf_counter()
        verdict = await self.router.score(state, call)
        score = min(1.0, max(0.0, float(verdict.score)))
        choice = self.router.choose(score)
        reason = verdict.reason
        budget = call.context.settings.budget
        recorder = call.context.recorder
        if (
            choice == LARGE
            and budget
            and budget.max_escalations is not None
            and recorder.escalations >= budget.max_escalations
        ):
            if budget.on_exceed == "error":
                raise BudgetExceededError(
                    f"route '{call.name}' would escalate beyond max_escalations="
                    f"{budget.max_escalations}"
                )
            choice, reason = SMALL, f"{reason}; budget max_escalations reached"
        details = verdict.details or None
        if choice == LARGE:
            from tandemlm.routing.load import busy_models
            from tandemlm.routing.load import reason as load_reason

            busy = busy_models()
            if busy:  # the service let this request in without a large model's slot
                choice, reason = SMALL, f"{reason}; {load_reason(busy)}"
                details = {**(details or {}), "load": {n: o.to_dict() for n, o in busy.items()}}
                call.degrade(load_reason(busy))
        if choice == LARGE:
            recorder.add(escalations=1)
        return NodeResult(decision=Decision(
            kind=self.router.type_name,
            choice=choice,
            reason=reason,
            score=round(score, 6),
            threshold=self.router.threshold,
            latency_ms=round((time.perf_counter() - start) * 1000, 3),
            details=details,
        ))
