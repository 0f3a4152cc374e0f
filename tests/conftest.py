
# --- Ollama-protocol test server (tests/ollama_server.py; owned by the Ollama provider) ----
import sys as _sys
from collections.abc import Iterator as _Iterator
from pathlib import Path as _Path

import pytest as _pytest

_TESTS_DIR = str(_Path(__file__).resolve().parent)
if _TESTS_DIR not in _sys.path:  # makes `from ollama_server import OllamaTestServer` work
    _sys.path.insert(0, _TESTS_DIR)


@_pytest.fixture
def ollama_test_server() -> _Iterator["OllamaTestServer"]:  # noqa: F821
    """A running Ollama-protocol server; model ``tiny:latest`` answers a fixed sentence."""
    from ollama_server import OllamaTestServer

    with OllamaTestServer(models={"tiny": "Hello from the test server."}) as srv:
        yield srv


# --- Span capture (telemetry; owned by the telemetry engineer) ------------------------------
@_pytest.fixture(scope="session")
def _span_exporter() -> _Iterator["InMemorySpanExporter"]:  # noqa: F821
    """One in-memory exporter for the session, attached through tandemlm's processor hub."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tandemlm.telemetry.setup import hub

    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    hub().add(processor)
    yield exporter
    hub().remove(processor)


@_pytest.fixture
def spans(_span_exporter: "InMemorySpanExporter") -> "InMemorySpanExporter":  # noqa: F821
    """Finished spans of this test: ``spans.get_finished_spans()`` (cleared per test)."""
    _span_exporter.clear()
    return _span_exporter
