"""``evidence``: merge retrieved hits into a cited context; ``citations``: check the answer."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from tandemlm.core.ledger import meta_of
from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.core.state import lookup


def merge_hits(hits: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """De-duplicate by id and by identical text, keep the best ``k`` by score."""
    best: dict[str, dict[str, Any]] = {}
    for hit in hits:
        key = " ".join(str(hit.get("text", "")).split()).lower() or str(hit.get("id"))
        if key not in best or float(hit.get("score") or 0) > float(best[key].get("score") or 0):
            best[key] = hit
    ranked = sorted(best.values(), key=lambda h: (-float(h.get("score") or 0), str(h.get("id"))))
    return ranked[:k]


class Evidence(Node):
    """Merge and de-duplicate hits into a context block whose passages carry source ids.

    Writes ``output`` (text: ``[policies/returns.md] passage...`` per hit, best first,
    within ``max_chars``) and ``sources_output`` (the distinct source ids, in order).

    Args:
        field: the hits to merge (default ``evidence``, where ``retrieve`` appends).
        k: keep at most this many passages.
        max_chars: cap on the context length.
        output: state field for the context text.
        sources_output: state field for the list of source ids.
    """

    type_name = "evidence"

    field: str = "evidence"
    k: int = Field(8, ge=1, le=200)
    max_chars: int = Field(6000, ge=200, le=200_000)
    output: str = "context"
    sources_output: str = "sources"

    def inputs(self) -> dict[str, Any]:
        return {self.field: list}

    def outputs(self) -> dict[str, Port]:
        return {
            self.output: Port(str, doc="cited context"),
            self.sources_output: Port(list, doc="source ids"),
        }

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> dict[str, Any]:
        hits = merge_hits(list(lookup(state, self.field) or []), self.k)
        blocks: list[str] = []
        sources: list[str] = []
        used = 0
        for hit in hits:
            source = str(hit.get("source") or hit.get("id"))
            text = " ".join(str(hit.get("text", "")).split())
            block = f"[{source}] {text}"
            if blocks and used + len(block) > self.max_chars:
                break
            blocks.append(block[: self.max_chars])
            used += len(block) + 2
            if source not in sources:
                sources.append(source)
        context = "\n\n".join(blocks) if blocks else "(no evidence found)"
        return {self.output: context, self.sources_output: sources}


_CITE = re.compile(r"\[([^\[\]\n]{1,300})\]")


def cited(answer: str, sources: list[str]) -> list[str]:
    """Source ids from ``sources`` that ``answer`` cites in square brackets, in order."""
    found: list[str] = []
    for match in _CITE.finditer(answer):
        for part in re.split(r"[;,]\s*", match.group(1)):
            part = part.strip()
            if part in sources and part not in found:
                found.append(part)
    return found


class Citations(Node):
    """Record which sources the answer cites (``[source]``) and optionally list the rest.

    Writes ``output`` with the cited source ids. With ``on_missing: append`` and an answer
    that cites nothing, appends ``Sources consulted: [a], [b]`` to the answer (honestly
    labelled: the model did not cite them); the answer stays credited to its model.

    Args:
        sources: the field with the known source ids (from ``evidence``).
        output: state field for the cited ids.
        on_missing: ``ignore`` or ``append``.
    """

    type_name = "citations"

    sources: str = "sources"
    output: str = "citations"
    on_missing: str = Field("ignore", pattern="^(ignore|append)$")

    def inputs(self) -> dict[str, Any]:
        return {"answer": str, self.sources: list}

    def outputs(self) -> dict[str, Port]:
        ports = {self.output: Port(list, doc="cited source ids")}
        if self.on_missing == "append":
            ports["answer"] = Port(str)
        return ports

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        answer = str(state.get("answer") or "")
        known = [str(s) for s in (lookup(state, self.sources) or [])]
        found = cited(answer, known)
        if not found and known and self.on_missing == "append":
            listed = ", ".join(f"[{s}]" for s in known)
            return NodeResult(
                outputs={self.output: found, "answer": f"{answer}\n\nSources consulted: {listed}"},
                credit=meta_of(state, "answer").get("model"),
            )
        return NodeResult(outputs={self.output: found})
