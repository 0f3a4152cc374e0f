"""Static checks of a flow spec, run by ``compile()`` before any model is touched."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tandemlm.core.node import Node, Port
from tandemlm.core.state import BUILTIN_CHANNELS, RESERVED
from tandemlm.errors import SpecError
from tandemlm.flows.loader import validation_error
from tandemlm.flows.registry import node_type, router_type
from tandemlm.flows.spec import END, FlowSpec
from tandemlm.nodes.route import RouteNode
from tandemlm.nodes.routers.base import Router

BUILTIN_FIELDS = BUILTIN_CHANNELS - {"ledger", "choices"}  # the built-ins a node may read


@dataclass
class CheckedFlow:
    """A validated spec with its node objects and the graph's adjacency."""

    spec: FlowSpec
    nodes: dict[str, Node]  # user nodes and inserted route nodes
    node_types: dict[str, str]
    successors: dict[str, set[str]]
    channels: dict[str, Any]  # declared output -> reducer (None: single writer)
    items: set[str]  # map-edge item names (each fanned-out run's own value)
    # the built-in channels the flow's state has: LangGraph does work for every channel at
    # every step, so ``messages`` (no node reads the conversation) and ``choices`` (no
    # route) are left out when nothing would read them
    builtins: frozenset[str] = BUILTIN_CHANNELS


