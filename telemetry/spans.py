"""Span helpers used by the compiler (node spans) and the model layer (model-call spans).

Library code only uses the OpenTelemetry API: without an SDK configured these are no-ops.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from tandemlm.telemetry import attributes as A

TRACER_NAME = "tandemlm"


@lru_cache(maxsize=1)
def tracer() -> trace.Tracer:
    """The tandemlm tracer (a proxy until an SDK provider is set; looked up once: it is slow)."""
    return trace.get_tracer(TRACER_NAME)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


@contextmanager
def span(name: str, attributes: dict[str, Any] | None = None) -> Iterator[Span]:
    """A span that records an exception as an error status and re-raises it."""
    with tracer().start_as_current_span(
        name, attributes=_clean(attributes or {}), record_exception=False, set_status_on_exception=False
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, str(exc)[:500]))
            current.set_attribute(A.ERROR_TYPE, type(exc).__name__)
            current.record_exception(exc)
            raise


def set_attributes(current: Span, attributes: dict[str, Any]) -> None:
    current.set_attributes(_clean(attributes))


def add_event(current: Span, name: str, attributes: dict[str, Any]) -> None:
    """Add a span event, dropping ``None`` attribute values."""
    current.add_event(name, _clean(attributes))


@contextmanager
def retrieval_span(store: str, query: str, top_k: int | None = None) -> Iterator[Span]:
    """The span of one retrieval (``retrieval <store>``); store adapters call this.

    The caller sets :data:`~tandemlm.telemetry.attributes.RETRIEVAL_RESULTS` when done.
    The query text itself is never recorded here (content capture is the model layer's job).
    """
    attrs = {
        A.GEN_AI_OPERATION: "retrieval",
        A.RETRIEVAL_STORE: store,
        A.RETRIEVAL_TOP_K: top_k,
        A.RETRIEVAL_QUERY_CHARS: len(query),
    }
    with span(f"retrieval {store}", attrs) as current:
        yield current
