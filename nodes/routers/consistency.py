"""``consistency`` router: escalate when the SLM's samples disagree (score = 1 - agreement)."""

from __future__ import annotations

from typing import Any

from tandemlm.core.node import NodeCall
from tandemlm.core.state import FlowState, lookup
from tandemlm.nodes.routers.base import Router, RouteScore


class ConsistencyRouter(Router):
    """Score = 1 - the share of samples that gave the majority answer.

    Reads the agreement record a ``consistency`` node wrote (``field``, default
    ``consistency``); that node also wrote the majority answer, which the ``small`` branch
    accepts. With 3 samples and ``threshold: 0.5`` the large model answers when no two
    samples agree; with ``threshold: 0.3`` whenever one sample disagrees. No model call.

    Args:
        field: the agreement record (a ``consistency`` node's ``score_output``).
    """

    type_name = "consistency"

    field: str = "consistency"

    def reads(self) -> set[str]:
        return {self.field}

    def evaluate(self, record: Any) -> RouteScore:
        """Score an agreement record directly."""
        if not isinstance(record, dict) or "agreement" not in record:
            return RouteScore(1.0, f"no agreement record in '{self.field}'")
        agreement = float(record["agreement"])
        samples = int(record.get("samples") or 0)
        score = min(1.0, max(0.0, 1.0 - agreement))
        agreeing = round(agreement * samples)
        verdict = "needs the large model" if self.choose(score) == "large" else "consistent"
        answer = record.get("answer")
        early = " (stopped early)" if record.get("early_stop") else ""
        return RouteScore(
            score,
            f"{agreeing} of {samples} samples agree on {answer!r}{early} -> score {score:.3f} "
            f"vs threshold {self.threshold:.3f}: {verdict}",
            {"samples": samples, "agreement": agreement, "votes": record.get("votes", {})},
        )

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        return self.evaluate(lookup(state, self.field))
