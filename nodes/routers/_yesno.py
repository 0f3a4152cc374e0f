"""P("yes") of a model's one-token Yes/No verdict, from token probabilities.

The model is asked a Yes/No question and generates exactly one token with ``logprobs``.
Its chosen-token probability ``p`` gives ``P(yes) = p`` when that token is "Yes" and
``1 - p`` when it is "No" (the two answers take nearly all the mass on such prompts).
Providers without token probabilities fall back to the parsed word (0 or 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import Field

from tandemlm.core.node import NodeCall
from tandemlm.models.call import ModelReply
from tandemlm.nodes.routers.base import Router, RouteScore
from tandemlm.nodes.template import render


async def ask_yes_no(
    call: NodeCall, model: str, system: str, prompt: str, state: Mapping[str, Any]
) -> tuple[float, ModelReply]:
    """Ask ``model`` the rendered Yes/No ``prompt``; return ``(P(yes), reply)``."""
    messages = [SystemMessage(content=system), HumanMessage(content=render(prompt, state))]
    reply = await call.chat(model, messages, logprobs=True, max_tokens=2)
    return p_yes(reply), reply


def p_yes(reply: ModelReply) -> float:
    """P("yes") from a reply's first-token probability (or its text without one)."""
    word = reply.text.strip().lower().lstrip("*\"' ")
    is_yes = word.startswith(("yes", "y\n")) or word == "y"
    is_no = word.startswith("no")
    probs = reply.message.response_metadata.get("token_probs") if reply.message else None
    first = float(probs[0]) if probs else None
    if first is None and reply.confidence and reply.confidence.get("tokens"):
        first = float(reply.confidence["mean_prob"])
    if is_yes:
        return first if first is not None else 1.0
    if is_no:
        return 1.0 - first if first is not None else 0.0
    return 0.5  # neither word: no evidence either way


class YesNoRouter(Router):
    """Base of routers that ask a model whether ``field`` is right: score ``1 - P(yes)``.

    Subclasses set the defaults (``model``, ``system``) and ``DEFAULT_PROMPT`` /
    ``LABEL`` (how the reason names the judge).
    """

    DEFAULT_PROMPT: ClassVar[str] = ""
    LABEL: ClassVar[str] = "{model} judged '{field}'"

    model: str = "slm"
    field: str = "draft"
    prompt: str | None = Field(None, max_length=20_000)
    system: str = Field("", max_length=4000)

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def reads(self) -> set[str]:
        return {"input", self.field}

    async def score(self, state: Mapping[str, Any], call: NodeCall) -> RouteScore:
        prompt = self.prompt or self.DEFAULT_PROMPT % self.field
        yes, reply = await ask_yes_no(call, self.model, self.system, prompt, state)
        score = 1.0 - yes
        label = self.LABEL.format(model=self.model, field=self.field)
        return RouteScore(
            score,
            f"{label}: P(yes)={yes:.3f} -> score {score:.3f} vs threshold {self.threshold:.3f}",
            {"p_yes": round(yes, 6), "verdict": reply.text[:16], "judge": self.model},
        )
