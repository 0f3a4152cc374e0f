
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
