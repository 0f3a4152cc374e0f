"""``confidence`` router: the SLM's own token probabilities, no extra model call."""

from __future__ import annotations

import math
from typing import Literal

from tandemlm.core.ledger import meta_of
from tandemlm.core.node import NodeCall
from tandemlm.core.state import FlowState
from tandemlm.models.confidence import Confidence
from tandemlm.nodes.routers.base import Router, RouteScore


class ConfidenceRouter(Router):
    """Score = 1 - confidence of the output in ``field``.

    The generating node must request ``logprobs: true``. With ``metric: mean_prob`` and
    ``threshold: 0.2`` the large model is called when mean token probability is below 0.8.

    Args:
        field: the output whose confidence is read (its ``meta`` entry).
        metric: ``mean_prob``, ``min_prob`` or ``entropy`` (score ``1 - exp(-mean entropy)``).
    """

    type_name = "confidence"

    field: str = "draft"
    metric: Literal["mean_prob", "min_prob", "entropy"] = "mean_prob"

    def reads(self) -> set[str]:
        return {self.field}

    def evaluate(self, confidence: Confidence | None) -> RouteScore:
        """Score a confidence summary directly."""
        if not confidence or not confidence.get("tokens"):
            return RouteScore(1.0, f"no token probabilities for '{self.field}'")
        if self.metric == "entropy":
            value = confidence["mean_entropy"]
            score = 1.0 - math.exp(-value)
            reason = f"mean entropy {value:.3f}"
        else:
            value = confidence[self.metric]
            score = 1.0 - value
            reason = f"{self.metric} {value:.3f}"
        verdict = "needs the large model" if self.choose(score) == "large" else "confident"
        return RouteScore(
            score,
            f"{reason} -> score {score:.3f} vs threshold {self.threshold:.3f}: {verdict}",
            {"tokens": confidence["tokens"], self.metric: value},
        )

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        return self.evaluate(meta_of(state, self.field).get("confidence"))
