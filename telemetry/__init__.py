"""Tracing for tandemlm: spans on every node and model call, a local SQLite store and a viewer.

Library code uses only the OpenTelemetry API (no-ops until an SDK is set up). Turn tracing
on with :func:`enable_tracing`; the CLI does it for you (``.tandem/traces.db``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ProcessorHub", "TraceStore", "TraceWriter", "TracingHandle", "cli_tracing", "enable_tracing", "hub",
]


def __getattr__(name: str) -> Any:  # the SDK is imported only when tracing is set up
    if name == "TraceStore":
        from tandemlm.telemetry.store import TraceStore

        return TraceStore
    if name == "TraceWriter":
        from tandemlm.telemetry.writer import TraceWriter

        return TraceWriter
    if name in __all__:
        from tandemlm.telemetry import setup

        return getattr(setup, name)
    raise AttributeError(name)
