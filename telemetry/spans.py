"""Span helpers used by the compiler (node spans) and the model layer (model-call spans).

Library code only uses the OpenTelemetry API: without an SDK configured these are no-ops.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from tandemlm.telemetry import attributes as A
from tandemlm.telemetry.current import attach_span, detach

TRACER_NAME = "tandemlm"


@lru_cache(maxsize=1)
def tracer() -> trace.Tracer:
    """The tandemlm tracer (a proxy until an SDK provider is set; looked up once: it is slow)."""
    return trace.get_tracer(TRACER_NAME)


def _clean(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


_HUB: Any = None  # tandemlm's processor hub once attached (set by telemetry.setup)
_IDLE_PROVIDERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
_PROVIDER: Any = None  # the global provider once set (OpenTelemetry sets it only once)
_UNSET = trace.NoOpTracerProvider()  # what _provider() says while no provider is set
# get_tracer_provider() reads this variable on every call until a provider is set; it is
# read once here (set it before importing tandemlm, as OpenTelemetry's docs say)
_FROM_ENVIRONMENT = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def _provider() -> Any:
    global _PROVIDER
    if _PROVIDER is not None:
        return _PROVIDER
    if getattr(trace, "_TRACER_PROVIDER", None) is None and not _FROM_ENVIRONMENT:
        return _UNSET
    provider = trace.get_tracer_provider()
    if not isinstance(provider, _IDLE_PROVIDERS):
        _PROVIDER = provider
    return provider


_ROUTE: tuple[Any, Any, Any, Any] = (None, None, None, None)  # (provider, processors, hub's, route)


def _route() -> Any:
    """``None``: nobody records spans; ``False``: spans go through the SDK tracer; else the
    :class:`~tandemlm.telemetry.light.Target` light spans go to. Asked several times per
    node, so it is worked out again only when the provider or its processors change."""
    global _ROUTE
    provider = _provider()
    processors = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", None)
    hub_processors = _HUB.processors if _HUB is not None else None
    cached = _ROUTE
    if cached[0] is provider and cached[1] is processors and cached[2] is hub_processors:
        return cached[3]
    route: Any
    if isinstance(provider, _IDLE_PROVIDERS):
        route = None
    elif processors is None:  # a provider of another kind: assume it records
        route = False
    elif not any(p is not _HUB or p.processors for p in processors):
        route = None
    else:
        from tandemlm.telemetry.light import target

        route = target(provider, processors, _HUB) or False
    _ROUTE = (provider, processors, hub_processors, route)
    return route


def tracing_active() -> bool:
    """Whether a span started now would be recorded by anyone.

    False with no SDK provider, and with tandemlm's own provider while its hub has no
    exporter attached (after ``enable_tracing(...).close()``): then node and model-call
    spans are skipped entirely, which keeps untraced runs close to raw LangGraph.
    """
    return _route() is not None


def start_span(name: str, attributes: dict[str, Any] | None = None,
               start_time: int | None = None) -> Span:
    """A span (not made current), child of the current one: a light span
    (:mod:`tandemlm.telemetry.light`) where the SDK's processors allow it, else the SDK's;
    the invalid span when nobody records spans. The caller ends it."""
    route = _route()
    if route is None:
        return trace.INVALID_SPAN
    if route is False:
        return tracer().start_span(name, attributes=_clean(attributes) if attributes else None,
                                   start_time=start_time)
    from tandemlm.telemetry.light import start

    return start(route, name, attributes, start_time)


class span:  # used like a function: ``with span(name, attrs) as current:``
    """A span made current for the block; an exception sets an error status and re-raises.

    When nothing records spans (:func:`tracing_active`), yields a non-recording span
    without touching the OpenTelemetry context. A plain class rather than a generator
    context manager: it is entered twice per node, so it is kept cheap.
    """

    __slots__ = ("_attributes", "_name", "_span", "_token")

    def __init__(self, name: str, attributes: dict[str, Any] | None = None) -> None:
        self._name = name
        self._attributes = attributes
        self._token: Any = None

    def __enter__(self) -> Span:
        self._span = current = start_span(self._name, self._attributes)
        if current is not trace.INVALID_SPAN:
            self._token = attach_span(current)
        return current

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._token is None:
            return
        current = self._span
        try:
            if exc is not None and current.is_recording():
                current.set_status(Status(StatusCode.ERROR, str(exc)[:500]))
                current.set_attribute(A.ERROR_TYPE, type(exc).__name__)
                current.record_exception(exc)
        finally:
            detach(self._token)
            current.end()


class _NoSpan:
    """``with NO_SPAN as current:``: the invalid span, for a block nobody traces."""

    __slots__ = ()

    def __enter__(self) -> Span:
        return trace.INVALID_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


NO_SPAN = _NoSpan()


def set_attributes(current: Span, attributes: dict[str, Any]) -> None:
    """Set attributes, dropping ``None`` values (a light span drops them itself)."""
    current.set_attributes(attributes if _is_light(current) else _clean(attributes))


def add_event(current: Span, name: str, attributes: dict[str, Any]) -> None:
    """Add a span event, dropping ``None`` attribute values."""
    current.add_event(name, attributes if _is_light(current) else _clean(attributes))


def later(current: Span, build: Callable[..., Any], *args: Any) -> None:
    """Attributes and events made from data captured now, recorded when the span is
    exported: ``build(*args)`` returns ``(attributes or None, [(event name, attributes), ...])``.

    A light span (:mod:`tandemlm.telemetry.light`) calls ``build`` when a processor first
    reads it (the local store: in its exporter thread, off the flow's path); any other
    recording span calls it now. ``build`` and ``args`` must only use data that no longer
    changes. (``args`` rather than a ``functools.partial``: one object less per span kept
    waiting for export.)
    """
    if _is_light(current):
        current.defer(build, *args)  # type: ignore[attr-defined]
        return
    if not current.is_recording():
        return
    built = build(*args)
    if not built:
        return
    attributes, events = built
    if attributes:
        set_attributes(current, dict(attributes))
    for name, event in events or ():
        add_event(current, name, dict(event))


def _is_light(current: Span) -> bool:
    """A :class:`~tandemlm.telemetry.light.LightSpan` (checked without importing the SDK)."""
    return getattr(type(current), "LIGHT", False)


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
