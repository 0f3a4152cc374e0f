"""Error types raised by tandemlm.

Every error derives from :class:`TandemError`; messages say what is wrong and how to fix it.
The CLI prints them as one line and exits non-zero.
"""

from __future__ import annotations


class TandemError(Exception):
    """Base class of every error tandemlm raises on purpose."""


class SpecError(TandemError):
    """A flow spec is invalid.

    Args:
        path: dotted location in the spec, e.g. ``nodes.check.model``.
        message: what is wrong and how to fix it.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        # Paths and messages quote user data: keep the error one printable line.
        shown = path if path.isprintable() else repr(path)[1:-1]
        text = message if message.isprintable() else " ".join(message.split())
        super().__init__(f"{shown}: {text}" if path else text)


class ModelUnavailableError(TandemError):
    """A model cannot be reached or loaded (server down, model not pulled, file missing)."""


class NodeExecutionError(TandemError):
    """A node failed while a flow ran; ``node`` names it."""

    def __init__(self, node: str, message: str) -> None:
        self.node = node
        super().__init__(f"node '{node}' failed: {message}")


class BudgetExceededError(TandemError):
    """A run exceeded its configured budget (escalations, tokens or cost)."""


class ConfigError(TandemError):
    """Project configuration (``tandem.toml`` or environment variables) is invalid."""
