"""The fluent Python view of a flow spec.

Example:
    >>> flow = (
    ...     Flow("cascade")
    ...     .model("slm", role="slm")
    ...     .model("llm", role="llm")
    ...     .node("draft", "generate", model="slm", output="draft", logprobs=True)
    ...     .node("accept", "accept", field="draft")
    ...     .node("escalate", "generate", model="llm")
    ...     .route("draft", "confidence", threshold=0.2,
    ...            branches={"small": "accept", "large": "escalate"})
    ... )
    >>> flow.to_spec().entry
    'draft'
"""

from __future__ import annotations

import builtins
from typing import Any, Self

from pydantic import BaseModel

from tandemlm.flows.loader import parse_spec
from tandemlm.flows.spec import FlowSpec


class Flow:
    """Build a :class:`FlowSpec` step by step; the first node added is the entry."""

    def __init__(self, name: str = "flow", description: str = "") -> None:
        self._data: dict[str, Any] = {
            "name": name,
            "description": description,
            "models": {},
            "stores": {},
            "nodes": {},
            "edges": [],
            "routes": [],
        }
        self._settings: dict[str, Any] = {}

    @classmethod
    def from_spec(cls, spec: FlowSpec) -> Flow:
        """A builder holding ``spec`` (to extend it in Python)."""
        flow = cls()
        flow._data = spec.to_dict()
        flow._settings = flow._data.pop("settings", {})
        for key in ("models", "stores", "nodes"):
            flow._data.setdefault(key, {})
        for key in ("edges", "routes"):
            flow._data.setdefault(key, [])
        return flow

    def model(self, name: str, **spec: Any) -> Self:
        """Declare a model (``ModelSpec`` fields: provider, model, role, local, prices...)."""
        self._data["models"][name] = spec
        return self

    def store(self, name: str, **spec: Any) -> Self:
        """Declare a store by its settings."""
        self._data["stores"][name] = spec
        return self

    def node(self, name: str, type: str, **params: Any) -> Self:
        """Add a node of a registered ``type`` with its parameters."""
        if isinstance(params.get("schema"), builtins.type) and issubclass(params["schema"], BaseModel):
            from tandemlm.nodes.structured import schema_from_model

            params["schema"] = schema_from_model(params["schema"])
        self._data["nodes"][name] = {"type": type, **params}
        self._data.setdefault("entry", name)
        return self

    def entry(self, *names: str) -> Self:
        """Set the entry node(s) (default: the first node added)."""
        self._data["entry"] = names[0] if len(names) == 1 else list(names)
        return self

    def edge(
        self, source: str | list[str], target: str, *, map: str | None = None, item: str = "item"
    ) -> Self:
        """Add an edge; ``target="end"`` finishes; a list ``source`` joins branches.

        With ``map="field"``, ``target`` runs once per item of that list field, in
        parallel, each run seeing the item as ``{<item>}`` (a fan-out).
        """
        edge: dict[str, Any] = {"from": source, "to": target}
        if map is not None:
            edge.update({"map": map, "as": item})
        self._data["edges"].append(edge)
        return self

    def route(
        self,
        source: str,
        router: str,
        *,
        branches: dict[str, str],
        threshold: float = 0.5,
        name: str | None = None,
        **params: Any,
    ) -> Self:
        """After ``source``, run a router and follow ``branches[choice]``."""
        route: dict[str, Any] = {
            "from": source,
            "router": {"type": router, "threshold": threshold, **params},
            "branches": branches,
        }
        if name:
            route["name"] = name
        self._data["routes"].append(route)
        return self

    def settings(self, **settings: Any) -> Self:
        """Set run settings (``max_steps``, ``privacy``, ``capture_content``, ``budget``)."""
        self._settings.update(settings)
        return self

    def to_spec(self) -> FlowSpec:
        """Validate and return the spec (raises :class:`SpecError` with a path)."""
        data = {k: v for k, v in self._data.items() if v not in ({}, [], "") or k == "nodes"}
        if self._settings:
            data["settings"] = self._settings
        return parse_spec(data)

    def compile(self, **kwargs: Any) -> Any:
        """Shortcut for :func:`tandemlm.flows.compile_flow` on this builder."""
        from tandemlm.flows.compiler import compile_flow

        return compile_flow(self.to_spec(), **kwargs)

