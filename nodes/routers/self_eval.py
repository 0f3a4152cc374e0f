"""``self_eval`` router: the SLM rates its own draft; score = 1 - P("yes")."""

from __future__ import annotations

from pydantic import Field

from tandemlm.flows.state import FlowState
from tandemlm.nodes.base import NodeCall
from tandemlm.nodes.routers._yesno import ask_yes_no
from tandemlm.nodes.routers.base import Router, RouteScore

SYSTEM = "You check answers. Reply with one word: Yes or No."
PROMPT = (
    "Question: {input}\n\nProposed answer: {%s}\n\n"
    "Is the proposed answer correct and complete? Answer Yes or No."
)


class SelfEvalRouter(Router):
    """The model that wrote ``field`` judges it; P("yes") comes from token probabilities.

    One extra, one-token call to ``model``. Score ``1 - P(yes)``: with ``threshold: 0.5``
    the large model is called when the SLM thinks its draft is more likely wrong than right.

    Args:
        model: the judging model (normally the SLM that drafted).
        field: the draft to judge.
        prompt: Yes/No question template (``{input}``, ``{<field>}``).
    """

    type_name = "self_eval"

    model: str = "slm"
    field: str = "draft"
    prompt: str | None = Field(None, max_length=20_000)
    system: str = Field(SYSTEM, max_length=4000)

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def reads(self) -> set[str]:
        return {"input", self.field}

    async def score(self, state: FlowState, call: NodeCall) -> RouteScore:
        prompt = self.prompt or PROMPT % self.field
        yes, reply = await ask_yes_no(call, self.model, self.system, prompt, state)
        score = 1.0 - yes
        return RouteScore(
            score,
            f"{self.model} judged '{self.field}': P(yes)={yes:.3f} -> score {score:.3f} "
            f"vs threshold {self.threshold:.3f}",
            {"p_yes": round(yes, 6), "verdict": reply.text[:16], "judge": self.model},
        )
