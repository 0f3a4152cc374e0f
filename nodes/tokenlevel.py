"""What ``speculate`` and ``token_route`` share: prompt, models, usage and statistics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import Field

from tandemlm.core.state import FlowState, write
from tandemlm.core.node import Node, NodeCall
from tandemlm.nodes.generate import answer_update
from tandemlm.models.call import check_budget
from tandemlm.nodes.template import fields, render
from tandemlm.decoding.models import TokenModel, check_pair, load_pair, locked

if TYPE_CHECKING:
    from tandemlm.flows.spec import FlowSpec
    from tandemlm.decoding.speculative import GenerationResult

__all__ = ["TokenLevelNode"]


class TokenLevelNode(Node):
    """Base of nodes where a small and a large model write one answer together.

    Args:
        slm: the small model (flow model name; embedded, same vocabulary as ``llm``).
        llm: the large model.
        prompt: template over state fields.
        system: optional system prompt (template).
        output: state field to write (``answer`` makes it the final answer).
        max_tokens: output cap (default: the LLM's ``max_tokens``).
        temperature: sampling temperature (default: the LLM's; 0 is greedy).
    """

    slm: str = "slm"
    llm: str = "llm"
    prompt: str = Field("{input}", max_length=100_000)
    system: str | None = Field(None, max_length=100_000)
    output: str = "answer"
    max_tokens: int | None = Field(None, ge=1, le=32768)
    temperature: float | None = Field(None, ge=0.0, le=2.0)

    def model_refs(self) -> dict[str, str]:
        return {"slm": self.slm, "llm": self.llm}

    def validate_models(self, spec: FlowSpec) -> None:
        """Compile-time check: both models embedded, one vocabulary (see ``check_pair``)."""
        check_pair(spec, self.model_refs())

    def reads(self) -> set[str]:
        return fields(self.prompt) | fields(self.system or "")

    def writes(self) -> set[str]:
        return {self.output}

    def chat_messages(self, state: FlowState) -> list[dict[str, str]]:
        """The chat turns sent to the models (rendered templates)."""
        out: list[BaseMessage] = []
        if self.system:
            out.append(SystemMessage(content=render(self.system, state)))
        out.append(HumanMessage(content=render(self.prompt, state)))
        role = {"system": "system", "human": "user"}
        return [{"role": role[m.type], "content": str(m.content)} for m in out]

    def generate(self, small: TokenModel, large: TokenModel, prompt: list[int],
                 max_tokens: int, temperature: float,
                 stop: Callable[[list[int]], int | None] | None) -> GenerationResult:
        """Run the token-level generation (models locked by the caller)."""
        raise NotImplementedError

    def statistics(self, result: GenerationResult) -> dict[str, Any]:
        """Node-specific figures for meta and steps."""
        raise NotImplementedError

    def usage_split(self, result: GenerationResult) -> tuple[int, float, int, float]:
        """(slm output tokens, slm seconds, llm output tokens, llm seconds)."""
        raise NotImplementedError

    def uses_slm(self) -> bool:
        """Whether the SLM runs (its usage is recorded only then)."""
        return True

    def credit(self, result: GenerationResult, small: TokenModel, large: TokenModel) -> str:
        """The flow model the answer is credited to (default: the LLM)."""
        return large.name

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        check_budget(call)
        small, large = await asyncio.to_thread(load_pair, call.context, self.slm, self.llm)
        messages = self.chat_messages(state)
        max_tokens = self.max_tokens or large.max_tokens
        temperature = large.temperature if self.temperature is None else self.temperature

        def work() -> tuple[GenerationResult, str]:
            from tandemlm.decoding.decoder import chat_prompt_tokens

            with locked(small, large):
                prompt = chat_prompt_tokens(large.decoder.llama, messages)
                stops = large.stop
                check = _stop_check(large, prompt, stops) if stops else None
                result = self.generate(small, large, prompt, max_tokens, temperature, check)
                text = large.decoder.detokenize(result.tokens, prompt)
            for s in stops:
                if s in text:
                    text = text[: text.index(s)]
            return result, text.strip()

        result, text = await asyncio.to_thread(work)
        return self._update(call, small, large, result, text)

    def _update(self, call: NodeCall, small: TokenModel, large: TokenModel,
                result: GenerationResult, text: str) -> dict[str, Any]:
        slm_out, slm_seconds, llm_out, llm_seconds = self.usage_split(result)
        pool = call.context.models
        usage: dict[str, dict[str, float]] = {}
        pairs = [(small, slm_out, slm_seconds)] if self.uses_slm() else []
        for model, out_tokens, seconds in [*pairs, (large, llm_out, llm_seconds)]:
            cost = pool.spec(model.name).cost(result.prompt_tokens, out_tokens)
            call.context.counters.add(tokens=result.prompt_tokens + out_tokens, cost=cost)
            usage[model.name] = {
                "calls": 1, "input_tokens": result.prompt_tokens, "output_tokens": out_tokens,
                "cost": cost, "seconds": seconds,
            }
        stats = {
            "output_tokens": len(result.tokens),
            "tokens_per_second": round(result.tokens_per_second, 3),
            "seconds": round(result.seconds, 4),
            **self.statistics(result),
        }
        credited = self.credit(result, small, large)
        meta = {"model": credited, "confidence": None, "finish_reason": result.finish_reason,
                **stats}
        update: dict[str, Any] = {"usage": usage, "meta": {self.output: meta}}
        if self.output == "answer":
            update.update(answer_update(text, credited))
        else:
            update.update(write(self.output, text))
        update["steps"] = [{"node": call.name, "model": credited, "output": self.output,
                            "models": [small.name, large.name], **stats}]
        return update


def _stop_check(model: TokenModel, prompt: list[int], stops: list[str]
                ) -> Callable[[list[int]], int | None]:
    """A stop check for the engines: the token count to cut the output to, or None."""

    def check(out: list[int]) -> int | None:
        text = model.decoder.detokenize(out, prompt)
        hits = [text.index(s) for s in stops if s in text]
        if not hits:
            return None
        cut, keep = min(hits), 0
        while keep < len(out) and len(model.decoder.detokenize(out[: keep + 1], prompt)) <= cut:
            keep += 1
        return keep

    return check
