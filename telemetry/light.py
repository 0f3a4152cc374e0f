"""Light spans: tandemlm builds its own spans and hands them, finished, to the SDK's processors.

The OpenTelemetry SDK builds every span with a lock, a sampler call and bounded attribute
maps that clean each value one by one; for the two spans tandemlm records per node that
was most of tracing's cost. Where nothing can tell the difference, tandemlm records its
spans itself and gives each finished span (a real SDK ``ReadableSpan``) to the provider's
span processors, which export it like any other span (the local store, OTLP, the console).
That is the case when

- the global tracer provider is the SDK's ``TracerProvider`` with the default sampler
  (``parentbased_always_on``, or ``always_on``) and no attribute length limit, and
- no span processor looks at span starts: ``BatchSpanProcessor``, ``SimpleSpanProcessor``,
  tandemlm's processor hub holding only such processors, or any processor that does not
  override ``on_start``.

Otherwise :func:`target` returns ``None`` and spans go through the SDK tracer as before. A
light span is an ``opentelemetry.trace.Span``, so spans other libraries start inside it
(an HTTP client's, LangChain instrumentation's) get it as their parent.

A light span can also take attributes and events *later* (:meth:`LightSpan.defer`): a
function over data captured during the run, called when a processor first reads the span
(for the local store: in its exporter thread, in a batch), not on the flow's path.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util import types

from tandemlm.telemetry.current import current_span
from tandemlm.telemetry.guard import safely

try:  # the SDK's own value cleaning (sequences -> tuples, other objects -> str)
    from opentelemetry.attributes import _clean_attribute_value as _sdk_clean
except ImportError:  # pragma: no cover  an SDK without it: keep what JSON can show
    def _sdk_clean(value: Any, max_len: int | None) -> Any:  # type: ignore[no-redef]
        return tuple(value) if isinstance(value, (list, tuple)) else str(value)

log = logging.getLogger("tandemlm.telemetry")
_SETTLING = threading.Lock()
# deferred span content: (*args) -> (attributes or None, [(event name, attributes)] or None)
Later = Callable[..., "tuple[Mapping[str, Any] | None, Sequence[tuple[str, Mapping[str, Any]]] | None] | None"]
_Deferred = tuple[Later, tuple[Any, ...], int]  # a deferred builder: (build, args, stamp)
_PLAIN_TYPES = frozenset((str, int, float, bool))
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)


def clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Valid OpenTelemetry attribute values: ``None`` dropped, lists as tuples, other
    objects as strings (what the SDK does, without its per-value locking)."""
    if not attributes:
        return {}
    # the usual case, checked in C: plain values only
    if _PLAIN_TYPES.issuperset(map(type, attributes.values())):
        return dict(attributes)
    out = {}
    for key, value in attributes.items():
        kind = type(value)
        if kind in _PLAIN_TYPES:
            out[key] = value
        elif value is None:
            continue
        elif kind is tuple and all(type(item) is str for item in value):
            out[key] = value
        elif kind is list and all(type(item) is str for item in value):
            out[key] = tuple(value)
        else:
            value = _sdk_clean(value, None)
            if value is not None:
                out[key] = value
    return out


@dataclass(frozen=True)
class Target:
    """Where light spans go: the provider's span processors, with its resource and ids."""

    sinks: tuple[Any, ...]  # the ``on_end`` of every processor (the hub's, flattened)
    resource: Any
    scope: InstrumentationScope
    ids: Any
    parent_based: bool
    max_attributes: int | None
    max_events: int | None


_NO_START = frozenset({SpanProcessor.on_start, BatchSpanProcessor.on_start, SimpleSpanProcessor.on_start})
_NO_ENDING = frozenset({  # None: an SDK without the hook
    getattr(SpanProcessor, "_on_ending", None), getattr(BatchSpanProcessor, "_on_ending", None),
    getattr(SimpleSpanProcessor, "_on_ending", None), None,
})


def _ignores_starts(processor: Any, hub: Any) -> bool:
    if processor is hub:
        return all(_ignores_starts(p, None) for p in hub.processors)
    kind = type(processor)
    return kind.on_start in _NO_START and getattr(kind, "_on_ending", None) in _NO_ENDING


def target(provider: Any, processors: tuple[Any, ...], hub: Any) -> Target | None:
    """Where light spans go for ``provider`` (its active processors ``processors``, and
    tandemlm's ``hub``), or ``None`` when spans must go through the SDK tracer. (Its
    caller, ``telemetry.spans``, keeps the answer until the processors change.)"""
    found: Target | None = None
    limits = getattr(provider, "_span_limits", None)
    sampler = getattr(provider, "sampler", None)
    if (
        type(provider) is TracerProvider
        and sampler in (sampling.DEFAULT_ON, sampling.ALWAYS_ON)
        and limits is not None
        and getattr(limits, "max_span_attribute_length", None) is None
        and getattr(limits, "max_attribute_length", None) is None
        and all(_ignores_starts(p, hub) for p in processors)
    ):
        flat = [q for p in processors for q in (hub.processors if p is hub else (p,))]
        found = Target(
            sinks=tuple(p.on_end for p in flat),
            resource=provider.resource,
            scope=InstrumentationScope("tandemlm"),
            ids=provider.id_generator,
            parent_based=sampler is sampling.DEFAULT_ON,
            max_attributes=getattr(limits, "max_span_attributes", None),
            max_events=getattr(limits, "max_events", None),
        )
    return found


