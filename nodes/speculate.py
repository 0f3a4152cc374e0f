"""``speculate``: the SLM drafts, the LLM verifies; the answer is the LLM's own.

Speculative decoding between two embedded models sharing one vocabulary: the SLM (or
prompt lookup) proposes up to ``k`` tokens, the LLM scores them in one batched pass and
keeps the longest agreeing prefix plus one token of its own. Greedy output is exactly the
LLM's greedy output; with temperature > 0 the rejection rule keeps the LLM's distribution.
It pays off when the drafts are usually right (code, boilerplate, copied text).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from tandemlm.decoding.models import TokenModel
from tandemlm.decoding.speculative import (
    AdaptiveDraftLength,
    Drafter,
    GenerationResult,
    ModelDrafter,
    PromptLookupDrafter,
    speculative,
)
from tandemlm.nodes.tokenlevel import ModelWork, TokenLevelNode
from tandemlm.telemetry import attributes as A

__all__ = ["Speculate"]


class Speculate(TokenLevelNode):
    """Speculative decoding node.

    Args:
        slm: draft model (flow model name); unused with ``draft: prompt_lookup``.
        llm: target model; the answer is credited to it.
        draft: ``model`` (the SLM drafts) or ``prompt_lookup`` (n-grams copied from the
            prompt and the output so far; no draft model runs).
        k: starting draft length.
        k_min: smallest draft length (adaptive).
        k_max: largest draft length (adaptive).
        adaptive: grow k after fully accepted drafts, shrink it after rejections.
        draft_min_prob: stop a draft early when the SLM's top-token probability drops
            below this (0 disables).
        ngram: longest n-gram matched by prompt lookup.
        prompt, system, output, max_tokens, temperature: as for ``generate``.

    Meta (``meta[output]``) and the ledger entry carry ``tokens_drafted``,
    ``tokens_accepted``, ``acceptance_rate``, ``llm_token_share``, ``tokens_per_second``,
    ``rounds``, ``mean_draft_length`` and ``draft``. Each model that ran gets one ``chat``
    span: the drafter (``tandem.tokens.role=draft``, its output tokens are the drafted ones)
    and the verifier (``target``, the answer's tokens), both with
    ``tandem.tokens.drafted``/``accepted``/``acceptance_rate``.
    """

    type_name = "speculate"

    draft: Literal["model", "prompt_lookup"] = "model"
    k: int = Field(4, ge=1, le=32)
    k_min: int = Field(1, ge=1, le=32)
    k_max: int = Field(8, ge=1, le=32)
    adaptive: bool = True
    draft_min_prob: float = Field(0.0, ge=0.0, le=1.0)
    ngram: int = Field(3, ge=1, le=16)

    @model_validator(mode="after")
    def _lengths(self) -> Speculate:
        if not self.k_min <= self.k <= self.k_max:
            raise ValueError(f"need k_min <= k <= k_max (got {self.k_min}, {self.k}, {self.k_max})")
        return self

    def generate(self, small: TokenModel, large: TokenModel, prompt: list[int],
                 max_tokens: int, temperature: float,
                 stop: Callable[[list[int]], int | None] | None) -> GenerationResult:
        drafter: Drafter
        if self.draft == "prompt_lookup":
            drafter = PromptLookupDrafter(len(prompt), ngram_max=self.ngram)
        else:
            drafter = ModelDrafter(small.decoder, temperature=temperature,
                                   min_prob=self.draft_min_prob, seed=large.seed)
        policy = AdaptiveDraftLength(k=self.k, k_min=self.k_min, k_max=self.k_max,
                                     adaptive=self.adaptive)
        return speculative(large.decoder, drafter, prompt, max_tokens=max_tokens,
                           draft_length=policy, temperature=temperature, seed=large.seed,
                           stop=stop)

    def statistics(self, result: GenerationResult) -> dict[str, Any]:
        n = len(result.tokens)
        lengths = result.draft_lengths
        return {
            "draft": self.draft,
            "tokens_drafted": result.drafted,
            "tokens_accepted": result.accepted,
            "acceptance_rate": round(result.acceptance_rate, 4),
            "llm_token_share": round(min(result.llm_tokens, n) / n, 4) if n else 0.0,
            "rounds": result.rounds,
            "mean_draft_length": round(sum(lengths) / len(lengths), 3) if lengths else 0.0,
        }

    def work(self, result: GenerationResult, small: TokenModel, large: TokenModel
             ) -> list[ModelWork]:
        figures = {
            A.TOKENS_DRAFTED: result.drafted,
            A.TOKENS_ACCEPTED: result.accepted,
            A.TOKENS_ACCEPTANCE_RATE: round(result.acceptance_rate, 4),
        }
        target = ModelWork(
            large, len(result.tokens), result.target_seconds, result.finish_reason,
            {A.TOKENS_ROLE: "target", **figures, A.TOKENS_ROUNDS: result.rounds,
             A.TOKENS_WRITTEN: min(result.llm_tokens, len(result.tokens))},
        )
        if self.draft != "model":  # prompt lookup: no draft model ran
            return [target]
        draft = ModelWork(small, result.drafted, result.draft_seconds, None,
                          {A.TOKENS_ROLE: "draft", **figures})
        return [draft, target]
