"""``verifier`` router: another model checks the draft against the question."""

from __future__ import annotations

from pydantic import Field

from tandemlm.flows.state import FlowState
from tandemlm.nodes.base import NodeCall
from tandemlm.nodes.routers._yesno import ask_yes_no
from tandemlm.nodes.routers.base import Router, RouteScore

SYSTEM = (
    "You are a strict verifier. Check the answer against the question step by step in your "
    "head, then reply with one word: Yes if it is correct, No otherwise."
)
PROMPT = "Question: {input}\n\nAnswer to verify: {%s}\n\nIs this answer correct? Yes or No."


class VerifierRouter(Router):
    """A verifier model (not the drafter) says whether ``field`` answers the question.

    Score ``1 - P(yes)`` from the verifier's first-token probability (parsed Yes/No when
    the provider gives no probabilities).

    Args:
        model: the verifier model (e.g. a mid-size local model or the LLM itself).
        field: the draft to verify.
    """

    type_name = "verifier"

    model: str = "verifier"
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
            f"verifier {self.model}: P(correct)={yes:.3f} -> score {score:.3f} "
            f"vs threshold {self.threshold:.3f}",
            {"p_yes": round(yes, 6), "verdict": reply.text[:16], "judge": self.model},
        )
