"""``privacy: strict``: no raw user input or local data may reach a non-local model unfiltered.

A static data-flow check over the validated graph, using only what nodes declare. Private
sources are the raw ``input``, ``messages`` and run ``variables``, the outputs of nodes that
read local stores (retrieved documents), and outputs declared ``Port(private=True)``
(``local_context``, the placeholder mapping a ``privacy_filter`` keeps). Privacy travels
through every node that reads a private field (a local SLM's summary of the input is as
private as the input); an output declared ``Port(private=False)`` (a ``privacy_filter``'s
masked text) is clean. Every field a non-local model sees is traced back
through the producers that can run before it; the first private origin found is reported
with the node path it takes.
"""

from __future__ import annotations

from collections.abc import Mapping

from tandemlm.core.node import Node
from tandemlm.errors import SpecError
from tandemlm.flows.spec import END, FlowSpec

RAW_FIELDS = frozenset({"input", "messages", "variables"})


def ancestors(successors: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """For each node, the nodes that can run before it (itself included when in a loop)."""
    preds: dict[str, set[str]] = {}
    for source, targets in successors.items():
        for target in targets:
            if target != END:
                preds.setdefault(target, set()).add(source)
    out: dict[str, set[str]] = {}
    for node in successors:
        seen: set[str] = set()
        frontier = list(preds.get(node, ()))
        while frontier:
            current = frontier.pop()
            if current not in seen:
                seen.add(current)
                frontier.extend(preds.get(current, ()))
        out[node] = seen
    return out


class _Tracer:
    def __init__(self, nodes: dict[str, Node], successors: dict[str, set[str]],
                 items: dict[str, str] | None = None) -> None:
        self.nodes = nodes
        self.items = dict(items or {})  # map-edge item -> the list it is taken from
        self.before = ancestors(successors)
        self.producers: dict[str, list[str]] = {}
        for name, node in nodes.items():
            for field in node.writes():
                self.producers.setdefault(field, []).append(name)

    def origin(self, field: str, consumer: str, visiting: frozenset[tuple[str, str]]) -> tuple[str, list[str]] | None:
        """``(what, path)`` when a private value can reach ``consumer`` through ``field``."""
        if field in RAW_FIELDS:
            return f"raw {field!r}", []
        if field in self.items:  # a map item is as private as the list it comes from
            return self.origin(self.items[field], consumer, visiting)
        for producer in sorted(self.producers.get(field, ())):
            key = (producer, field)
            if producer not in self.before.get(consumer, set()) or key in visiting:
                continue
            node = self.nodes[producer]
            port = node.outputs()[field]
            if port.private is False:
                continue  # declared clean (a privacy filter's masked text)
            if port.private:
                return f"{port.doc or 'local data'} {field!r}", [producer]
            if node.store_refs():
                stores = ", ".join(sorted(node.store_refs().values()))
                return f"local documents from store {stores!r}", [producer]
            for read in sorted(node.reads()):
                found = self.origin(read, producer, visiting | {key})
                if found:
                    return found[0], [*found[1], producer]
        return None


def check_privacy(spec: FlowSpec, nodes: dict[str, Node], successors: dict[str, set[str]]) -> None:
    """Reject any path that feeds private data to a model that is not local (``local: false``,
    or by default a model served on a host other than loopback).

    Raises:
        SpecError: naming the node parameter, the private source, the model and the path,
            e.g. ``nodes.sketch.model: privacy: strict: raw 'input' reaches non-local model
            'llm' via extract -> sketch without a privacy_filter``.
    """
    items = {e.item: e.map for e in spec.edges if e.map is not None and e.item}
    tracer = _Tracer(nodes, successors, items)
    route_index = {route.node_name(): i for i, route in enumerate(spec.routes)}
    for name in sorted(nodes):
        node = nodes[name]
        for param, model in sorted(node.model_refs().items()):
            if model not in spec.models or spec.models[model].local:
                continue
            for field in sorted(node.model_inputs(param)):
                found = tracer.origin(field, name, frozenset())
                if not found:
                    continue
                what, path = found
                where = f"nodes.{name}" if name in spec.nodes else f"routes[{route_index.get(name, 0)}]"
                raise SpecError(
                    f"{where}.{param}",
                    f"privacy: strict: {what} reaches non-local model {model!r} via "
                    f"{' -> '.join([*path, name])} without a privacy_filter; add a privacy_filter "
                    f"node and let {name!r} read its output (a model is local only when it runs on "
                    f"this device: embedded, or served on a loopback address)",
                )
