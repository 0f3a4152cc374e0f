"""Optional dependencies: a missing extra is one line that says what to install.

The base install composes, validates and runs flows on Ollama. Everything heavier lives in
an extra (``pyproject.toml``) and is imported where it is used, through :func:`needs_extra`::

    with needs_extra("rag", "the Chroma store"):
        import chromadb

Without chromadb this raises :class:`MissingExtraError`:
``the Chroma store needs the 'rag' extra (chromadb is missing): pip install 'tandemlm[rag]'``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from tandemlm.errors import TandemError

#: Every extra and what it brings (kept in step with pyproject.toml by a test).
EXTRAS: dict[str, str] = {
    "embedded": "llama.cpp runtime for the embedded GGUF models",
    "rag": "Chroma stores, sentence-transformers embeddings (torch), the MiniLM model, PDF reading",
    "privacy": "Presidio and spaCy for the privacy filter",
    "serve": "tandem serve and the trace viewer (starlette, uvicorn, OTLP protobuf)",
    "eval": "plots in evaluation reports (matplotlib)",
    "openai": "the openai provider (langchain-openai)",
    "ray": "the Ray evaluation backend",
    "otlp": "exporting traces over OTLP/HTTP (Phoenix, Jaeger, ...)",
}


class MissingExtraError(TandemError, ImportError):
    """An optional dependency is not installed; the message names the extra to install.

    Also an :class:`ImportError`, so code that already falls back on a missing import keeps
    doing so.
    """

    def __init__(self, extra: str, feature: str, module: str | None = None) -> None:
        self.extra = extra
        self.feature = feature
        missing = f" ({module} is missing)" if module else ""
        super().__init__(f"{feature} needs the '{extra}' extra{missing}: pip install 'tandemlm[{extra}]'")
        self.name = module


def install_hint(extra: str) -> str:
    """The command that installs ``extra``, e.g. ``pip install 'tandemlm[rag]'``."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r} (known: {', '.join(EXTRAS)})")
    return f"pip install 'tandemlm[{extra}]'"


@contextmanager
def needs_extra(extra: str, feature: str) -> Iterator[None]:
    """Turn a missing third-party module imported inside the block into :class:`MissingExtraError`.

    Args:
        extra: the extra that provides the modules (a key of :data:`EXTRAS`).
        feature: what needs them, as the user knows it (``"tandem serve"``).

    Raises:
        MissingExtraError: a module imported in the block is not installed. A missing
            ``tandemlm`` module is a bug, not a missing extra, and propagates unchanged.
    """
    install_hint(extra)  # a typo in the extra name fails at the call site, every time
    try:
        yield
    except ModuleNotFoundError as exc:
        module = exc.name or ""
        if module.split(".")[0] == "tandemlm":
            raise
        raise MissingExtraError(extra, feature, module.split(".")[0] or None) from exc


def require_extra(extra: str, feature: str, *modules: str) -> None:
    """Fail now, in one line, unless ``modules`` import (a command checks before it loads models).

    Raises:
        MissingExtraError: one of ``modules`` is not installed.
    """
    with needs_extra(extra, feature):
        for module in modules:
            importlib.import_module(module)
