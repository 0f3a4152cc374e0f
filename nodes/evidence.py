"""``evidence``: merge retrieved hits into a cited context; ``citations``: check the answer."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from tandemlm.core.state import FlowState, lookup, write
from tandemlm.core.node import Node, NodeCall


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

    def reads(self) -> set[str]:
        return {self.field}

    def writes(self) -> set[str]:
        return {self.output, self.sources_output}

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
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
        update: dict[str, Any] = write(self.output, context)
        update.setdefault("vars", {})[self.sources_output] = sources
        update["steps"] = [{"node": call.name, "output": self.output}]
        return update


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
    labelled: the model did not cite them).

    Args:
        sources: the field with the known source ids (from ``evidence``).
        output: state field for the cited ids.
        on_missing: ``ignore`` or ``append``.
    """

    type_name = "citations"

    sources: str = "sources"
    output: str = "citations"
    on_missing: str = Field("ignore", pattern="^(ignore|append)$")

    def reads(self) -> set[str]:
        return {"answer", self.sources}

    def writes(self) -> set[str]:
        return {self.output, "answer"} if self.on_missing == "append" else {self.output}

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        answer = str(state.get("answer") or "")
        known = [str(s) for s in (lookup(state, self.sources) or [])]
        found = cited(answer, known)
        update: dict[str, Any] = write(self.output, found)
        if not found and known and self.on_missing == "append":
            listed = ", ".join(f"[{s}]" for s in known)
            update["answer"] = f"{answer}\n\nSources consulted: {listed}"
        update["steps"] = [{"node": call.name, "output": self.output}]
        return update
