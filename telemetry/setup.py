"""Tracing set-up for applications and the CLI.

The global OpenTelemetry tracer provider can be set only once per process, so tandemlm
installs (or joins) one provider and attaches a :class:`ProcessorHub` to it; exporters are
then added and removed through the hub (a CLI command, a test, a notebook cell).

Example:
    >>> from tandemlm.telemetry import enable_tracing
    >>> handle = enable_tracing(store=".tandem/traces.db")   # doctest: +SKIP
    >>> ...  # run flows
    >>> handle.close()                                       # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)

log = logging.getLogger("tandemlm.telemetry")

SERVICE_NAME = "tandemlm"


class ProcessorHub(SpanProcessor):
    """A span processor that forwards to processors which can be added and removed."""

    def __init__(self) -> None:
        self._processors: tuple[SpanProcessor, ...] = ()
        self._lock = threading.Lock()

    def add(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._processors = (*self._processors, processor)

    def remove(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._processors = tuple(p for p in self._processors if p is not processor)

    @property
    def processors(self) -> tuple[SpanProcessor, ...]:
        return self._processors

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self._processors:
            try:
                processor.on_start(span, parent_context=parent_context)
            except Exception:  # a processor must never fail a flow
                log.exception("span processor %r failed on_start", processor)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._processors:
            try:
                processor.on_end(span)
            except Exception:
                log.exception("span processor %r failed on_end", processor)

    def shutdown(self) -> None:
        for processor in self._processors:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self._processors)


_hub = ProcessorHub()
_hub_lock = threading.Lock()
_attached = False


def hub() -> ProcessorHub:
    """The process-wide hub, attached to the global SDK tracer provider.

    Installs a ``TracerProvider`` (service ``tandemlm``) if none is set; joins an existing
    SDK provider otherwise (e.g. one an application configured for its own exporters).
    """
    global _attached
    with _hub_lock:
        if not _attached:
            provider = trace.get_tracer_provider()
            if not isinstance(provider, TracerProvider):
                provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
                trace.set_tracer_provider(provider)
                provider = trace.get_tracer_provider()
            if isinstance(provider, TracerProvider):
                from tandemlm.telemetry import spans

                provider.add_span_processor(_hub)
                spans._HUB = _hub
                _attached = True
            else:  # another library set a non-SDK provider: nothing to attach to
                log.warning("tracer provider %r is not an SDK provider; tandemlm exporters are off", provider)
        return _hub


@dataclass
class TracingHandle:
    """Exporters added by :func:`enable_tracing`; :meth:`close` flushes and removes them."""

    processors: list[SpanProcessor] = field(default_factory=list)
    store: Path | None = None

    def flush(self, timeout_millis: int = 10_000) -> None:
        for processor in self.processors:
            try:
                processor.force_flush(timeout_millis)
            except Exception:
                log.exception("flushing traces failed")

    def close(self) -> None:
        self.flush()
        for processor in self.processors:
            hub().remove(processor)
            try:
                processor.shutdown()
            except Exception:
                log.exception("closing a trace exporter failed")
        self.processors.clear()


def enable_tracing(
    *,
    store: str | Path | None = None,
    console: bool = False,
    otlp_endpoint: str | None = None,
    exporters: list[Any] | None = None,
) -> TracingHandle:
    """Send tandemlm spans to the local store, the console, an OTLP collector or any exporter.

    Args:
        store: SQLite trace store path (e.g. ``.tandem/traces.db``), written a row per run
            by a background thread (:class:`~tandemlm.telemetry.writer.TraceWriter`).
        console: print spans to stdout (for debugging).
        otlp_endpoint: OTLP/HTTP traces URL, e.g. ``http://127.0.0.1:6006/v1/traces``
            (Arize Phoenix) or a ``tandem traces serve`` viewer.
        exporters: further ``SpanExporter`` objects (batched).

    Returns:
        A :class:`TracingHandle`; call ``close()`` to flush and detach the exporters.
    """
    handle = TracingHandle()
    targets: list[Any] = list(exporters or [])
    processors: list[SpanProcessor] = []
    if store is not None:
        from tandemlm.telemetry.writer import TraceWriter

        handle.store = Path(store)
        processors.append(TraceWriter(store))  # batches by run itself
    if otlp_endpoint:
        from tandemlm._extras import needs_extra

        with needs_extra("otlp", "exporting traces over OTLP"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        targets.append(OTLPSpanExporter(endpoint=otlp_endpoint, timeout=5))
    # A deep queue so bursts (hundreds of runs a second with fast models) are stored, not
    # dropped; the processor still never blocks a flow (a full queue drops and logs).
    processors += [
        BatchSpanProcessor(
            t, schedule_delay_millis=1000, max_queue_size=65_536, max_export_batch_size=2_048
        )
        for t in targets
    ]
    if console:
        processors.append(SimpleSpanProcessor(ConsoleSpanExporter()))
    for processor in processors:
        hub().add(processor)
    handle.processors = processors
    return handle


def default_store_path() -> Path:
    """``[tracing] store`` from ``tandem.toml``, else ``<home>/traces.db`` (``.tandem``)."""
    from tandemlm.config import load_config

    config = load_config()
    if config.tracing.store:
        return Path(config.tracing.store)
    return config.home_dir() / "traces.db"


@contextmanager
def cli_tracing() -> Iterator[TracingHandle | None]:
    """Tracing for one CLI command: the local trace store by default; flushes on exit.

    ``TANDEM_TRACING=off`` disables it; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (or
    ``OTEL_EXPORTER_OTLP_ENDPOINT``) also sends spans to that collector. Set-up problems are
    logged, never raised: a command runs the same with tracing broken.
    """
    if os.environ.get("TANDEM_TRACING", "").lower() in ("off", "0", "false", "no"):
        yield None
        return
    handle: TracingHandle | None = None
    try:
        otlp = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if not otlp and os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            otlp = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
        handle = enable_tracing(store=default_store_path(), otlp_endpoint=otlp)
    except Exception as exc:  # noqa: BLE001  tracing must not stop a command
        log.warning("tracing disabled: %s", exc)
    try:
        yield handle
    finally:
        if handle is not None:
            handle.close()
            _report(handle)


def _report(handle: TracingHandle) -> None:
    if handle.store is None:
        return
    try:
        from rich.console import Console

        Console(stderr=True, highlight=False).print(
            f"trace: {handle.store} (tandem traces show / tandem traces serve)", style="dim", markup=False
        )
    except Exception:  # the note is a courtesy; never fail the command for it
        log.debug("could not print the trace location", exc_info=True)
