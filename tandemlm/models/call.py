"""One model call as nodes make it: timing, usage, cost, confidence, budget and a span."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage

from tandemlm.errors import BudgetExceededError, ModelUnavailableError
from tandemlm.models.confidence import CONFIDENCE_KEY, Confidence
from tandemlm.routing.load import Overflow, busy_models
from tandemlm.telemetry import attributes as A
from tandemlm.telemetry import content, metrics
from tandemlm.telemetry.guard import safely
from tandemlm.telemetry.spans import (
    NO_SPAN,
    later,
    set_attributes,
    span,
    start_span,
    tracing_active,
)

if TYPE_CHECKING:
    from tandemlm.core.node import NodeCall
    from tandemlm.models.pool import PoolEntry


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

    def meta(self) -> dict[str, Any]:
        """Metadata stored beside an output (model, confidence, tokens)."""
        return {
            "model": self.model,
            "confidence": self.confidence,
            "finish_reason": self.finish_reason,
            "output_tokens": self.output_tokens,
        }


CPU_SECONDS_KEY = "cpu_seconds"  # response metadata: process CPU time the call used


def computes_here(chat: Any) -> bool:
    """Whether ``chat`` computes in this process (embedded llama.cpp), so the process CPU
    time a call uses is its compute (a replaying wrapper: whether the model it wraps does)."""
    inner = getattr(chat, "wrapped", chat)
    return getattr(inner, "_llm_type", None) == "llamacpp"


def _check_slot(model: str, busy: Mapping[str, Overflow]) -> None:
    """Refuse a model the service let this run go ahead without (``busy``:
    :func:`tandemlm.routing.load.busy_models`)."""
    overflow = busy.get(model)
    if overflow is not None:
        raise ModelUnavailableError(
            f"model '{model}' is busy: all {overflow.limit} slots taken after {overflow.waited:.1f} s; "
            "retry later"
        )


def check_budget(call: NodeCall) -> None:
    """Raise :class:`BudgetExceededError` when the run has used up its budget."""
    budget = call.context.settings.budget
    counters = call.context.recorder
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

    The call is budget-checked, traced (a ``chat`` span with token usage, cost, confidence
    and one ``tandem.hop`` event per earlier output the node reads) and reported to the
    node's recorder scope (usage, escalation, the reply's metadata).

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
    context = call.context
    check_budget(call)
    busy = busy_models()
    if busy:  # the service let this run go ahead without some models
        _check_slot(model, busy)
    entry = context.models.entry(model)
    spec, chat = entry.spec, entry.chat
    options = {**kwargs, "logprobs": True} if logprobs else kwargs
    traced = tracing_active()
    attrs: dict[str, Any] = {}
    if traced:  # attributes are built only when someone records them
        attrs = {**entry.chat_attributes, A.NODE: call.name, A.FLOW: context.flow}
        if "max_tokens" in kwargs:
            attrs[A.GEN_AI_MAX_TOKENS] = kwargs["max_tokens"]
    # One coroutine, no helper: the model's own awaits resume every frame above them, so
    # each extra frame here costs microseconds on every call.
    with span(f"chat {entry.request_model}", attrs) if traced else NO_SPAN as current:
        recording = current.is_recording()
        if recording:
            safely(_record_hops, call, model, spec.local, current)
        capture = recording and context.capture_content
        if capture:
            _capture(call, current, A.GEN_AI_INPUT_MESSAGES, messages)
        start = time.perf_counter()
        cpu_start = time.process_time() if entry.computes_here else None
        try:
            message = await chat.ainvoke(messages, **options)
        except ModelUnavailableError as exc:
            _record_failure(call, model, spec, start, exc)
            raise
        except (ConnectionError, TimeoutError, OSError) as exc:
            _record_failure(call, model, spec, start, exc)
            raise ModelUnavailableError(f"model '{model}' failed: {exc}") from exc
        except Exception as exc:
            _record_failure(call, model, spec, start, exc)
            raise
        seconds = time.perf_counter() - start
        if not isinstance(message, AIMessage):  # a plain Runnable returned something else
            message = AIMessage(content=str(getattr(message, "content", message)))
        usage: Mapping[str, Any] = message.usage_metadata or {}
        in_tok = int(usage.get("input_tokens", 0))
        out_tok = int(usage.get("output_tokens", 0))
        meta = message.response_metadata or {}
        finish = meta.get("finish_reason") or meta.get("done_reason")
        finish = str(finish) if finish else None
        confidence = meta.get(CONFIDENCE_KEY)
        cpu = meta.get(CPU_SECONDS_KEY)
        if cpu is None and cpu_start is not None:
            cpu = time.process_time() - cpu_start
        joules, energy_cost = spec.energy(cpu, in_tok + out_tok)
        cost = spec.cost(in_tok, out_tok) + energy_cost
        call.scope.record(
            model, large=entry.large, input_tokens=in_tok, output_tokens=out_tok, cost=cost,
            seconds=seconds, joules=joules,
            meta={"confidence": confidence, "finish_reason": finish, "output_tokens": out_tok},
        )
        if recording:
            safely(set_attributes, current, _result_attributes(
                in_tok, out_tok, finish, cost, joules, confidence,
                meta.get("model_name") or meta.get("model")))
        if capture:
            _capture(call, current, A.GEN_AI_OUTPUT_MESSAGES, [message])
        if metrics.metrics_active():  # (no SDK meter provider: nothing to record)
            safely(
                metrics.record_call,
                flow=context.flow, model=model, provider=entry.provider,
                request_model=entry.request_model, seconds=seconds,
                input_tokens=in_tok, output_tokens=out_tok, cost=cost,
            )
    return ModelReply(
        text=_text(message), model=model, input_tokens=in_tok, output_tokens=out_tok, cost=cost,
        seconds=seconds, finish_reason=finish, confidence=confidence, message=message,
    )


@lru_cache(maxsize=64)
def _finish_reasons(finish: str) -> tuple[str]:
    """One shared tuple per finish reason: spans waiting for export keep no tuple of their
    own for the garbage collector to visit."""
    return (finish,)


def _result_attributes(in_tok: int, out_tok: int, finish: str | None, cost: float, joules: float,
                       confidence: Any, response_model: Any) -> dict[str, Any]:
    """The ``chat`` span's attributes about the reply."""
    return {
        A.GEN_AI_INPUT_TOKENS: in_tok,
        A.GEN_AI_OUTPUT_TOKENS: out_tok,
        A.GEN_AI_FINISH_REASONS: _finish_reasons(finish) if finish else None,
        A.COST: cost,
        A.ENERGY_JOULES: joules or None,
        A.CONFIDENCE_MEAN: confidence["mean_prob"] if confidence else None,
        A.CONFIDENCE_MIN: confidence["min_prob"] if confidence else None,
        A.GEN_AI_RESPONSE_MODEL: response_model,
    }


