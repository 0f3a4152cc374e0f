"""``verifier`` router: another model checks the draft against the question."""

from __future__ import annotations

from pydantic import Field

from tandemlm.nodes.routers._yesno import YesNoRouter

SYSTEM = (
    "You are a strict verifier. Check the answer against the question step by step in your "
    "head, then reply with one word: Yes if it is correct, No otherwise."
)
PROMPT = "Question: {input}\n\nAnswer to verify: {%s}\n\nIs this answer correct? Yes or No."


class VerifierRouter(YesNoRouter):
    """A verifier model (not the drafter) says whether ``field`` answers the question.

    Score ``1 - P(yes)`` from the verifier's first-token probability (parsed Yes/No when
    the provider gives no probabilities).

    Args:
        model: the verifier model (e.g. a mid-size local model or the LLM itself).
        field: the draft to verify.
    """

    type_name = "verifier"
    DEFAULT_PROMPT = PROMPT
    LABEL = "verifier {model}"

    model: str = "verifier"
    system: str = Field(SYSTEM, max_length=4000)
