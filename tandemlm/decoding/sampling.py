"""Token choice from logits, and the speculative-sampling acceptance rule.

The rule (Leviathan et al. 2023; Chen et al. 2023): a token ``x`` proposed from the draft
distribution ``q`` is accepted with probability ``min(1, p(x) / q(x))`` under the target
distribution ``p``; on rejection a replacement is drawn from ``norm(max(p - q, 0))``.
Whatever ``q`` is, the emitted token is then distributed exactly as ``p``. A deterministic
proposal (prompt lookup, or a greedy drafter) is the one-hot ``q``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Uncertainty",
    "accept_or_resample",
    "choose",
    "distribution",
    "uncertainty",
]


def distribution(logits: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of ``logits / temperature`` as float64 (``temperature`` > 0)."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max()
    weights = np.exp(np.maximum(scaled, -700.0))
    return weights / weights.sum()  # type: ignore[no-any-return]


def choose(logits: np.ndarray, temperature: float, rng: np.random.Generator) -> tuple[int, np.ndarray | None]:
    """Pick the next token: argmax at temperature 0, else a sample.

    Returns:
        ``(token, distribution)``; the distribution is None for greedy choice.
    """
    if temperature <= 0.0:
        return int(np.argmax(logits)), None
    probs = distribution(logits, temperature)
    return _sample(probs, rng), probs


def _sample(probs: np.ndarray, rng: np.random.Generator) -> int:
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
    return min(index, len(probs) - 1)


def accept_or_resample(
    target: np.ndarray, draft: np.ndarray | None, token: int, rng: np.random.Generator
) -> tuple[bool, int]:
    """Apply the speculative-sampling rule to one drafted token.

    Args:
        target: the target model's distribution ``p`` at this position.
        draft: the draft distribution ``q`` the token was drawn from; None means a
            deterministic proposal (``q`` is one-hot on ``token``).
        token: the drafted token.
        rng: random source.

    Returns:
        ``(accepted, token)``: the drafted token when accepted, else a token drawn from the
        residual ``norm(max(p - q, 0))``.
    """
    q_token = 1.0 if draft is None else float(draft[token])
    p_token = float(target[token])
    if q_token > 0.0 and rng.random() < min(1.0, p_token / q_token):
        return True, token
    if draft is None:
        residual = target.copy()
        residual[token] = 0.0
    else:
        residual = np.maximum(target - draft, 0.0)
    total = residual.sum()
    if total <= 0.0:  # p == q: rejection has probability 0; guard against rounding
        return True, token
    return False, _sample(residual / total, rng)


@dataclass(frozen=True)
class Uncertainty:
    """How unsure a model is about its next token."""

    top_prob: float
    entropy: float  # nats


def uncertainty(logits: np.ndarray) -> Uncertainty:
    """Top-token probability and entropy of the softmax of ``logits`` (temperature 1)."""
    values = np.asarray(logits, dtype=np.float32)
    shifted = values - values.max()
    weights = np.exp(np.maximum(shifted, -80.0))
    total = float(weights.sum())
    entropy = math.log(total) - float(weights @ shifted) / total
    return Uncertainty(top_prob=1.0 / total, entropy=max(entropy, 0.0))
