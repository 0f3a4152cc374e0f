"""``retrieve``: search a store with a query template and put the hits into the state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, field_validator

from tandemlm.core.node import Node, NodeCall, Port
from tandemlm.core.state import merge_evidence
from tandemlm.errors import SpecError
from tandemlm.nodes.template import fields, render
from tandemlm.stores.traced import traced_search

EVIDENCE = "evidence"


def get_store(call: NodeCall, name: str) -> Any:
    """The store ``name`` from the run's context; :class:`SpecError` when it is missing."""
    stores = call.context.stores
    if name not in stores:
        known = ", ".join(sorted(stores)) or "none"
        raise SpecError(
            f"nodes.{call.name}.store",
            f"store {name!r} was not built or passed to compile_flow(stores=...) (have: {known})",
        )
    return stores[name]


class Retrieve(Node):
    """Search ``store`` for ``query`` and write the hits to ``output``.

    Args:
        store: store name from the flow's ``stores``.
        query: query template, e.g. ``"{input}"`` or ``"{subquestion}"`` (in a map fan-out).
            A query that renders empty searches for the raw ``input``.
        k: number of hits.
        where: metadata filter in Chroma's ``where`` language, e.g. ``{folder: policies}``.
        min_score: drop hits scoring below this similarity.
        output: the field for the hits (a list of ``{id, text, metadata, score, source,
            query}``), ``evidence`` by default. It is an aggregate: hits written by several
            executions (parallel branches, a ``map`` fan-out) are merged, de-duplicated by
            id, the best score kept.

    Each hit also records the ``query`` that found it. The search runs in a
    ``retrieval <store>`` span.
    """

    type_name = "retrieve"

    store: str
    query: str = Field("{input}", max_length=10_000)
    k: int = Field(4, ge=1, le=100)
    where: dict[str, Any] | None = None
    min_score: float | None = Field(None, ge=-1.0, le=1.0)
    output: str = EVIDENCE

    @field_validator("where")
    @classmethod
    def _where(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from tandemlm.stores._where import check_where

            try:
                check_where(value)
            except SpecError as exc:
                raise ValueError(str(exc)) from None
        return value

    def store_refs(self) -> dict[str, str]:
        return {"store": self.store}

    def inputs(self) -> dict[str, Any]:
        return dict.fromkeys(sorted(fields(self.query)), Any)

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(list, reducer=merge_evidence, doc="retrieved passages")}

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> dict[str, Any]:
        store = get_store(call, self.store)
        query = render(self.query, state).strip() or str(state.get("input", ""))
        found = await traced_search(self.store, store, query, self.k, self.where,
                                    capture=call.context.capture_content,
                                    redactor=call.context.extras.get("redact"))
        hits = [
            {**hit.to_dict(), "query": query}
            for hit in found
            if self.min_score is None or hit.score >= self.min_score
        ]
        return {self.output: hits}
