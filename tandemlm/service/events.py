"""Per-request context: the request id on run spans, and node/token events for streaming.

Both ride on context variables, so flow and node code stay unaware of HTTP: a span
processor copies the request id onto ``invoke_workflow`` spans, and a LangChain callback
handler (registered through a configure hook) turns node and model callbacks into events.
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

if TYPE_CHECKING:
    from langchain_core.outputs import ChatGenerationChunk, GenerationChunk

REQUEST_ID = "tandem.request_id"
request_id_var: ContextVar[str | None] = ContextVar("tandem_request_id", default=None)
stream_var: ContextVar[StreamEvents | None] = ContextVar("tandem_stream_events", default=None)
_hooked = False


class RequestIdProcessor(SpanProcessor):
    """Puts the current request id on every run span (``invoke_workflow ...``)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        request_id = request_id_var.get()
        if request_id and span.name.startswith("invoke_workflow"):
            span.set_attribute(REQUEST_ID, request_id)

    def on_end(self, span: ReadableSpan) -> None:
        return None


class StreamEvents(AsyncCallbackHandler):
    """Collects ``node``, ``token`` and ``message`` events of one run into a queue."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self._nodes: dict[UUID, str] = {}
        self._streamed: set[UUID] = set()
        self._models: dict[UUID, str | None] = {}

    def put(self, event: str, data: dict[str, Any]) -> None:
        self.queue.put_nowait((event, data))

    async def on_chain_start(
        self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID,
        metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        node = (metadata or {}).get("langgraph_node")
        if node and kwargs.get("name") == node:
            self._nodes[run_id] = node
            self.put("node", {"node": node, "status": "start"})

    async def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        node = self._nodes.pop(run_id, None)
        if node:
            self.put("node", {"node": node, "status": "end"})

    async def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        node = self._nodes.pop(run_id, None)
        if node:
            self.put("node", {"node": node, "status": "error", "error": type(error).__name__})

    async def on_chat_model_start(
        self, serialized: dict[str, Any] | None, messages: Any, *, run_id: UUID,
        metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        self._models[run_id] = (metadata or {}).get("langgraph_node")

    async def on_llm_new_token(
        self, token: str | list[str | dict[str, Any]], *,
        chunk: GenerationChunk | ChatGenerationChunk | None = None, run_id: UUID,
        parent_run_id: UUID | None = None, tags: list[str] | None = None, **kwargs: Any,
    ) -> None:
        if token:
            self._streamed.add(run_id)
            self.put("token", {"text": token, "node": self._models.get(run_id)})

    async def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        node = self._models.pop(run_id, None)
        if run_id in self._streamed:  # its tokens were sent already
            self._streamed.discard(run_id)
            return
        try:
            text = response.generations[0][0].text
        except (AttributeError, IndexError):
            return
        self.put("message", {"text": text, "node": node})

    async def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._models.pop(run_id, None)
        self._streamed.discard(run_id)


def install() -> None:
    """Register the callback hook once per process (LangChain keeps hooks globally)."""
    global _hooked
    if not _hooked:
        from langchain_core.tracers.context import register_configure_hook

        register_configure_hook(stream_var, inheritable=True)
        _hooked = True
