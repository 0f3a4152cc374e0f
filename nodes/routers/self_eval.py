"""``self_eval`` router: the SLM rates its own draft; score = 1 - P("yes")."""

from __future__ import annotations

from pydantic import Field

from tandemlm.nodes.routers._yesno import YesNoRouter

SYSTEM = "You check answers. Reply with one word: Yes or No."
PROMPT = (
    "Question: {input}\n\nProposed answer: {%s}\n\n"
    "Is the proposed answer correct and complete? Answer Yes or No."
)


class SelfEvalRouter(YesNoRouter):
    """The model that wrote ``field`` judges it; P("yes") comes from token probabilities.

    One extra, one-token call to ``model``. Score ``1 - P(yes)``: with ``threshold: 0.5``
    the large model is called when the SLM thinks its draft is more likely wrong than right.

    Args:
        model: the judging model (normally the SLM that drafted).
        field: the draft to judge.
        prompt: Yes/No question template (``{input}``, ``{<field>}``).
    """

    type_name = "self_eval"
    DEFAULT_PROMPT = PROMPT

    model: str = "slm"
    system: str = Field(SYSTEM, max_length=4000)
