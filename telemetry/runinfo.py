"""Run-level span attributes: the flow graph, the path taken, totals, models and errors."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tandemlm._json import dumps
from tandemlm.core import ledger
from tandemlm.telemetry import attributes as A

START, END = "__start__", "__end__"


def flow_graph(spec: Any, node_types: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Nodes and edges of a flow spec, route branches labelled with their choice.

    Returns:
        ``{"entry": [...], "nodes": [{"id", "type"}], "edges": [{"from", "to", "label"}]}``
        with ``__start__`` / ``__end__`` pseudo nodes.
    """
    types = dict(node_types or {})
    nodes = [{"id": START, "type": "start"}]
    nodes += [{"id": name, "type": types.get(name, "node")} for name in spec.nodes]
    edges: list[dict[str, Any]] = [{"from": START, "to": e, "label": ""} for e in spec.entries()]
    for edge in spec.edges:
        target = END if edge.target == "end" else edge.target
        for source in edge.sources():
            edges.append({"from": source, "to": target, "label": ""})
    for route in spec.routes:
        name = route.node_name()
        nodes.append({"id": name, "type": f"route:{route.router.type}"})
        edges.append({"from": route.source, "to": name, "label": ""})
        for choice, target in route.branches.items():
            edges.append({"from": name, "to": END if target == "end" else target, "label": choice})
    nodes.append({"id": END, "type": "end"})
    return {"entry": list(spec.entries()), "nodes": nodes, "edges": edges}


def flow_graph_json(spec: Any, node_types: Mapping[str, str] | None = None) -> str:
    """:func:`flow_graph` as compact JSON (the ``tandem.flow.graph`` attribute)."""
    return json.dumps(flow_graph(spec, node_types), separators=(",", ":"))


def run_attributes(state: Mapping[str, Any], roles: Mapping[str, str | None], escalations: int, *,
                   usage: Mapping[str, Mapping[str, float]] | None = None,
                   large: list[str] | None = None) -> dict[str, Any]:
    """Totals for the run span, read from the final state's ledger.

    Args:
        state: the final flow state.
        roles: ``{model name: role}`` from the flow's model specs (kept for callers; the
            ledger already says which calls went to a large model).
        escalations: route decisions that chose the large model.
        usage, large: the ledger's :func:`~tandemlm.core.ledger.usage` and
            :func:`~tandemlm.core.ledger.large_models_called` when the caller has them
            already (a run result); else worked out here.
    """
    steps = ledger.entries(state)
    if usage is None:
        usage = ledger.usage(steps)
    if large is None:
        large = ledger.large_models_called(steps)
    totals: dict[str, float] = {}
    for counts in usage.values():
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    llm_calls = sum(int(u.get("calls", 0)) for n, u in usage.items() if n in large)
    return {
        A.RUN_STATUS: "ok",
        A.RUN_PATH: tuple(str(s.get("node", "?")) for s in steps),
        A.RUN_MODELS: tuple(sorted(usage)),
        A.RUN_MODEL_CALLS: int(totals.get("calls", 0)),
        A.RUN_LLM_CALLS: llm_calls,
        A.RUN_LLM_CALLED: bool(large),
        A.RUN_INPUT_TOKENS: int(totals.get("input_tokens", 0)),
        A.RUN_OUTPUT_TOKENS: int(totals.get("output_tokens", 0)),
        A.RUN_COST: float(totals.get("cost", 0.0)),
        A.RUN_ENERGY_JOULES: float(totals.get("joules", 0.0)),
        A.RUN_ESCALATIONS: escalations,
        A.RUN_ANSWERED_BY: ledger.answered_by(steps),
        A.RUN_DEGRADED: ledger.degraded(steps),
        A.RUN_USAGE: dumps(usage),
    }


def error_events(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Attributes of one ``tandem.error`` event per error a node recovered from."""
    return [
        {A.ERROR_NODE: str(e.get("node", "?")), A.ERROR_MESSAGE: str(e.get("error", ""))[:500]}
        for e in ledger.errors(ledger.entries(state))
    ]