def _record_hops(call: NodeCall, model: str, to_local: bool, current: Any) -> None:
    """One ``tandem.hop`` event per earlier output the calling node reads: the sources are
    found now (the state moves on), the events built when the span is exported."""
    sources = call.scope.hops()
    if not sources:
        return
    later(current, _hop_events, sources, call.name, model, to_local, call.context.models)


def _hop_events(sources: Sequence[Any], node: str, model: str, to_local: bool,
                pool: Any) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    events = []
    for source in sources:
        from_local = True  # a node without a model ran here, in this process
        if source.model:
            try:
                from_local = pool.entry(source.model).spec.local
            except Exception:  # noqa: BLE001  an unknown producer model must not fail the call
                from_local = True
        event = {A.HOP_FIELD: source.field, A.HOP_FROM_NODE: source.node, A.HOP_TO_NODE: node,
                 A.HOP_FROM_MODEL: source.model, A.HOP_TO_MODEL: model, A.HOP_CHARS: source.chars,
                 A.HOP_TOKENS: source.tokens, A.HOP_FROM_LOCAL: from_local,
                 A.HOP_TO_LOCAL: to_local, A.HOP_LOCAL_TO_REMOTE: from_local and not to_local,
                 A.HOP_REDACTIONS: source.redactions}
        events.append((A.HOP_EVENT, event))
    return {A.HOP_COUNT: len(sources)}, events


