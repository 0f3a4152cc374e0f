"""The shared state every flow carries, with its reducers.

Nodes return partial updates; these reducers merge them, so parallel branches can write
``vars``, ``steps`` and ``usage`` at the same time without losing anything.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Shallow merge; the right side wins key by key."""
    return {**(left or {}), **(right or {})}


def merge_usage(
    left: dict[str, dict[str, float]] | None, right: dict[str, dict[str, float]] | None
) -> dict[str, dict[str, float]]:
    """Add per-model counters (calls, input_tokens, output_tokens, cost, seconds)."""
    if right is None:  # a new turn of a conversation starts from zero
        return {}
    out = {name: dict(counts) for name, counts in (left or {}).items()}
    for name, counts in (right or {}).items():
        mine = out.setdefault(name, {})
        for key, value in counts.items():
            mine[key] = mine.get(key, 0) + value
    return out


def append_list(left: list[Any] | None, right: list[Any] | None) -> list[Any]:
    """Concatenate; ``None`` clears the list (a new turn of a multi-turn conversation)."""
    if right is None:
        return []
    return [*(left or []), *right]


def merge_evidence(
    left: list[dict[str, Any]] | None, right: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    """Append retrieval hits, de-duplicated by ``id`` (the higher score is kept).

    Parallel retrieval branches (a ``map`` fan-out) write here at once. ``None`` clears
    the list (a new turn of a multi-turn conversation).
    """
    if right is None:
        return []
    out: dict[str, dict[str, Any]] = {}
    for hit in [*(left or []), *right]:
        key = str(hit.get("id"))
        if key not in out or float(hit.get("score") or 0) > float(out[key].get("score") or 0):
            out[key] = hit
    return list(out.values())


class Step(TypedDict, total=False):
    """One audit record: which node ran, with which model, and what it decided."""

    node: str
    model: str | None
    decision: dict[str, Any] | None
    output: str | None  # the state field written, not its content


class FlowState(TypedDict, total=False):
    """State shared by every tandemlm flow.

    Fields:
        input: the user's request for this turn.
        messages: the conversation (multi-turn), reduced with LangGraph's ``add_messages``.
        answer: the final answer.
        answered_by: the model (spec name) that produced the answer.
        vars: named intermediate outputs (``draft``, ``intent``, ...), merged key by key.
        steps: audit list of node executions and decisions, in order.
        usage: per-model calls, tokens, cost and seconds for this run.
        meta: per-output metadata (model, confidence, finish reason), keyed like ``vars``.
        degraded: true when the answer came from a fallback.
        errors: error records that a node handled without failing the run.
        evidence: retrieved hits (``id``, ``text``, ``metadata``, ``score``, ``source``),
            appended by ``retrieve`` nodes and de-duplicated by id.
    """

    input: str
    messages: Annotated[list[AnyMessage], add_messages]
    answer: str
    answered_by: str
    vars: Annotated[dict[str, Any], merge_dicts]
    steps: Annotated[list[Step], append_list]
    usage: Annotated[dict[str, dict[str, float]], merge_usage]
    meta: Annotated[dict[str, Any], merge_dicts]
    degraded: bool
    errors: Annotated[list[dict[str, Any]], append_list]
    evidence: Annotated[list[dict[str, Any]], merge_evidence]


def lookup(state: FlowState, field: str) -> Any:
    """Read a field from the top level or from ``vars`` (``vars`` wins for custom names)."""
    variables = state.get("vars") or {}
    if field in variables:
        return variables[field]
    return state.get(field)  # type: ignore[misc]


TOP_LEVEL_FIELDS = frozenset({"input", "answer", "answered_by"})


def write(field: str, value: Any) -> dict[str, Any]:
    """Partial update that stores ``value`` under ``field`` (top level or ``vars``)."""
    if field in TOP_LEVEL_FIELDS:
        return {field: value}
    return {"vars": {field: value}}
