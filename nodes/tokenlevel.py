"""What ``speculate`` and ``token_route`` share: prompt, models, the run and its report.

The engines run both models themselves, token by token, outside ``call_model``; the node
reports each model's work with :meth:`~tandemlm.core.node.NodeCall.record_model_use`, so
every model gets one ``chat`` span per execution (token usage plus ``tandem.tokens.*``
figures), metrics, usage and escalation like any other model call.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import Field

from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.decoding.models import TokenModel, check_pair, load_pair, locked
from tandemlm.models.call import check_budget
from tandemlm.nodes.template import fields, render

if TYPE_CHECKING:
    from tandemlm.decoding.speculative import GenerationResult
    from tandemlm.flows.spec import FlowSpec

__all__ = ["ModelWork", "TokenLevelNode"]


@dataclass
class ModelWork:
    """What one model did in a token-level generation (one ``chat`` span).

    Attributes:
        model: the flow model.
        output_tokens: tokens this model generated (drafted, verified or written).
        seconds: time spent in this model's forward passes.
        finish_reason: how the generation ended (for the model that ends it).
        attributes: ``tandem.tokens.*`` span attributes.
    """

    model: TokenModel
    output_tokens: int
    seconds: float
    finish_reason: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


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

    # -- declarations --------------------------------------------------------------------
    def model_refs(self) -> dict[str, str]:
        return {"slm": self.slm, "llm": self.llm}

    def inputs(self) -> dict[str, Any]:
        names = fields(self.prompt) | fields(self.system or "")
        return dict.fromkeys(sorted(names), Any)

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(str)}

    def check(self, spec: FlowSpec) -> None:
        """Both models embedded, one vocabulary (see ``check_pair``)."""
        check_pair(spec, self.model_refs())

    # -- what subclasses define ------------------------------------------------------------
    def generate(self, small: TokenModel, large: TokenModel, prompt: list[int],
                 max_tokens: int, temperature: float,
                 stop: Callable[[list[int]], int | None] | None) -> GenerationResult:
        """Run the token-level generation (models locked by the caller)."""
        raise NotImplementedError

    def statistics(self, result: GenerationResult) -> dict[str, Any]:
        """Node-specific figures for meta and the ledger entry."""
        raise NotImplementedError

    def work(self, result: GenerationResult, small: TokenModel, large: TokenModel
             ) -> list[ModelWork]:
        """What each model that ran did (one ``chat`` span each)."""
        raise NotImplementedError

    def credit(self, result: GenerationResult, small: TokenModel, large: TokenModel) -> str:
        """The flow model the answer is credited to (default: the LLM)."""
        return large.name

    # -- execution -------------------------------------------------------------------------
    def chat_messages(self, state: Mapping[str, Any]) -> list[dict[str, str]]:
        """The chat turns sent to the models (rendered templates)."""
        out: list[BaseMessage] = []
        if self.system:
            out.append(SystemMessage(content=render(self.system, state)))
        out.append(HumanMessage(content=render(self.prompt, state)))
        role = {"system": "system", "human": "user"}
        return [{"role": role[m.type], "content": str(m.content)} for m in out]

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        check_budget(call)
        small, large = await asyncio.to_thread(load_pair, call.context, self.slm, self.llm)
        messages = self.chat_messages(state)
        max_tokens = self.max_tokens or large.max_tokens
        temperature = large.temperature if self.temperature is None else self.temperature

        # a cancelled run (timeout, client gone) ends the engine's loop at the next token
        cancel = threading.Event()

        def work() -> tuple[GenerationResult, str]:
            from tandemlm.decoding.decoder import chat_prompt_tokens

            with locked(small, large):
                if cancel.is_set():
                    raise asyncio.CancelledError
                prompt = chat_prompt_tokens(large.decoder.llama, messages)
                stops = large.stop
                check = _cancellable(cancel, _stop_check(large, prompt, stops) if stops else None)
                result = self.generate(small, large, prompt, max_tokens, temperature, check)
                text = large.decoder.detokenize(result.tokens, prompt)
            for s in stops:
                if s in text:
                    text = text[: text.index(s)]
            return result, text.strip()

        started_ns = time.time_ns()
        cpu_start = time.process_time()
        try:
            result, text = await asyncio.to_thread(work)
        finally:
            cancel.set()
        cpu = time.process_time() - cpu_start  # both models' compute: shared by their time
        works = list(self.work(result, small, large))
        busy = sum(done.seconds for done in works) or 1.0
        for done in works:
            call.record_model_use(
                done.model.name, input_tokens=result.prompt_tokens,
                output_tokens=done.output_tokens, seconds=done.seconds, started_ns=started_ns,
                finish_reason=done.finish_reason, attributes=done.attributes,
                cpu_seconds=cpu * done.seconds / busy,
            )
        stats = {
            "output_tokens": len(result.tokens),
            "tokens_per_second": round(result.tokens_per_second, 3),
            "seconds": round(result.seconds, 4),
            **self.statistics(result),
        }
        return NodeResult(
            outputs={self.output: text},
            credit=self.credit(result, small, large),
            meta={self.output: {"confidence": None, "finish_reason": result.finish_reason,
                                **stats}},
            step={"models": [small.name, large.name], **stats},
        )


def _cancellable(cancel: threading.Event, check: Callable[[list[int]], int | None] | None
                 ) -> Callable[[list[int]], int | None]:
    """The engines' stop check, which also stops (keeping the output) once ``cancel`` is set."""

    def stop(out: list[int]) -> int | None:
        if cancel.is_set():
            return len(out)
        return check(out) if check is not None else None

    return stop


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