def _capture(call: NodeCall, current: Any, key: str, messages: Sequence[BaseMessage]) -> None:
    """Record message content on the span, after redaction (content capture only)."""
    try:
        text, count = content.messages_json(messages, call.context.extras.get("redact"))
    except Exception:  # noqa: BLE001  a failing redactor must not leak content or fail the call
        current.set_attribute(key, "[redaction failed: content not recorded]")
        return
    current.set_attribute(key, text)
    if count:
        previous = current.attributes.get(A.CONTENT_REDACTIONS, 0) if hasattr(current, "attributes") else 0
        current.set_attribute(A.CONTENT_REDACTIONS, int(previous or 0) + count)


def _record_failure(call: NodeCall, model: str, spec: Any, start: float, exc: Exception) -> None:
    safely(
        metrics.record_call,
        flow=call.context.flow, model=model, provider=spec.provider,
        request_model=spec.model or model, seconds=time.perf_counter() - start,
        input_tokens=0, output_tokens=0, cost=0.0, error=type(exc).__name__,
    )


def _text(message: AIMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content.strip()
    parts = [p if isinstance(p, str) else str(p.get("text", "")) for p in content]
    return "".join(parts).strip()


def record_model_use(
    call: NodeCall,
    model: str,
    *,
    input_tokens: int,
    output_tokens: int,
    seconds: float,
    started_ns: int | None = None,
    finish_reason: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    cpu_seconds: float | None = None,
) -> None:
    """Report model work a node ran itself (token-level engines) like a ``call_model`` call.

    Records one ``chat`` span for the model (back-dated to ``started_ns`` when given) with
    ``gen_ai.usage.*``, cost, hop events and ``attributes``; metrics; and usage, escalation
    and budget totals on the node's recorder scope. ``cpu_seconds``: process CPU time the
    work used (priced by energy, see :meth:`~tandemlm.models.spec.ModelSpec.energy`).
    """
    entry = call.context.models.entry(model)
    spec = entry.spec
    joules, energy_cost = spec.energy(cpu_seconds, input_tokens + output_tokens)
    cost = spec.cost(input_tokens, output_tokens) + energy_cost
    call.scope.record(
        model, large=entry.large, input_tokens=input_tokens, joules=joules,
        output_tokens=output_tokens, cost=cost, seconds=seconds,
        meta={"confidence": None, "finish_reason": finish_reason, "output_tokens": output_tokens},
    )
    if tracing_active():
        safely(_use_span, call, model, entry, input_tokens, output_tokens,
               cost, joules, seconds, started_ns, finish_reason, attributes)
    safely(
        metrics.record_call,
        flow=call.context.flow, model=model, provider=entry.provider, request_model=entry.request_model,
        seconds=seconds, input_tokens=input_tokens, output_tokens=output_tokens, cost=cost,
    )


def _use_span(call: NodeCall, model: str, entry: PoolEntry,
              input_tokens: int, output_tokens: int, cost: float, joules: float, seconds: float,
              started_ns: int | None, finish_reason: str | None,
              attributes: Mapping[str, Any] | None) -> None:
    end_ns = time.time_ns()
    start_ns = started_ns if started_ns is not None else end_ns - int(seconds * 1e9)
    attrs = {
        **entry.chat_attributes,
        A.GEN_AI_TEMPERATURE: None,  # token-level engines decode with their own settings
        A.GEN_AI_MAX_TOKENS: None,
        A.NODE: call.name,
        A.FLOW: call.context.flow,
        **_result_attributes(input_tokens, output_tokens, finish_reason, cost, joules, None, None),
        **(attributes or {}),
    }
    current = start_span(f"chat {entry.request_model}", attrs, start_time=start_ns)
    try:
        if current.is_recording():
            _record_hops(call, model, entry.spec.local, current)
    finally:
        current.end(end_time=end_ns)
