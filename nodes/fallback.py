"""``fallback``: ask the large model; if it is unreachable or slow, the small one answers.

The degraded answer is marked (``degraded: true`` plus a recovered error record) and the
question is queued persistently (:mod:`tandemlm.escalations`) for
``tandem escalations replay``. A per-process circuit breaker stops calling an endpoint
after ``failures`` consecutive failures, for ``cooldown`` seconds.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import Field

from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.errors import BudgetExceededError, ModelUnavailableError
from tandemlm.escalations import EscalationQueue
from tandemlm.nodes.template import fields, render


@dataclass
class _Breaker:
    failures: int = 0
    open_until: float = 0.0


_BREAKERS: dict[str, _Breaker] = {}
_LOCK = threading.Lock()


def breaker_state(key: str) -> _Breaker:
    with _LOCK:
        return _BREAKERS.setdefault(key, _Breaker())


def reset_breakers() -> None:
    """Close every circuit (tests, or after an outage was fixed)."""
    with _LOCK:
        _BREAKERS.clear()


class Fallback(Node):
    """Answer with ``model``; on failure or timeout answer with ``fallback``, degraded and queued.

    Args:
        model: the preferred (large) model.
        fallback: the model that answers when ``model`` cannot.
        prompt / system: templates (as in ``generate``).
        timeout: seconds the large model may take.
        failures / cooldown: circuit breaker: after this many consecutive failures, skip the
            large model for ``cooldown`` seconds.
        queue: escalation queue file (default ``<tandem home>/escalations.sqlite``);
            ``source`` is the preset name or spec path replays compile (default: flow name).
    """

    type_name = "fallback"

    model: str = "llm"
    fallback: str = "slm"
    prompt: str = Field("{input}", max_length=100_000)
    system: str | None = Field(None, max_length=100_000)
    timeout: float = Field(60.0, gt=0.0, le=86_400.0)
    failures: int = Field(3, ge=1, le=1000)
    cooldown: float = Field(30.0, ge=0.0, le=86_400.0)
    queue: str | None = Field(None, max_length=4096)
    source: str | None = Field(None, max_length=4096)

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model, "fallback": self.fallback}

    def inputs(self) -> dict[str, Any]:
        names = {"input"} | fields(self.prompt) | fields(self.system or "")
        return dict.fromkeys(sorted(names), Any)

    def model_inputs(self, param: str) -> set[str]:
        # the raw input only goes to the local queue; the models see the rendered prompt
        return fields(self.prompt) | fields(self.system or "")

    def outputs(self) -> dict[str, Port]:
        return {
            "answer": Port(str),
            "escalation_id": Port(str, doc="the queued question's id (degraded answers only)"),
        }

    def _messages(self, state: Mapping[str, Any]) -> list[BaseMessage]:
        out: list[BaseMessage] = []
        if self.system:
            out.append(SystemMessage(content=render(self.system, state)))
        out.append(HumanMessage(content=render(self.prompt, state)))
        return out

    def _key(self, call: NodeCall) -> str:
        spec = call.context.models.spec(self.model)
        return f"{spec.provider}:{spec.host or ''}:{spec.model or self.model}"

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        messages = self._messages(state)
        breaker = breaker_state(self._key(call))
        reason: str
        if breaker.open_until > time.monotonic():
            reason = f"circuit open for {self.model} ({breaker.failures} consecutive failures)"
        else:
            try:
                reply = await asyncio.wait_for(call.chat(self.model, messages), timeout=self.timeout)
            except BudgetExceededError:
                raise
            except TimeoutError:
                reason = f"{self.model} timed out after {self.timeout:g} s"
            except Exception as exc:  # noqa: BLE001 - unreachable, refused, HTTP error: answer locally
                reason = f"{self.model} unavailable: {type(exc).__name__}: {exc}"
            else:
                breaker.failures, breaker.open_until = 0, 0.0
                return NodeResult(outputs={"answer": reply.text}, credit=self.model)
            breaker.failures += 1
            if breaker.failures >= self.failures:
                breaker.open_until = time.monotonic() + self.cooldown
        return await self._degraded(state, call, messages, reason)

    async def _degraded(
        self, state: Mapping[str, Any], call: NodeCall, messages: list[BaseMessage], reason: str
    ) -> NodeResult:
        queue = EscalationQueue(self.queue)
        item = queue.add(
            flow=call.context.flow,
            source=self.source or call.context.flow,
            model=self.model,
            question=str(state.get("input", "")),
            messages=[{"type": m.type, "content": str(m.content)} for m in messages],
            reason=reason,
        )
        try:
            reply = await call.chat(self.fallback, messages)
        except ModelUnavailableError as exc:
            raise ModelUnavailableError(
                f"both models failed: {reason}; fallback {self.fallback}: {exc}. "
                f"The question is queued as {item} (tandem escalations list)"
            ) from exc
        queue.set_degraded_answer(item, reply.text)
        call.degrade(reason, queued=item)
        return NodeResult(
            outputs={"answer": reply.text, "escalation_id": item},
            credit=self.fallback,
            meta={"answer": {**reply.meta(), "degraded": reason}},
        )
