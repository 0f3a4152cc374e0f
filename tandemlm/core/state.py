"""Flow state: built-in channels, reducers, and the schema the compiler generates per flow.

The compiler builds one LangGraph state schema per flow (:func:`state_schema`): the built-in
channels below, one channel per declared node output (single writer unless the output is an
aggregate with a reducer) and the ``ledger`` channel for bookkeeping
(:mod:`tandemlm.core.ledger`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages


def append_list(left: list[Any] | None, right: list[Any] | None) -> list[Any]:
    """Concatenate; ``None`` clears the list (a new turn of a multi-turn conversation)."""
    if right is None:
        return []
    return [*(left or []), *right]


def merge_dicts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Shallow merge; the right side wins key by key."""
    return {**(left or {}), **(right or {})}


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


class FlowState(TypedDict, total=False):
    """The built-in channels every flow has (node outputs are added per flow).

    Fields:
        input: the user's request for this turn.
        messages: the conversation (multi-turn), reduced with LangGraph's ``add_messages``.
        answer: the final answer (a node output like any other, declared by writers).
        variables: run variables given to ``run(..., variables=...)`` (e.g. a user profile);
            templates can name them like outputs.
        choices: the latest choice of every node that decided (route nodes), by node
            name; the conditional edges read it, and it persists across the turns of a
            thread (so a router can see the previous turn's choice).
        ledger: one bookkeeping entry per node execution of this turn (see
            :mod:`tandemlm.core.ledger`).
    """

    input: str
    messages: Annotated[list[AnyMessage], add_messages]
    answer: str
    variables: dict[str, Any]
    choices: Annotated[dict[str, str], merge_dicts]
    ledger: Annotated[list[dict[str, Any]], append_list]


BUILTIN_CHANNELS = frozenset(FlowState.__annotations__)
RESERVED = BUILTIN_CHANNELS - {"answer"}  # names no node may declare as an output


def state_schema(name: str, channels: Mapping[str, Callable[[Any, Any], Any] | None],
                 items: Mapping[str, Any] | None = None,
                 builtins: frozenset[str] = BUILTIN_CHANNELS) -> type:
    """A ``TypedDict`` with the built-in channels ``builtins`` (default: all) plus
    ``channels`` (name -> reducer or ``None`` for a single-writer channel) and ``items``
    (map-edge item names)."""
    fields: dict[str, Any] = {k: v for k, v in FlowState.__annotations__.items() if k in builtins}
    for channel, reducer in channels.items():
        if channel in BUILTIN_CHANNELS:
            continue
        fields[channel] = Annotated[Any, reducer] if reducer is not None else Any
    for item in items or {}:
        fields.setdefault(item, Any)
    return TypedDict(f"{name}State", fields, total=False)  # type: ignore[operator]


def lookup(state: Mapping[str, Any], field: str) -> Any:
    """The value of state field ``field``, else of run variable ``field`` (else ``None``)."""
    value = state.get(field)
    if value is None:
        variables = state.get("variables")
        if variables:
            return variables.get(field)
    return value