def _known(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none"


def _build_node(spec: FlowSpec, name: str) -> Node:
    node_spec = spec.nodes[name]
    cls = node_type(node_spec.type, path=f"nodes.{name}.type")
    try:
        return cls.model_validate(node_spec.params())
    except ValidationError as exc:
        raise validation_error(exc, prefix=f"nodes.{name}") from None


def _build_router(spec: FlowSpec, index: int) -> Router:
    router_spec = spec.routes[index].router
    path = f"routes[{index}].router"
    cls = router_type(router_spec.type, path=f"{path}.type")
    try:
        return cls.model_validate({"threshold": router_spec.threshold, **router_spec.params()})
    except ValidationError as exc:
        raise validation_error(exc, prefix=path) from None


def _check_refs(spec: FlowSpec, name: str, node: Node, path: str) -> None:
    for param, model in node.model_refs().items():
        if model not in spec.models:
            raise SpecError(f"{path}.{param}", f"unknown model {model!r} (known: {_known(spec.models)})")
    for param, store in node.store_refs().items():
        if store not in spec.stores:
            raise SpecError(f"{path}.{param}", f"unknown store {store!r} (known: {_known(spec.stores)})")


def _find_cycle(successors: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(successors.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(successors):
        if start not in state and (found := visit(start)):
            return found
    return None


def check(spec: FlowSpec) -> CheckedFlow:
    """Validate ``spec``; raise :class:`SpecError` naming the first problem and a fix."""
    if not spec.nodes:
        raise SpecError("nodes", "a flow needs at least one node")
    nodes: dict[str, Node] = {}
    types: dict[str, str] = {}
    for name, node_spec in spec.nodes.items():
        nodes[name] = _build_node(spec, name)
        types[name] = node_spec.type
        _check_refs(spec, name, nodes[name], f"nodes.{name}")
        try:  # node-specific requirements (e.g. token-level pairs)
            nodes[name].check(spec)
        except SpecError as exc:
            raise SpecError(f"nodes.{name}.{exc.path}", exc.message) from None

    targets = set(spec.nodes) | {END}
    successors: dict[str, set[str]] = {name: set() for name in spec.nodes}
    for i, edge in enumerate(spec.edges):
        for source in edge.sources():
            if source not in spec.nodes:
                raise SpecError(f"edges[{i}].from", f"unknown node {source!r} (known: {_known(spec.nodes)})")
            successors[source].add(edge.target)
        if edge.target not in targets:
            raise SpecError(f"edges[{i}].to", f"unknown node {edge.target!r} (known: {_known(targets)})")
        if edge.map is not None and (len(edge.sources()) != 1 or edge.target == END):
            raise SpecError(f"edges[{i}].map", "a map edge fans out from one node to one node (not 'end')")

    routed: set[str] = set()
    for i, route in enumerate(spec.routes):
        path = f"routes[{i}]"
        if route.source not in spec.nodes:
            raise SpecError(f"{path}.from", f"unknown node {route.source!r} (known: {_known(spec.nodes)})")
        if route.source in routed:
            raise SpecError(f"{path}.from", f"node {route.source!r} already has a route; combine them")
        if successors[route.source]:
            raise SpecError(
                f"{path}.from",
                f"node {route.source!r} has both edges and a route; remove its edges (the route decides)",
            )
        routed.add(route.source)
        router = _build_router(spec, i)
        route_name = route.node_name()
        if route_name in nodes:
            raise SpecError(f"{path}.name", f"{route_name!r} is already a node name; give the route another name")
        node = RouteNode(router=router)
        _check_refs(spec, route_name, node, path)
        missing = router.choices() - set(route.branches)
        if missing:
            raise SpecError(f"{path}.branches", f"no branch for choice(s) {_known(missing)}; map each to a node or 'end'")
        for choice, target in route.branches.items():
            if choice not in router.choices():
                raise SpecError(f"{path}.branches.{choice}", f"router {router.type_name!r} never chooses {choice!r} (choices: {_known(router.choices())})")
            if target not in targets:
                raise SpecError(f"{path}.branches.{choice}", f"unknown node {target!r} (known: {_known(targets)})")
        nodes[route_name] = node
        types[route_name] = "route"
        successors[route.source] = {route_name}
        successors[route_name] = set(route.branches.values())

    entries = spec.entries()
    if not entries:
        raise SpecError("entry", f"no entry node: set 'entry' to one of {_known(spec.nodes)}")
    for entry in entries:
        if entry not in spec.nodes:
            raise SpecError("entry", f"unknown node {entry!r} (known: {_known(spec.nodes)})")

    seen: set[str] = set()
    frontier = list(entries)
    while frontier:
        current = frontier.pop()
        if current in seen or current == END:
            continue
        seen.add(current)
        frontier.extend(successors.get(current, ()))
    for name in spec.nodes:
        if name not in seen:
            raise SpecError(f"nodes.{name}", "unreachable from the entry; add an edge or route to it, or remove it")

    graph = {k: {t for t in v if t != END} for k, v in successors.items()}
    cycle = _find_cycle(graph)
    if cycle and spec.settings.max_steps is None:
        raise SpecError(
            "settings.max_steps",
            f"loop {' -> '.join(cycle)} has no bound; set settings.max_steps to cap node executions",
        )

    channels = _channels(spec, nodes)
    produced = set(BUILTIN_FIELDS) | set(channels)
    items: set[str] = set()
    for i, edge in enumerate(spec.edges):  # a map edge hands each item to its target
        if edge.map is not None:
            if edge.map not in produced:
                raise SpecError(f"edges[{i}].map", f"no node writes {edge.map!r} (known: {_known(produced)})")
            if edge.item in channels or edge.item in BUILTIN_CHANNELS:
                raise SpecError(f"edges[{i}].as", f"{edge.item!r} is already a state field; name the item otherwise")
            items.add(edge.item)
    produced |= items
    for name, node in nodes.items():
        unknown = node.reads() - produced
        if unknown:
            where = f"nodes.{name}" if name in spec.nodes else f"routes.{name}"
            raise SpecError(where, f"reads unknown field(s) {_known(unknown)} (known: {_known(produced)})")

    if spec.settings.privacy == "strict":
        from tandemlm.flows.privacy_check import check_privacy

        check_privacy(spec, nodes, successors)
    _check_writers(spec, nodes, successors)
    return CheckedFlow(spec=spec, nodes=nodes, node_types=types, successors=successors,
                       channels=channels, items=items, builtins=_builtins(spec, nodes))


def _builtins(spec: FlowSpec, nodes: Mapping[str, Node]) -> frozenset[str]:
    """The built-in channels a flow needs: ``messages`` only when a node reads the
    conversation, ``choices`` only when a route's conditional edge reads it."""
    unused = set()
    if not any("messages" in node.reads() for node in nodes.values()):
        unused.add("messages")
    if not spec.routes:
        unused.add("choices")
    return BUILTIN_CHANNELS - unused


def _where(spec: FlowSpec, name: str) -> str:
    return f"nodes.{name}" if name in spec.nodes else f"routes.{name}"


def _channels(spec: FlowSpec, nodes: dict[str, Node]) -> dict[str, Any]:
    """Declared outputs -> reducer; writers of one output must agree on its reducer."""
    channels: dict[str, Any] = {}
    declared_by: dict[str, str] = {}
    for name, node in nodes.items():
        for output, port in node.outputs().items():
            if not isinstance(port, Port):
                raise SpecError(_where(spec, name), f"output {output!r} must be declared as a Port")
            if output in RESERVED:
                raise SpecError(_where(spec, name), f"{output!r} is a built-in state field; write another output")
            if output in channels and channels[output] is not port.reducer:
                raise SpecError(
                    _where(spec, name),
                    f"output {output!r} is an aggregate for one writer and not for another "
                    f"({declared_by[output]!r}); give one of them another output",
                )
            channels[output] = port.reducer
            declared_by.setdefault(output, name)
    return channels


def _reach(successors: dict[str, set[str]]) -> dict[str, set[str]]:
    """For each node, the nodes reachable from it (itself included)."""
    out: dict[str, set[str]] = {}
    for start in successors:
        seen = {start}
        frontier = list(successors.get(start, ()))
        while frontier:
            current = frontier.pop()
            if current != END and current not in seen:
                seen.add(current)
                frontier.extend(successors.get(current, ()))
        out[start] = seen
    return out


def _check_writers(spec: FlowSpec, nodes: dict[str, Node], successors: dict[str, set[str]]) -> None:
    """Single writer per output: two nodes that can run at the same time must not write one
    output unless it is an aggregate (a reducer merges the writes), and a map edge's target
    (run once per item, concurrently) may only write aggregates."""
    writers: dict[str, list[str]] = {}
    single: set[str] = set()
    for name, node in nodes.items():
        for output, port in node.outputs().items():
            writers.setdefault(output, []).append(name)
            if not port.aggregate:
                single.add(output)
    for i, edge in enumerate(spec.edges):
        if edge.map is None:
            continue
        plain = sorted(set(nodes[edge.target].writes()) & single)
        if plain:
            raise SpecError(
                f"edges[{i}].map",
                f"node {edge.target!r} runs once per item at the same time but writes "
                f"{_known(plain)}, which only one writer may write; declare the output an "
                f"aggregate (a Port with a reducer) or do not fan out to {edge.target!r}",
            )
    reach = _reach(successors)
    forks: list[list[str]] = [list(spec.entries())] if len(spec.entries()) > 1 else []
    for name, targets in successors.items():
        if name in nodes and not isinstance(nodes[name], RouteNode) and len(targets - {END}) > 1:
            forks.append(sorted(targets - {END}))
    for output in sorted(single):
        names = sorted(writers[output])
        for a_index, a in enumerate(names):
            for b in names[a_index + 1:]:
                if b in reach.get(a, ()) or a in reach.get(b, ()):
                    continue  # one always runs after the other
                for branches in forks:
                    side_a = {t for t in branches if a in reach.get(t, ())}
                    side_b = {t for t in branches if b in reach.get(t, ())}
                    if side_a and side_b and (side_a != side_b or len(side_a) > 1):
                        raise SpecError(
                            _where(spec, b),
                            f"nodes {a!r} and {b!r} can run at the same time and both write "
                            f"{output!r}; give one of them another output, or declare "
                            f"{output!r} an aggregate (a Port with a reducer)",
                        )
