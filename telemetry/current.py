"""The current span in OpenTelemetry's context, read and set with fewer layers.

``trace.get_current_span()``, ``context.attach(trace.set_span_in_context(span))`` and
``context.detach(token)`` pass through five to seven functions each; tandemlm does them
for two spans on every node. When the runtime context is OpenTelemetry's default
(``ContextVarsRuntimeContext``), these helpers read and set its context variable directly,
with the same result (the same ``Context`` objects under the same key, so spans other
libraries start see tandemlm's as their parent, and the reverse). With another runtime
context (``OTEL_PYTHON_CONTEXT``) they call the API.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import propagation

log = logging.getLogger("tandemlm.telemetry")


def _variable() -> ContextVar[Context] | None:
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    variable = getattr(runtime, "_current_context", None)
    key = getattr(propagation, "_SPAN_KEY", None)
    if type(runtime) is ContextVarsRuntimeContext and isinstance(variable, ContextVar) and key:
        return variable
    return None


_CURRENT = _variable()
_SPAN_KEY: str = getattr(propagation, "_SPAN_KEY", "")
_Span = trace.Span
_INVALID = trace.INVALID_SPAN


def current_span() -> trace.Span:
    """The current span (the invalid span when there is none), as ``trace.get_current_span()``."""
    if _CURRENT is None:
        return trace.get_current_span()
    found = _CURRENT.get().get(_SPAN_KEY)
    return found if isinstance(found, _Span) else _INVALID


def attach_span(span: trace.Span) -> Token[Any]:
    """Make ``span`` current; returns the token for :func:`detach`."""
    if _CURRENT is None:
        return otel_context.attach(trace.set_span_in_context(span))
    context = Context(_CURRENT.get())  # a copy: contexts are never changed in place
    dict.__setitem__(context, _SPAN_KEY, span)
    return _CURRENT.set(context)


def detach(token: Token[Any]) -> None:
    """Undo :func:`attach_span`; a failure is logged as OpenTelemetry's ``detach`` logs it."""
    if _CURRENT is None:
        otel_context.detach(token)
        return
    try:
        _CURRENT.reset(token)
    except Exception:  # e.g. reset from another context: never fail the run
        log.exception("Failed to detach context")
