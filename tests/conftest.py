
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


# --- a real Chroma server process (`chroma run`), owned by the stores tests -------------
@_pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: _pytest.TempPathFactory) -> _Iterator[tuple[str, int]]:
    """``(host, port)`` of a Chroma server started for this test session on 127.0.0.1."""
    import shutil
    import signal
    import socket
    import subprocess
    import time

    import httpx

    exe = _Path(_sys.executable).with_name("chroma")
    command = str(exe) if exe.exists() else shutil.which("chroma")
    assert command, "the `chroma` command (from the chromadb package) is missing"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path_factory.mktemp("chroma-server")
    log = (data / "server.log").open("wb")
    proc = subprocess.Popen(
        [command, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {proc.returncode}: see {data / 'server.log'}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("chroma run did not answer its heartbeat within 60 s")
            time.sleep(0.2)
        yield "127.0.0.1", port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
