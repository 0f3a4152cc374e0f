"""``guarded`` router: a defence against suffix attacks on routers that score the prompt.

Published attacks on LLM routers append a short "confounder gadget" to the prompt (a few
words found by search) that moves the router's score: every prompt goes to the large model
(cost inflation) or hard prompts go to the small one (quality loss). The gadget sits at
the end. This router scores the prompt as given and with its last one and two segments
(sentences, or a trailing run of words after the last sentence end) removed, and takes the
median: a gadget appended as one segment is missing from two of the three variants, so it
cannot move the median on its own. The price is on clean prompts: their last sentence (often
the question itself) counts once instead of always; ``benchmarks/router_attack.py``
measures both.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from pydantic import Field, field_validator

from tandemlm.core.node import NodeCall
from tandemlm.core.state import FlowState, lookup
from tandemlm.nodes.routers.base import Router, RouteScore

_SEGMENT = re.compile(r"(?<=[.!?])\s+|\n+")
# routers whose score depends on more than the prompt text, or that record each scoring
_UNSUITED = {"guarded", "sticky", "bandit", "confidence", "self_eval", "verifier", "oracle", "flag"}


def segments(text: str) -> list[str]:
    """Sentences of ``text`` (a trailing run of words without an end mark is one more)."""
    return [part for part in _SEGMENT.split(text.strip()) if part.strip()]


def variants(text: str, drop: int = 2) -> list[str]:
    """``text`` and ``text`` without its last 1..``drop`` segments (while one remains)."""
    parts = segments(text)
    out = [text]
    for i in range(1, drop + 1):
        if len(parts) - i < 1:
            break
        out.append(" ".join(parts[:-i]))
    return out


class GuardedRouter(Router):
    """The median of ``router``'s score over the prompt and its truncations.

    Args:
        router: the inner router's spec (``{type: logistic, path: ...}``), one that scores
            only the text in ``field`` (logistic, knn, rule, random); its own threshold is
            ignored: this router's ``threshold`` applies.
        drop: the most trailing segments removed (1-4); 2 gives three variants.
        field: the routed text (must be the inner router's ``field`` too).
    """

    type_name = "guarded"

    router: dict[str, Any]
    drop: int = Field(2, ge=1, le=4)
    field: str = "input"

    @field_validator("router")
    @classmethod
    def _inner(cls, value: dict[str, Any]) -> dict[str, Any]:
        cls._build(value)
        return value

    @staticmethod
    def _build(spec: dict[str, Any]) -> Router:
        from tandemlm.flows.registry import router_type

        params = dict(spec)
        kind = str(params.pop("type", "") or "")
        if not kind or kind in _UNSUITED:
            raise ValueError(
                f"router: give an inner router that scores the prompt text only "
                f"(logistic, knn, rule, random), not {kind or 'none'!r}"
            )
        return router_type(kind, path="router.router.type").model_validate(params)

    def inner(self) -> Router:
        return self._build(self.router)

    def reads(self) -> set[str]:
        return self.inner().reads() | {self.field}

    def model_refs(self) -> dict[str, str]:
        return {f"router.{k}": v for k, v in self.inner().model_refs().items()}

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        inner = self.inner()
        text = str(lookup(state, self.field) or "")
        scored = []
        for variant in variants(text, self.drop):
            view: Any = {**state, self.field: variant}
            scored.append(float((await inner.score(view, call)).score))
        score = statistics.median(scored)
        return RouteScore(
            score,
            f"median of {len(scored)} scores (prompt, then without its last "
            f"{len(scored) - 1} segment(s)) {score:.3f} vs threshold {self.threshold:.3f}",
            {"scores": [round(s, 4) for s in scored], "full_score": round(scored[0], 4)},
        )
