"""``token_route``: the SLM writes; the LLM takes over the tokens the SLM is unsure of.

Uncertainty-based handoff between two embedded models sharing one vocabulary: at each
position, if the SLM's top-token probability is below ``min_prob`` (or its entropy above
``max_entropy``), the LLM writes the next ``handoff_tokens`` tokens, then the SLM resumes.
The share of LLM-written tokens is reported. Cheaper than the LLM alone when few tokens
are uncertain; on multi-step math the SLM's token confidence is a weak signal (see README).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field

from tandemlm.decoding.models import TokenModel
from tandemlm.decoding.routing import RoutedResult, RoutePolicy, token_route
from tandemlm.decoding.speculative import GenerationResult
from tandemlm.nodes.tokenlevel import ModelWork, TokenLevelNode
from tandemlm.telemetry import attributes as A

__all__ = ["TokenRoute"]


class TokenRoute(TokenLevelNode):
    """Per-token routing node.

    Args:
        slm: the model that writes by default (flow model name).
        llm: the model that writes uncertain tokens; the answer is credited to it when it
            wrote any token, else to the SLM.
        min_prob: hand off when the SLM's top-token probability is below this.
        max_entropy: hand off when the SLM's entropy (nats) is above this (None: ignore).
        handoff_tokens: tokens the LLM writes per handoff before the SLM resumes.
        prompt, system, output, max_tokens, temperature: as for ``generate``.

    Meta (``meta[output]``) and the ledger entry carry ``llm_token_share``, ``llm_tokens``,
    ``slm_tokens``, ``handoffs`` and ``tokens_per_second``. Both models get one ``chat``
    span (``tandem.tokens.role`` ``writer`` for the SLM, ``takeover`` for the LLM) whose
    output tokens are the ones it wrote, with ``tandem.tokens.handoffs`` and
    ``tandem.tokens.llm_share``.
    """

    type_name = "token_route"

    min_prob: float = Field(0.5, ge=0.0, le=1.0)
    max_entropy: float | None = Field(None, ge=0.0)
    handoff_tokens: int = Field(1, ge=1, le=256)

    def generate(self, small: TokenModel, large: TokenModel, prompt: list[int],
                 max_tokens: int, temperature: float,
                 stop: Callable[[list[int]], int | None] | None) -> GenerationResult:
        policy = RoutePolicy(min_prob=self.min_prob, max_entropy=self.max_entropy,
                             handoff_tokens=self.handoff_tokens)
        return token_route(small.decoder, large.decoder, prompt, policy=policy,
                           max_tokens=max_tokens, temperature=temperature, seed=large.seed,
                           stop=stop)

    def statistics(self, result: GenerationResult) -> dict[str, Any]:
        assert isinstance(result, RoutedResult)
        return {
            "llm_token_share": round(result.llm_token_share, 4),
            "llm_tokens": result.llm_tokens,
            "slm_tokens": result.slm_tokens,
            "handoffs": result.handoffs,
        }

    def credit(self, result: GenerationResult, small: TokenModel, large: TokenModel) -> str:
        return large.name if result.llm_tokens else small.name

    def work(self, result: GenerationResult, small: TokenModel, large: TokenModel
             ) -> list[ModelWork]:
        assert isinstance(result, RoutedResult)
        shared = {A.TOKENS_HANDOFFS: result.handoffs,
                  A.TOKENS_LLM_SHARE: round(result.llm_token_share, 4)}
        return [
            ModelWork(small, result.slm_tokens, result.slm_seconds, result.finish_reason,
                      {A.TOKENS_ROLE: "writer", A.TOKENS_WRITTEN: result.slm_tokens, **shared}),
            ModelWork(large, result.llm_tokens, result.llm_seconds, result.finish_reason,
                      {A.TOKENS_ROLE: "takeover", A.TOKENS_WRITTEN: result.llm_tokens, **shared}),
        ]
