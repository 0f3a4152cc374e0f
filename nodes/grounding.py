"""``cite_check``: keep only the citations whose source holds the cited claim.

A model told to cite ``[source]`` ids often cites a passage it was shown but did not use.
For every citation (a known source id, or a bracketed path or file name the evidence does
not hold, which is unsupported by definition) the node takes the claim it is attached to (the text since the previous
citation or sentence end) and checks it against the cited source's passages in the
evidence:

- ``method: lexical`` (default, no model call): the claim's numbers that are not in the
  question must appear in the source; a claim without such numbers needs a third of its
  content words (those not in the question) in the source.
- ``method: model``: ``model`` answers "Does the passage support the claim?" and the
  citation stands when P(yes) >= ``min_p_yes`` (one short call per citation).

``mode`` says what happens to an unsupported citation: ``flag`` (answer unchanged, listed
in ``unsupported``), ``drop`` (the ``[source]`` is removed from the answer) or ``fix``
(replaced by the evidence source that does support the claim, else removed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from tandemlm.core.ledger import meta_of
from tandemlm.core.node import Decision, Node, NodeCall, NodeResult, Port
from tandemlm.core.state import lookup

_CITE = re.compile(r"\s?\[([^\[\]\n]{1,300})\]")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_WORD = re.compile(r"[a-z][a-z\-']{2,}")
_BOUNDARY = re.compile(r"(?<=[.!?;\n])\s+")
_STOP_WORDS = (
    "the and for are was were with that this from your you our can has have had not but "
    "its their they them then than there here what which when where who how why does did "
    "will would should could into onto about after before within without also only just "
    "per each any all some more most less very yes must may might been being is it"
)
STOP = frozenset(_STOP_WORDS.split())
SUPPORT_PROMPT = (
    "Passage from {source}:\n{passage}\n\nClaim: {claim}\n\n"
    "Does the passage state the facts in the claim? Answer Yes or No."
)


def numbers(text: str) -> set[str]:
    """Numbers in ``text``, normalised (``349.00`` -> ``349``, ``1,500`` -> ``1500``)."""
    out = set()
    for raw in _NUMBER.findall(text):
        value = raw.replace(",", "")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        out.add(value)
    return out


def words(text: str) -> set[str]:
    """Content words of ``text`` (lower case, no stop words, crude plural folding)."""
    return {w.rstrip("s") for w in _WORD.findall(text.lower()) if w not in STOP}


def lexical_support(claim: str, source_text: str, question: str = "") -> bool:
    """Whether ``source_text`` holds ``claim`` (see the module docstring)."""
    claim_numbers = numbers(claim) - numbers(question)
    if claim_numbers:
        return bool(claim_numbers & numbers(source_text))
    key = words(claim) - words(question)
    if not key:
        return True  # nothing beyond the question to check
    return len(key & words(source_text)) / len(key) >= 1 / 3


def claims(answer: str) -> list[tuple[int, int, str, str]]:
    """``(start, end, source, claim)`` for every ``[source]`` in ``answer``.

    The claim is the last sentence between the previous citation and the marker; a marker
    right after another one shares its claim.
    """
    out: list[tuple[int, int, str, str]] = []
    last_end = 0
    claim = ""
    for match in _CITE.finditer(answer):
        pieces = [p for p in _BOUNDARY.split(answer[last_end:match.start()]) if p.strip(" ,;:.")]
        if pieces:
            claim = _CITE.sub("", pieces[-1]).strip(" ,;:")
        for part in re.split(r"[;,]\s*", match.group(1)):
            out.append((match.start(), match.end(), part.strip(), claim))
        last_end = match.end()
    return out


def looks_like_source(text: str) -> bool:
    """Whether bracketed ``text`` is shaped like a source id (a path or a file name)."""
    return bool(re.search(r"[/\\]|\.[A-Za-z0-9]{1,5}$", text))


def source_texts(hits: list[dict[str, Any]]) -> dict[str, str]:
    """All retrieved text per source id (chunks of one file joined)."""
    texts: dict[str, list[str]] = {}
    for hit in hits:
        source = str(hit.get("source") or hit.get("id"))
        text = str(hit.get("text", ""))
        if text not in texts.setdefault(source, []):
            texts[source].append(text)
    return {source: "\n".join(parts) for source, parts in texts.items()}


class CiteCheck(Node):
    """Check each ``[source]`` citation of ``field`` against the evidence.

    Writes ``output`` (the citations that stand, in order), ``unsupported_output``
    (``{source, claim}`` for each that did not) and, with ``mode: drop`` or ``fix``,
    ``field`` again (rewritten). The decision (kind ``cite_check``) says how many
    citations stood; the answer stays credited to its model.

    Args:
        field: the cited text (default ``answer``).
        evidence: the hits the text was written from (default ``evidence``).
        mode: ``flag``, ``drop`` or ``fix`` (see the module docstring).
        method: ``lexical`` or ``model``.
        model: the checking model for ``method: model`` (usually the SLM).
        min_p_yes: support threshold for ``method: model``.
        output: field for the supported citations.
        unsupported_output: field for the unsupported ones.
    """

    type_name = "cite_check"

    field: str = "answer"
    evidence: str = "evidence"
    mode: Literal["flag", "drop", "fix"] = "fix"
    method: Literal["lexical", "model"] = "lexical"
    model: str | None = None
    min_p_yes: float = Field(0.5, ge=0.0, le=1.0)
    output: str = "citations"
    unsupported_output: str = "unsupported_citations"

    @model_validator(mode="after")
    def _needs_model(self) -> CiteCheck:
        if self.method == "model" and not self.model:
            raise ValueError("method 'model' needs 'model' (the checking model)")
        return self

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model} if self.model and self.method == "model" else {}

    def inputs(self) -> dict[str, Any]:
        return {"input": str, self.field: str, self.evidence: list}

    def outputs(self) -> dict[str, Port]:
        ports = {
            self.output: Port(list, doc="supported citations"),
            self.unsupported_output: Port(list, doc="unsupported citations"),
        }
        if self.mode != "flag":
            ports[self.field] = Port(str)
        return ports

    async def supported(self, call: NodeCall, claim: str, source: str, text: str,
                        question: str) -> bool:
        """Whether ``text`` (of ``source``) supports ``claim``."""
        if self.method == "lexical":
            return lexical_support(claim, text, question)
        from tandemlm.nodes.routers._yesno import ask_yes_no

        view = {"source": source, "passage": text[:3000], "claim": claim}
        yes, _ = await ask_yes_no(call, str(self.model), "Reply with one word: Yes or No.",
                                  SUPPORT_PROMPT, view)
        return yes >= self.min_p_yes

    async def other_source(self, call: NodeCall, claim: str, cited: str, texts: dict[str, str],
                           question: str) -> str | None:
        """The first other evidence source that supports ``claim`` (lexical pre-check, then
        the model for ``method: model``)."""
        for other, text in texts.items():
            if other == cited or not lexical_support(claim, text, question):
                continue
            if self.method == "lexical" or await self.supported(call, claim, other, text, question):
                return other
        return None

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        answer = str(lookup(state, self.field) or "")
        question = str(state.get("input") or "")
        texts = source_texts(list(lookup(state, self.evidence) or []))
        kept: list[str] = []
        unsupported: list[dict[str, str]] = []
        edits: dict[tuple[int, int], list[str]] = {}
        for start, end, source, claim in claims(answer):
            if source not in texts and not looks_like_source(source):
                continue  # a bracketed word, not a citation: left alone
            ok = source in texts and await self.supported(call, claim, source, texts[source], question)
            replacement = source if ok else None
            if not ok:
                unsupported.append({"source": source, "claim": claim})
                if self.mode == "fix":
                    replacement = await self.other_source(call, claim, source, texts, question)
                    if replacement:
                        unsupported[-1]["moved_to"] = replacement
            if replacement and replacement not in kept:
                kept.append(replacement)
            edits.setdefault((start, end), []).append(replacement or "")
        outputs: dict[str, Any] = {self.output: kept, self.unsupported_output: unsupported}
        if self.mode != "flag":
            outputs[self.field] = rewrite(answer, edits)
        total = sum(len(v) for v in edits.values())
        moved = sum(1 for u in unsupported if u.get("moved_to"))
        reason = f"{total - len(unsupported)} of {total} citations supported by their source"
        if unsupported and self.mode != "flag":
            reason += f"; {moved} moved to a supporting source, {len(unsupported) - moved} removed"
        return NodeResult(
            outputs=outputs,
            decision=Decision(
                kind="cite_check", choice="ok" if not unsupported else self.mode,
                reason=reason,
                details={"unsupported": unsupported[:20]},
            ),
            credit=meta_of(state, self.field).get("model"),
        )


def rewrite(answer: str, edits: dict[tuple[int, int], list[str]]) -> str:
    """``answer`` with each citation marker replaced by its kept sources (or removed)."""
    out: list[str] = []
    last = 0
    for (start, end), sources in sorted(edits.items()):
        out.append(answer[last:start])
        kept = list(dict.fromkeys(s for s in sources if s))
        if kept:
            out.append(" [" + "; ".join(kept) + "]")
        last = end
    out.append(answer[last:])
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", "".join(out))
