"""``arbitrate``: when two models' answers disagree, the evidence decides (or nobody does).

Knowledge conflicts (survey 5.2.2): the SLM answers from local documents, the LLM from
what it learned; the two can disagree, and either can be the outdated one. The node
extracts a short answer from each (the first sentence, citations removed) and compares
them (:func:`agree`: yes/no polarity, then the numbers the question does not already
have, then word overlap). When they agree, the first answer stands and no model is called.
When they disagree, ``model`` reads the retrieved evidence and both answers and replies
``A [source]``, ``B [source]`` or ``NEITHER``, twice with the answers swapped
(``both_orders``: a verdict that follows the position is no verdict). The supported answer
is returned with a citation (the first source the arbiter named that holds the short
answer, by ``cite_check``'s lexical test, else the first evidence source that does, else
none), or a reply that says the sources do not settle it (choice ``undecided``). The
decision (kind ``arbitrate``) records both short answers, the verdicts and the cited
source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import ConfigDict, Field

from tandemlm.core.ledger import meta_of
from tandemlm.core.node import Decision, Node, NodeCall, NodeResult, Port
from tandemlm.core.state import lookup
from tandemlm.errors import ModelUnavailableError
from tandemlm.nodes.grounding import lexical_support, numbers, source_texts, words
from tandemlm.nodes.multihop import passages

SYSTEM = "You check answers against source passages. You are strict and brief."
PROMPT = (
    "Passages (each starts with its source id):\n{passages}\n\n"
    "Question: {question}\n\nAnswer A: {a}\nAnswer B: {b}\n\n"
    "The two answers disagree. Which one do the passages support? If passages contradict "
    "each other, an archived, older or unofficial passage loses to the current policy or "
    "product page. Reply with one line: 'A [source id]', 'B [source id]', or 'NEITHER' if "
    "the passages support neither answer."
)
UNDECIDED = (
    "I cannot tell which answer is right: the sources do not settle it. One answer says: "
    "{a} The other says: {b}"
)
_CITE = re.compile(r"\s?\[[^\[\]\n]{1,300}\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_VERDICT = re.compile(r"^\W*(?:answer\s+)?(A|B|NEITHER|NONE)\b", re.IGNORECASE)
_POLARITY = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


def short_answer(text: str) -> str:
    """The first sentence of ``text`` without citation markers (an ``Answer:`` line wins)."""
    for line in text.splitlines():
        if line.strip().lower().startswith(("answer:", "short answer:")):
            return _CITE.sub("", line.split(":", 1)[1]).strip()
    plain = _CITE.sub("", text).strip()
    first = _SENTENCE.split(plain, maxsplit=1)[0] if plain else ""
    return first.strip()


def _numbers_in_order(text: str, skip: set[str]) -> list[str]:
    out: list[str] = []
    for raw in re.findall(r"\d+(?:[.,]\d+)*", text):
        value = next(iter(numbers(raw)))
        if value not in skip and value not in out:
            out.append(value)
    return out[:3]


def agree(a: str, b: str, question: str = "") -> bool:
    """Whether two short answers to ``question`` say the same thing.

    Yes/no answers must have the same polarity. Answers with numbers must give the same
    numbers in the same order (at most the first three, ignoring numbers the question
    has, such as the ``2`` of "Ridgeline 2P"): ``30 days`` and ``within 30 days`` agree,
    ``1-2 days`` and ``2-3 days`` do not. Others need half their content words in common.
    When in doubt they disagree: that costs one arbiter call, a false agreement costs the
    right answer.
    """
    pa, pb = _POLARITY.match(a), _POLARITY.match(b)
    if pa and pb and pa.group(1).lower() != pb.group(1).lower():
        return False
    skip = numbers(question)
    na, nb = _numbers_in_order(a, skip), _numbers_in_order(b, skip)
    if na or nb:
        if na and nb:
            return na == nb
        return bool(pa and pb)
    if pa and pb:
        return True
    wa, wb = words(a) - words(question), words(b) - words(question)
    if not wa or not wb:
        return _norm(a) == _norm(b)
    return len(wa & wb) / min(len(wa), len(wb)) >= 0.5


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def parse_verdict(text: str) -> tuple[str | None, list[str]]:
    """``("A"|"B"|None, cited ids)`` from an arbiter reply (None: neither, or unreadable)."""
    ids = [m.group(0).strip()[1:-1].strip() for m in _CITE.finditer(text)]
    for line in text.strip().splitlines():
        match = _VERDICT.match(line)
        if match:
            word = match.group(1).upper()
            return (word if word in ("A", "B") else None), ids
    return None, ids


def supporting_source(answer: str, named: list[str], hits: list[dict[str, Any]],
                      question: str) -> str | None:
    """The source to cite for ``answer``: the first one the arbiter named that holds it,
    else the first evidence source that does (``cite_check``'s lexical test), else None."""
    texts = source_texts(hits)
    for source in [*named, *texts]:
        if source in texts and lexical_support(answer, texts[source], question):
            return source
    return None


class Arbitrate(Node):
    """Compare two answers; on disagreement let ``model`` pick the one the evidence supports.

    Args:
        inputs: the two answer fields, e.g. ``[local_answer, remote_answer]`` (the spec key;
            the Python attribute is ``candidates``). The first wins when they agree.
        evidence: retrieved hits the arbiter reads (a ``retrieve`` output).
        model: the arbiter (usually the LLM; it sees the evidence and both answers).
        max_chars: evidence shown to the arbiter.
        output: field to write (``answer`` makes it the final answer).
        undecided: reply when the evidence supports neither (``{a}``, ``{b}``: the short
            answers).
        both_orders: ask twice, the answers swapped, and decide only when both verdicts
            name the same answer (small judges tend to pick whichever answer comes first).
    """

    type_name = "arbitrate"

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    candidates: list[str] = Field(alias="inputs", min_length=2, max_length=2)
    evidence: str = "evidence"
    model: str
    max_chars: int = Field(4000, ge=200, le=100_000)
    output: str = "answer"
    undecided: str = Field(UNDECIDED, max_length=4000)
    max_tokens: int = Field(32, ge=2, le=512)
    both_orders: bool = True

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        return dict.fromkeys(sorted({"input", self.evidence, *self.candidates}), Any)

    async def _ask(self, call: NodeCall, state: Mapping[str, Any], hits: list[dict[str, Any]],
                   a: str, b: str) -> tuple[int | None, str, list[str]]:
        """One verdict: (0 for ``a``, 1 for ``b``, None for neither/no reply), reply, ids."""
        prompt = PROMPT.format(passages=passages(hits, self.max_chars), question=state.get("input", ""), a=a, b=b)
        try:
            reply = await call.chat(self.model, [SystemMessage(content=SYSTEM), HumanMessage(content=prompt)],
                                    max_tokens=self.max_tokens)
        except ModelUnavailableError as exc:
            call.error(f"arbiter failed: {exc}")
            return None, "", []
        verdict, ids = parse_verdict(reply.text)
        return (None if verdict is None else "AB".index(verdict)), reply.text, ids

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(str, doc="the arbitrated answer")}

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        first, second = self.candidates
        texts = [str(lookup(state, f) or "") for f in (first, second)]
        shorts = [short_answer(t) for t in texts]
        models = [meta_of(state, f).get("model") for f in (first, second)]
        said = {first: shorts[0], second: shorts[1]}
        if agree(shorts[0], shorts[1], str(state.get("input") or "")):
            return NodeResult(
                outputs={self.output: texts[0]},
                decision=Decision(kind="arbitrate", choice="agree",
                                  reason=f"both answers say {shorts[0]!r}",
                                  details={"answers": said}),
                credit=models[0], meta={self.output: meta_of(state, first)},
            )
        hits = list(lookup(state, self.evidence) or [])
        known = {str(h.get("source") or h.get("id")) for h in hits}
        orders = [(0, 1), (1, 0)] if self.both_orders else [(0, 1)]
        picks: list[int | None] = []
        replies: list[str] = []
        cited: list[str] = []
        for x, y in orders:
            pick, text, ids = await self._ask(call, state, hits, shorts[x], shorts[y])
            picks.append(None if pick is None else (x, y)[pick])
            replies.append(text[:200])
            cited += [i for i in ids if i in known and i not in cited]
        details: dict[str, Any] = {"answers": said, "verdict": replies if self.both_orders else replies[0],
                                   "sources": cited}
        reason = f"{first} says {shorts[0]!r}, {second} says {shorts[1]!r}: "
        if None in picks or len(set(picks)) > 1:
            text = self.undecided.replace("{a}", shorts[0]).replace("{b}", shorts[1])
            why = "the evidence supports neither" if set(picks) == {None} else (
                "the arbiter's verdicts depend on the order of the answers" if None not in picks
                else "the arbiter gave no verdict in one order")
            return NodeResult(
                outputs={self.output: text},
                decision=Decision(kind="arbitrate", choice="undecided", reason=reason + why, details=details),
            )
        index = picks[0]
        assert index is not None
        chosen = texts[index]
        source = supporting_source(shorts[index], cited, hits, str(state.get("input") or ""))
        details["cited"] = source
        if source and f"[{source}]" not in chosen:
            chosen = f"{chosen.rstrip()} [{source}]"
        field = self.candidates[index]
        return NodeResult(
            outputs={self.output: chosen},
            decision=Decision(kind="arbitrate", choice=field,
                              reason=reason + f"the evidence supports {field}"
                              + (f" [{source}]" if source else ""), details=details),
            credit=models[index], meta={self.output: meta_of(state, field)},
        )
