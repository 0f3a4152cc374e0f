"""Per-request context and streaming: the request id on run spans, and run events as SSE.

The request id rides on a context variable, so flow and node code stay unaware of HTTP: a
span processor copies it onto ``invoke_workflow`` spans. Stream events come from the run
itself (:meth:`CompiledFlow.astream`, LangGraph stream modes), one stream per run.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from tandemlm.flows.stream import (
    Custom,
    Message,
    NodeFailed,
    NodeFinished,
    NodeStarted,
    StreamEvent,
    Token,
)
from tandemlm.telemetry.attributes import REQUEST_ID

request_id_var: ContextVar[str | None] = ContextVar("tandem_request_id", default=None)


class RequestIdProcessor(SpanProcessor):
    """Puts the current request id on every run span (``invoke_workflow ...``)."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        request_id = request_id_var.get()
        if request_id and span.name.startswith("invoke_workflow"):
            span.set_attribute(REQUEST_ID, request_id)

    def on_end(self, span: ReadableSpan) -> None:
        return None


def sse_event(event: StreamEvent) -> tuple[str, dict[str, Any]]:
    """The server-sent event name and data of one run event.

    ``node`` (status ``start``, ``end`` with the node's ledger ``step``, or ``error`` with
    the error type), ``token`` and ``message`` (text and node), ``custom`` (data).
    """
    if isinstance(event, NodeStarted):
        return "node", {"node": event.node, "status": "start"}
    if isinstance(event, NodeFinished):
        return "node", {"node": event.node, "status": "end", "step": event.step}
    if isinstance(event, NodeFailed):
        return "node", {"node": event.node, "status": "error", "error": event.error}
    if isinstance(event, Token):
        return "token", {"text": event.text, "node": event.node}
    if isinstance(event, Message):
        return "message", {"text": event.text, "node": event.node}
    if isinstance(event, Custom):
        return "custom", {"data": event.data}
    raise TypeError(f"not a stream event: {event!r}")
