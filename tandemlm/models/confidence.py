"""Token-level confidence summaries shared by every provider.

Providers that can see token probabilities (embedded llama.cpp, Ollama with ``logprobs``)
attach a summary to ``AIMessage.response_metadata["confidence"]`` in this one format, so
routers read it without knowing which provider produced it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

CONFIDENCE_KEY = "confidence"


class Confidence(TypedDict):
    """Summary of the per-token probabilities of one generated answer."""

    mean_prob: float  # mean probability of the chosen tokens
    min_prob: float  # lowest chosen-token probability
    mean_entropy: float  # mean entropy (nats) of the next-token distributions; 0 when unknown
    tokens: int  # number of generated tokens the summary covers


def summarize(chosen_probs: Sequence[float], entropies: Sequence[float] | None = None) -> Confidence:
    """Summarise chosen-token probabilities (and optional entropies) of one answer.

    Args:
        chosen_probs: probability of each generated token, in order.
        entropies: entropy of each step's distribution, when the provider knows it.

    Returns:
        A :class:`Confidence`; an empty answer counts as fully uncertain (probabilities 0).
    """
    probs = [min(1.0, max(0.0, float(p))) for p in chosen_probs]
    if not probs:
        return Confidence(mean_prob=0.0, min_prob=0.0, mean_entropy=0.0, tokens=0)
    ents = [float(e) for e in entropies] if entropies else []
    return Confidence(
        mean_prob=sum(probs) / len(probs),
        min_prob=min(probs),
        mean_entropy=sum(ents) / len(ents) if ents else 0.0,
        tokens=len(probs),
    )


def summarize_logprobs(logprobs: Sequence[float], entropies: Sequence[float] | None = None) -> Confidence:
    """Like :func:`summarize` but from natural-log probabilities (as Ollama and OpenAI report)."""
    return summarize([math.exp(lp) for lp in logprobs], entropies)
