"""``privacy: strict``: no raw user input may reach a non-local model."""

from __future__ import annotations

from tandemlm.errors import SpecError
from tandemlm.flows.spec import FlowSpec
from tandemlm.nodes.base import Node

RAW_FIELDS = frozenset({"input", "messages"})


def check_privacy(spec: FlowSpec, nodes: dict[str, Node], successors: dict[str, set[str]]) -> None:
    """Reject nodes that send raw user input to a model whose spec says ``local: false``."""
    for name, node in nodes.items():
        for param, model in node.model_refs().items():
            if spec.models[model].local:
                continue
            raw = node.reads() & RAW_FIELDS
            if raw:
                raise SpecError(
                    f"nodes.{name}.{param}",
                    f"privacy: strict forbids sending raw {', '.join(sorted(raw))} to non-local "
                    f"model {model!r}; read a privacy-filtered field instead",
                )
