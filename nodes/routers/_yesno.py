"""P("yes") of a model's one-token Yes/No verdict, from token probabilities.

The model is asked a Yes/No question and generates exactly one token with ``logprobs``.
Its chosen-token probability ``p`` gives ``P(yes) = p`` when that token is "Yes" and
``1 - p`` when it is "No" (the two answers take nearly all the mass on such prompts).
Providers without token probabilities fall back to the parsed word (0 or 1).
"""

from __future__ import annotations

from langchain_core.messages import HumanMessage, SystemMessage

from tandemlm.flows.state import FlowState
from tandemlm.nodes.base import NodeCall
from tandemlm.nodes.models.call import ModelReply, call_model
from tandemlm.nodes.template import render


async def ask_yes_no(
    call: NodeCall, model: str, system: str, prompt: str, state: FlowState
) -> tuple[float, ModelReply]:
    """Ask ``model`` the rendered Yes/No ``prompt``; return ``(P(yes), reply)``."""
    messages = [SystemMessage(content=system), HumanMessage(content=render(prompt, state))]
    reply = await call_model(call, model, messages, logprobs=True, max_tokens=2)
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