def _timestamp(event: Event) -> int:
    return event.timestamp


class LightSpan(trace.Span, ReadableSpan):
    """A recording span that, once ended, is its own finished form (a ``ReadableSpan``)
    handed straight to the span processors."""

    LIGHT = True  # telemetry.spans tells light spans by this (without importing the SDK)

    # the fields ReadableSpan reads, set directly (its __init__ would build a Resource);
    # those every light span starts with are class attributes (fewer stores per span)
    _kind = SpanKind.INTERNAL
    _instrumentation_info = None
    _links = ()
    _status = _UNSET
    _end_time: int | None = None
    _events: list[Event] | tuple[()] = ()  # a list once the span has an event
    _later: _Deferred | list[_Deferred] | None = None  # None, one builder, or a list of them

    def __init__(self, target: Target, name: str, context: SpanContext, parent: SpanContext | None,
                 attributes: Mapping[str, Any] | None, start_time: int | None = None) -> None:
        self._target = target
        self._name = name
        self._context = context
        self._parent = parent
        self._instrumentation_scope = target.scope
        self._resource = target.resource
        self._attributes: dict[str, Any] = clean(attributes)
        self._start_time = start_time if start_time is not None else time.time_ns()

    def _event_list(self) -> list[Event]:
        events = self._events
        if type(events) is not list:
            events = self._events = []
        return events

    # -- read side (ReadableSpan): deferred parts are added on first read -----------------
    @property
    def attributes(self) -> Mapping[str, Any]:
        self.settle()
        return MappingProxyType(self._attributes)

    @property
    def events(self) -> tuple[Event, ...]:
        self.settle()
        return tuple(self._events)

    def to_json(self, indent: int | None = 4) -> str:
        self.settle()
        return super().to_json(indent)

    def defer(self, build: Later, *args: Any) -> None:
        """Add ``build(*args)``'s ``(attributes, [(event name, event attributes), ...])``
        when the span is first read (events stamped now). ``build`` must only use data that
        no longer changes; if it raises, the failure is logged once and the span goes without."""
        if self._end_time is None:
            entry: _Deferred = (build, args, time.time_ns())
            later = self._later
            if later is None:  # the usual case, one builder: kept without a list
                self._later = entry
            elif isinstance(later, list):
                later.append(entry)
            else:
                self._later = [later, entry]

    def settle(self) -> None:
        """Run the deferred builders (once; safe from several threads)."""
        if not self._later:
            return
        with _SETTLING:
            later, self._later = self._later, None
            if later is None:  # another thread settled the span meanwhile
                return
            for build, args, stamp in later if isinstance(later, list) else (later,):
                built = safely(build, *args)
                if not built:
                    continue
                attributes, events = built
                if attributes:
                    self._attributes.update(clean(attributes))
                limit = self._target.max_events
                for name, event in events or ():
                    if limit is None or len(self._events) < limit:
                        self._event_list().append(Event(name, clean(event), stamp))
            if len(self._events) > 1:  # deferred events keep their place in time
                self._event_list().sort(key=_timestamp)

    def get_span_context(self) -> SpanContext:
        return self._context  # type: ignore[return-value]  # always set on a light span

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end_time is None and value is not None:
            self._attributes[key] = value if type(value) in _PLAIN_TYPES else _sdk_clean(value, None)

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        if self._end_time is None:
            self._attributes.update(clean(attributes))

    def add_event(self, name: str, attributes: types.Attributes = None,
                  timestamp: int | None = None) -> None:
        limit = self._target.max_events
        if self._end_time is None and (limit is None or len(self._events) < limit):
            self._event_list().append(Event(name, clean(attributes), timestamp or time.time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        """Links are not recorded on light spans (tandemlm records none)."""

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(self, exception: BaseException, attributes: types.Attributes = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        kind = type(exception)
        module = kind.__module__
        self.add_event("exception", {
            "exception.type": f"{module}.{kind.__qualname__}" if module and module != "builtins"
            else kind.__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
            **(attributes or {}),
        }, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time if end_time is not None else time.time_ns()
        limit = self._target.max_attributes
        if limit is not None and len(self._attributes) > limit:
            self._attributes = dict(list(self._attributes.items())[:limit])
        for sink in self._target.sinks:
            try:
                sink(self)
            except Exception:  # a processor must never fail a flow
                log.exception("span processor %r failed on_end", getattr(sink, "__self__", sink))


def start(target: Target, name: str, attributes: Mapping[str, Any] | None = None,
          start_time: int | None = None) -> trace.Span:
    """A light span, child of the current span (a non-recording one when the parent was
    not sampled, as the SDK's parent-based sampler decides)."""
    parent = current_span().get_span_context()
    ids = target.ids
    if parent.is_valid:
        span_context = SpanContext(parent.trace_id, ids.generate_span_id(), False,
                                   _SAMPLED, parent.trace_state)
        flags = parent.trace_flags  # (ours are the one _SAMPLED object: no flag test needed)
        if target.parent_based and flags is not _SAMPLED and not flags.sampled:
            return trace.NonRecordingSpan(SpanContext(
                parent.trace_id, span_context.span_id, False, parent.trace_flags, parent.trace_state))
        return LightSpan(target, name, span_context, parent, attributes, start_time)
    span_context = SpanContext(ids.generate_trace_id(), ids.generate_span_id(), False, _SAMPLED)
    return LightSpan(target, name, span_context, None, attributes, start_time)

