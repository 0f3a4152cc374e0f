"""Per-token routing: the small model writes, the large model takes over uncertain tokens.

At every position the SLM computes its next-token distribution. When its top-token
probability is below ``min_prob`` (or its entropy above ``max_entropy``), the LLM chooses
that token and the next ``handoff_tokens - 1`` ones, then the SLM resumes. Both KV caches
hold prefixes of the committed sequence; each model catches up on the tokens the other
wrote in one batched pass when it is next asked, so nothing is evaluated twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tandemlm.decoding.decoder import Decoder
from tandemlm.decoding.sampling import choose, uncertainty
from tandemlm.decoding.speculative import GenerationResult, StopCheck, _finish

__all__ = ["RoutePolicy", "RoutedResult", "token_route"]


@dataclass(frozen=True)
class RoutePolicy:
    """When the SLM hands a token to the LLM.

    Args:
        min_prob: hand off when the SLM's top-token probability is below this (0: never).
        max_entropy: hand off when the SLM's entropy (nats) is above this (None: ignore).
        handoff_tokens: tokens the LLM writes per handoff.
    """

    min_prob: float = 0.5
    max_entropy: float | None = None
    handoff_tokens: int = 1

    def hand_off(self, logits: np.ndarray) -> bool:
        """Whether the SLM is too unsure of this next token."""
        u = uncertainty(logits)
        if u.top_prob < self.min_prob:
            return True
        return self.max_entropy is not None and u.entropy > self.max_entropy


@dataclass
class RoutedResult(GenerationResult):
    """A routed generation: which output tokens the LLM wrote."""

    handoffs: int = 0
    slm_tokens: int = 0
    slm_seconds: float = 0.0
    llm_seconds: float = 0.0
    from_llm: list[bool] = field(default_factory=list)

    @property
    def llm_token_share(self) -> float:
        return self.llm_tokens / len(self.tokens) if self.tokens else 0.0


def token_route(
    slm: Decoder,
    llm: Decoder,
    prompt: list[int],
    *,
    policy: RoutePolicy,
    max_tokens: int,
    temperature: float = 0.0,
    seed: int | None = 0,
    stop: StopCheck | None = None,
) -> RoutedResult:
    """Generate with the SLM, handing uncertain tokens to the LLM (see module docs)."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    slm.reset()
    llm.reset()
    slm_t0, llm_t0 = slm.timer.seconds, llm.timer.seconds
    seq = list(prompt)
    out: list[int] = []
    result = RoutedResult(tokens=out, finish_reason="length", prompt_tokens=len(prompt),
                          seconds=0.0)
    finish: str | None = None
    while finish is None:
        logits = slm.feed(seq[slm.n_past :])
        if not policy.hand_off(logits):
            token, _ = choose(logits, temperature, rng)
            result.slm_tokens += 1
            result.from_llm.append(False)
            seq.append(token)
            finish = _finish(out, [token], slm.is_eog, max_tokens, stop)
            continue
        result.handoffs += 1
        for _ in range(policy.handoff_tokens):
            token, _ = choose(llm.feed(seq[llm.n_past :]), temperature, rng)
            result.llm_tokens += 1
            result.from_llm.append(True)
            seq.append(token)
            finish = _finish(out, [token], llm.is_eog, max_tokens, stop)
            if finish is not None:
                break
    del result.from_llm[len(out) :]  # a final end token is not part of the output
    result.llm_tokens = sum(result.from_llm)
    result.slm_tokens = len(out) - result.llm_tokens
    result.finish_reason = finish
    result.slm_seconds = slm.timer.seconds - slm_t0
    result.llm_seconds = llm.timer.seconds - llm_t0
    result.seconds = time.perf_counter() - start
    return result
