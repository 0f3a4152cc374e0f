"""``retrieve``: search a store with a query template and put the hits into the state."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from tandemlm.errors import SpecError
from tandemlm.core.state import FlowState, write
from tandemlm.core.node import Node, NodeCall
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
        k: number of hits.
        where: metadata filter in Chroma's ``where`` language, e.g. ``{folder: policies}``.
        min_score: drop hits scoring below this similarity.
        output: ``evidence`` (default) appends to the shared, de-duplicated evidence list,
            which parallel branches can all write; any other name stores this node's hits
            (a list of ``{id, text, metadata, score, source}``) under that name.

    Each hit also records the ``query`` that found it.
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

    def reads(self) -> set[str]:
        return fields(self.query)

    def writes(self) -> set[str]:
        return {self.output}

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        store = get_store(call, self.store)
        query = render(self.query, state).strip() or str(state.get("input", ""))
        found = await traced_search(self.store, store, query, self.k, self.where)
        hits = [
            {**hit.to_dict(), "query": query}
            for hit in found
            if self.min_score is None or hit.score >= self.min_score
        ]
        update: dict[str, Any] = (
            {EVIDENCE: hits} if self.output == EVIDENCE else write(self.output, hits)
        )
        update["steps"] = [{"node": call.name, "output": self.output}]
        return update
