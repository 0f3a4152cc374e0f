"""Deterministic chat models for tests: scripted (in order) and keyed (by pattern).

Both are real langchain-core ``BaseChatModel`` s, so flows cannot tell them from a provider.
A reply is a string or a dict ``{"content": str, "confidence": float, "error": str,
"delay": float, "finish_reason": str}``: ``confidence`` fills
``response_metadata["confidence"]`` as providers do; ``error`` raises
:class:`ModelUnavailableError` (to test fallbacks); ``delay`` sleeps before answering;
``finish_reason`` (default ``stop``; ``length`` = cut off at the token limit).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import PrivateAttr

from tandemlm.errors import ModelUnavailableError, TandemError
from tandemlm.models.confidence import CONFIDENCE_KEY, summarize


class ScriptError(TandemError):
    """A fake model was called more (or fewer) times than its script allows."""


def _count_tokens(text: str) -> int:
    return max(1, len(text.split())) if text else 0


def _prompt_text(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


def _last_human(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if message.type == "human":
            return str(message.content)
    return _prompt_text(messages)


class _FakeChatModel(BaseChatModel):
    model_name: str = "fake"
    # keep the messages of every call (``calls``); off for long benchmarks, where a list
    # growing by one call each time would make the garbage collector ever slower
    record_calls: bool = True
    _calls: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def calls(self) -> list[list[BaseMessage]]:
        """Messages of every call so far, in order."""
        return list(self._calls)

    def _pick(self, messages: list[BaseMessage]) -> Any:
        raise NotImplementedError

    def _result(self, reply: Any, messages: list[BaseMessage]) -> ChatResult:
        spec = reply if isinstance(reply, dict) else {"content": reply}
        if spec.get("error"):
            raise ModelUnavailableError(str(spec["error"]))
        content = str(spec.get("content", ""))
        out_tokens = _count_tokens(content)
        metadata: dict[str, Any] = {
            "model_name": self.model_name,
            "finish_reason": str(spec.get("finish_reason", "stop")),
        }
        if spec.get("confidence") is not None:
            probs = [float(spec["confidence"])] * max(1, out_tokens)
            metadata[CONFIDENCE_KEY] = summarize(probs)
            metadata["token_probs"] = probs
        in_tokens = _count_tokens(_prompt_text(messages))
        message = AIMessage(
            content=content,
            response_metadata=metadata,
            usage_metadata={
                "input_tokens": in_tokens,
                "output_tokens": out_tokens,
                "total_tokens": in_tokens + out_tokens,
            },
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _take(self, messages: list[BaseMessage]) -> Any:
        with self._lock:
            if self.record_calls:
                self._calls.append(list(messages))
            return self._pick(messages)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._take(messages)
        if isinstance(reply, dict) and reply.get("delay"):
            time.sleep(float(reply["delay"]))
        return self._result(reply, messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._take(messages)
        if isinstance(reply, dict) and reply.get("delay"):
            await asyncio.sleep(float(reply["delay"]))
        return self._result(reply, messages)


class ScriptedChatModel(_FakeChatModel):
    """Answers with ``replies`` in order; an extra call raises :class:`ScriptError`.

    Example:
        >>> model = ScriptedChatModel(replies=["4", {"content": "5", "confidence": 0.2}])
        >>> model.invoke("2+2?").content
        '4'
    """

    replies: list[Any]
    model_name: str = "scripted"
    _next: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _pick(self, messages: list[BaseMessage]) -> Any:
        if self._next >= len(self.replies):
            raise ScriptError(
                f"{self.model_name}: unexpected call #{self._next + 1} (script has "
                f"{len(self.replies)} replies); last prompt: {_last_human(messages)[:200]!r}"
            )
        reply = self.replies[self._next]
        self._next += 1
        return reply

    @property
    def remaining(self) -> int:
        """Replies not used yet."""
        return len(self.replies) - self._next

    def assert_all_used(self) -> None:
        """Raise :class:`ScriptError` if some scripted replies were never requested."""
        if self.remaining:
            raise ScriptError(f"{self.model_name}: {self.remaining} scripted replies unused")


class KeyedChatModel(_FakeChatModel):
    """Answers by the first regex in ``replies`` that matches the last human message.

    Order-independent, so it suits parallel branches. No match and no ``default`` raises
    :class:`ScriptError`.
    """

    replies: dict[str, Any]
    default: Any = None
    model_name: str = "keyed"

    @property
    def _llm_type(self) -> str:
        return "keyed"

    def _pick(self, messages: list[BaseMessage]) -> Any:
        text = _last_human(messages)
        for pattern, reply in self.replies.items():
            if re.search(pattern, text, flags=re.IGNORECASE | re.DOTALL):
                return reply
        if self.default is not None:
            return self.default
        raise ScriptError(f"{self.model_name}: no key matches prompt {text[:200]!r}")
