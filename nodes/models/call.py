"""One model call as nodes make it: timing, usage, cost, confidence, budget and a span."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage

from tandemlm.errors import BudgetExceededError, ModelUnavailableError
from tandemlm.nodes.models.confidence import CONFIDENCE_KEY, Confidence
from tandemlm.telemetry import attributes as A
from tandemlm.telemetry.spans import set_attributes, span

if TYPE_CHECKING:
    from tandemlm.nodes.base import NodeCall


@dataclass
class ModelReply:
    """The outcome of one model call."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cost: float
    seconds: float
    finish_reason: str | None
    confidence: Confidence | None
    message: AIMessage

    def usage(self) -> dict[str, dict[str, dict[str, float]]]:
        """Partial state update adding this call to the run's per-model usage."""
        return {
            "usage": {
                self.model: {
                    "calls": 1,
                    "input_tokens": self.input_tokens,
                    "output_tokens": self.output_tokens,
                    "cost": self.cost,
                    "seconds": self.seconds,
                }
            }
        }

    def meta(self) -> dict[str, Any]:
        """Metadata stored beside an output (model, confidence, tokens)."""
        return {
            "model": self.model,
            "confidence": self.confidence,
            "finish_reason": self.finish_reason,
            "output_tokens": self.output_tokens,
        }


def check_budget(call: NodeCall) -> None:
    """Raise :class:`BudgetExceededError` when the run has used up its budget."""
    budget = call.context.settings.budget
    counters = call.context.counters
    if budget is None:
        return
    if budget.max_tokens is not None and counters.tokens >= budget.max_tokens:
        raise BudgetExceededError(
            f"run used {counters.tokens} tokens, budget max_tokens={budget.max_tokens}"
        )
    if budget.max_cost is not None and counters.cost >= budget.max_cost:
        raise BudgetExceededError(
            f"run cost {counters.cost:.6f}, budget max_cost={budget.max_cost}"
        )


async def call_model(
    call: NodeCall,
    model: str,
    messages: list[BaseMessage],
    *,
    logprobs: bool = False,
    **kwargs: Any,
) -> ModelReply:
    """Call the flow model ``model`` with ``messages`` on behalf of node ``call.name``.

    Args:
        call: the calling node's name and run context.
        model: model name from the flow spec.
        messages: chat messages to send.
        logprobs: ask the provider for token-probability confidence.
        **kwargs: per-call provider options (e.g. ``max_tokens``).

    Raises:
        ModelUnavailableError: the model cannot be reached or loaded.
        BudgetExceededError: the run's budget is used up.
    """
    check_budget(call)
    pool = call.context.models
    spec = pool.spec(model)
    chat = pool.get(model)
    attrs = {
        A.GEN_AI_OPERATION: "chat",
        A.GEN_AI_PROVIDER: spec.provider,
        A.GEN_AI_REQUEST_MODEL: spec.model or model,
        A.GEN_AI_TEMPERATURE: spec.params.temperature,
        A.GEN_AI_MAX_TOKENS: kwargs.get("max_tokens", spec.params.max_tokens),
        A.MODEL: model,
        A.MODEL_LOCAL: spec.local,
        A.NODE: call.name,
    }
    options = dict(kwargs)
    if logprobs:
        options["logprobs"] = True
    with span(f"chat {spec.model or model}", attrs) as current:
        start = time.perf_counter()
        try:
            message = await chat.ainvoke(messages, **options)
        except ModelUnavailableError:
            raise
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise ModelUnavailableError(f"model '{model}' failed: {exc}") from exc
        seconds = time.perf_counter() - start
        if not isinstance(message, AIMessage):  # a plain Runnable returned something else
            message = AIMessage(content=str(getattr(message, "content", message)))
        usage = message.usage_metadata or {}
        in_tok = int(usage.get("input_tokens", 0))
        out_tok = int(usage.get("output_tokens", 0))
        meta = message.response_metadata or {}
        finish = meta.get("finish_reason") or meta.get("done_reason")
        confidence = meta.get(CONFIDENCE_KEY)
        cost = spec.cost(in_tok, out_tok)
        call.context.counters.add(tokens=in_tok + out_tok, cost=cost)
        set_attributes(
            current,
            {
                A.GEN_AI_INPUT_TOKENS: in_tok,
                A.GEN_AI_OUTPUT_TOKENS: out_tok,
                A.GEN_AI_FINISH_REASONS: [str(finish)] if finish else None,
                A.COST: cost,
                A.CONFIDENCE_MEAN: confidence["mean_prob"] if confidence else None,
                A.CONFIDENCE_MIN: confidence["min_prob"] if confidence else None,
            },
        )
    return ModelReply(
        text=_text(message),
        model=model,
        input_tokens=in_tok,
        output_tokens=out_tok,
        cost=cost,
        seconds=seconds,
        finish_reason=str(finish) if finish else None,
        confidence=confidence,
        message=message,
    )


def _text(message: AIMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content.strip()
    parts = [p if isinstance(p, str) else str(p.get("text", "")) for p in content]
    return "".join(parts).strip()
