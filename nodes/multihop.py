"""``iterative_retrieve``: retrieve, let a model pick the next search from what was found, repeat.

An IRCoT-style loop for multi-hop questions: the first search uses the question; after
each search the model (usually the SLM) reads the passages found so far and names the fact
still missing (``SEARCH: <query>``; ``DONE`` also ends the loop). A question such as
"How much is shipping for the tent with two doors?" needs the tent's price before the
shipping table is useful: one search with the whole question rarely finds both.

Bounded: at most ``max_hops`` searches; the loop also stops when the model repeats a
search or its reply names none. The default prompt does not ask the model whether it is
done: small models answer "done" too early, and an extra search costs little.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import Field

from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.core.state import merge_evidence
from tandemlm.errors import ModelUnavailableError
from tandemlm.nodes.retrieve import get_store
from tandemlm.nodes.template import fields, render
from tandemlm.stores.traced import traced_search

SYSTEM = "You plan searches in a knowledge base. You never answer the question yourself."
PROMPT = (
    "Question: {input}\n\n"
    "Passages found so far:\n{passages}\n\n"
    "Searches done: {searches}\n\n"
    "Which fact needed to answer the question is not in the passages yet? Write one short "
    "search for it, using names the passages revealed (a product, a policy, a place).\n"
    "Reply with exactly one line: SEARCH: <query>"
)
# Worked turns shown before the real one, from another domain on purpose: they show the
# form (the next search names what the passages revealed), not answers.
EXAMPLES = (
    (
        "What is the late fee for the book that won the 2019 prize?",
        "[prizes.md] The 2019 prize went to the novel 'Salt Roads'.",
        "SEARCH: late fee for borrowed novels",
    ),
    (
        "How far is the museum from the hotel with a rooftop pool, and when does it open?",
        "[hotels/harbour.md] The Harbour Hotel has a rooftop pool, 2 km from the museum.",
        "SEARCH: museum opening hours",
    ),
)
_SEARCH = re.compile(r"^\W*(?:search|query|next(?: search| question)?)\s*[:\-]\s*(.+)$", re.IGNORECASE)
_DONE = re.compile(r"^\W*done\b", re.IGNORECASE)


def parse_next(text: str) -> str | None:
    """The next search in a planner reply, or None for ``DONE`` / no usable line.

    Accepts ``SEARCH: q`` (also ``Query:``/``Next question:``) on any line; a reply whose
    first line is a bare question (ends with ``?``) counts as a search too.
    """
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        if _DONE.match(line):
            return None
        match = _SEARCH.match(line)
        if match:
            query = match.group(1).strip().strip("\"'` ")
            return query[:300] or None
    if lines and lines[0].endswith("?") and len(lines[0]) <= 300:
        return lines[0].strip("\"'` ")
    return None


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


_EXAMPLE_KEYS = {_key(reply.split(":", 1)[1]) for _, _, reply in EXAMPLES if ":" in reply}


def passages(hits: list[dict[str, Any]], max_chars: int) -> str:
    """``[source] text`` blocks, in the order found, within ``max_chars``."""
    blocks: list[str] = []
    used = 0
    for hit in hits:
        text = " ".join(str(hit.get("text", "")).split())
        block = f"[{hit.get('source') or hit.get('id')}] {text}"
        if blocks and used + len(block) > max_chars:
            break
        blocks.append(block[:max_chars])
        used += len(block) + 1
    return "\n".join(blocks) if blocks else "(none yet)"


class IterativeRetrieve(Node):
    """Search ``store`` up to ``max_hops`` times; ``model`` picks each next search.

    Writes ``output`` (the hits of every hop, an aggregate like ``retrieve``'s, each hit
    with the ``query`` and ``hop`` that found it) and ``hops_output`` (one
    ``{hop, query, sources, new}`` record per search). Why the loop stopped (``done``,
    ``repeat``, ``max_hops``, ``no_reply``) is in the ledger entry (``stopped``).

    Args:
        store: store name from the flow's ``stores``.
        model: the planner (normally the SLM).
        query: template of the first search (default the question).
        k: hits per search.
        max_hops: the most searches (1 = plain retrieval).
        max_chars: passages shown to the planner (its context is small).
        prompt: planner prompt; ``{passages}`` and ``{searches}`` are filled in, then state
            fields.
        system: planner system prompt.
        where: metadata filter for every search (Chroma's ``where`` language).
        output: field for the hits.
        hops_output: field for the hop records.
        max_tokens: cap of each planner reply.
        examples: show the two worked turns (another domain) before the real one; a search
            copied from them is ignored.
        fresh: later searches return ``k`` passages not found by earlier ones (a search
            for a bridge fact otherwise tends to find the first hop's pages again).
    """

    type_name = "iterative_retrieve"

    store: str
    model: str
    query: str = Field("{input}", max_length=10_000)
    k: int = Field(3, ge=1, le=50)
    max_hops: int = Field(3, ge=1, le=8)
    max_chars: int = Field(2400, ge=200, le=50_000)
    prompt: str = Field(PROMPT, max_length=20_000)
    system: str | None = Field(SYSTEM, max_length=20_000)
    where: dict[str, Any] | None = None
    output: str = "evidence"
    hops_output: str = "hops"
    max_tokens: int = Field(48, ge=4, le=1024)
    examples: bool = True
    fresh: bool = True

    def store_refs(self) -> dict[str, str]:
        return {"store": self.store}

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def _prompt_fields(self) -> set[str]:
        return (fields(self.prompt) | fields(self.system or "")) - {"passages", "searches"}

    def inputs(self) -> dict[str, Any]:
        names = self._prompt_fields() | fields(self.query) | {"input"}
        return dict.fromkeys(sorted(names), Any)

    def outputs(self) -> dict[str, Port]:
        return {
            self.output: Port(list, reducer=merge_evidence, doc="retrieved passages"),
            self.hops_output: Port(list, doc="searches made"),
        }

    def messages(self, state: Mapping[str, Any], found: list[dict[str, Any]],
                 asked: list[str]) -> list[BaseMessage]:
        """The planner's messages after the searches ``asked`` found ``found``."""
        extra = {"passages": passages(found, self.max_chars), "searches": "; ".join(asked)}
        view = {**state, **extra}
        out: list[BaseMessage] = []
        if self.system:
            out.append(SystemMessage(content=render(self.system, view)))
        if self.examples:
            for question, shown, reply in EXAMPLES:
                turn = {"input": question, "passages": shown, "searches": question}
                out.append(HumanMessage(content=render(self.prompt, {**state, **turn})))
                out.append(AIMessage(content=reply))
        out.append(HumanMessage(content=render(self.prompt, view)))
        return out

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        store = get_store(call, self.store)
        query = render(self.query, state).strip() or str(state.get("input", ""))
        found: list[dict[str, Any]] = []
        seen: set[str] = set()
        asked: list[str] = []
        hops: list[dict[str, Any]] = []
        stopped = "max_hops"
        for hop in range(1, self.max_hops + 1):
            asked.append(query)
            want = self.k + (len(seen) if self.fresh else 0)
            hits = await traced_search(self.store, store, query, min(want, 100), self.where)
            if self.fresh:  # each search brings passages not found before
                hits = [h for h in hits if h.id not in seen][: self.k]
            new = [h.to_dict() | {"query": query, "hop": hop} for h in hits if h.id not in seen]
            seen.update(h["id"] for h in new)
            found.extend(new)
            hops.append({"hop": hop, "query": query, "sources": [h.source for h in hits],
                         "new": len(new)})
            if hop == self.max_hops:
                break
            try:
                reply = await call.chat(self.model, self.messages(state, found, asked),
                                        max_tokens=self.max_tokens)
            except ModelUnavailableError as exc:
                call.error(f"planner failed, stopping after hop {hop}: {exc}")
                stopped = "no_reply"
                break
            nxt = parse_next(reply.text)
            if nxt is not None and self.examples and _key(nxt) in _EXAMPLE_KEYS:
                nxt = None  # copied from a worked turn, not a search for this question
            if nxt is None:
                stopped = "done" if _DONE.search(reply.text) else "no_reply"
                break
            if _key(nxt) in {_key(q) for q in asked}:
                stopped = "repeat"
                break
            query = nxt
        return NodeResult(
            outputs={self.output: found, self.hops_output: hops},
            step={"hops": len(hops), "stopped": stopped},
        )
