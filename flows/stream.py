"""Typed events of a streamed run (:meth:`CompiledFlow.astream`), read from LangGraph's
stream modes: ``tasks`` (a node started or failed), ``updates`` (a node finished: its
ledger entry), ``messages`` (model tokens, or whole replies of models that do not stream)
and ``custom`` (whatever a node writes with LangGraph's ``get_stream_writer()``).

Events are per run: they travel in the run's own stream, never through process-wide
callbacks, so concurrent runs cannot see each other's events.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessageChunk, BaseMessage

# stream modes a streamed run asks LangGraph for ("values" carries the final state)
MODES = ("values", "tasks", "updates", "messages", "custom")


@dataclass(frozen=True)
class NodeStarted:
    """A node began one execution."""

    node: str


@dataclass(frozen=True)
class NodeFinished:
    """A node finished one execution; ``step`` is its ledger entry (model, output names,
    decision, usage, errors; no output values)."""

    node: str
    step: dict[str, Any]


@dataclass(frozen=True)
class NodeFailed:
    """A node raised; the run ends with that error (``error`` is its type name)."""

    node: str
    error: str
    message: str


@dataclass(frozen=True)
class Token:
    """A piece of a model reply, from a provider that streams."""

    node: str | None
    text: str


@dataclass(frozen=True)
class Message:
    """A whole model reply, from a provider that does not stream."""

    node: str | None
    text: str


@dataclass(frozen=True)
class Custom:
    """Data a node wrote to the stream with ``langgraph.config.get_stream_writer()``."""

    data: Any


StreamEvent = NodeStarted | NodeFinished | NodeFailed | Token | Message | Custom


def events(part: dict[str, Any]) -> Iterator[StreamEvent]:
    """The events of one LangGraph stream part (``version="v2"``: type, ns, data).

    Node events come from the flow's own graph only (``ns`` empty); model and custom
    events from any depth: a flow run as a node (``type: flow``) streams its models' tokens
    too, named by node path (``answer/escalate``: the child's node inside this flow's node).
    """
    kind, data, ns = part["type"], part["data"], part.get("ns") or ()
    top = not ns
    if kind == "tasks" and top:
        if "result" not in data:
            yield NodeStarted(data["name"])
        elif data.get("error") is not None:
            error = data["error"]
            yield NodeFailed(data["name"], type(error).__name__, str(error))
    elif kind == "updates" and top:
        for node, update in data.items():
            if node.startswith("__") or not isinstance(update, dict):
                continue  # interrupts, or a node that wrote nothing
            entries = update.get("ledger") or [{}]
            yield NodeFinished(node, entries[-1])
    elif kind == "messages":
        message, meta = data
        # LangGraph also re-emits messages found in node outputs (the AIMessage the node
        # wrapper appends when a node writes the answer); only chat model runs carry the
        # ls_model_type metadata that LangChain sets on every chat model call.
        if not isinstance(message, BaseMessage) or "ls_model_type" not in meta:
            return
        text, node = message.text, _node_path(ns, meta.get("langgraph_node"))
        if isinstance(message, AIMessageChunk):
            if text:
                yield Token(node, text)
        else:
            yield Message(node, text)
    elif kind == "custom":
        yield Custom(data)


def _node_path(ns: tuple[str, ...], node: str | None) -> str | None:
    """``outer/inner`` for a node of a sub-graph (namespace segments are ``node:task_id``)."""
    if not ns or node is None:
        return node
    return "/".join([*(segment.split(":")[0] for segment in ns), node])
