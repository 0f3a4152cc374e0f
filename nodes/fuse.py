"""``fuse``: combine several models' answers into one (vote, weighted, aggregate, best_of)."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import ConfigDict, Field, model_validator

from tandemlm.core.ledger import meta_of
from tandemlm.core.node import Decision, Node, NodeCall, NodeResult, Port
from tandemlm.core.state import lookup

_FINAL = re.compile(r"(?:answer|####)\s*[:=]?\s*\$?(-?[\d,]*\.?\d+)", re.IGNORECASE)
_NUM = re.compile(r"-?\d[\d,]*\.?\d*")


def normalise(text: str) -> str:
    """Comparable form of an answer: its final number if it has one, else folded words."""
    found = _FINAL.findall(text) or _NUM.findall(text)
    if found:
        number = found[-1].replace(",", "").rstrip(".")
        try:
            value = float(number)
            return str(int(value)) if value.is_integer() else str(value)
        except ValueError:
            pass
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


AGGREGATE_PROMPT = (
    "Question: {question}\n\nCandidate answers from several assistants:\n{candidates}\n\n"
    "Write the single best answer, combining what the candidates get right."
)
VERIFY_PROMPT = "Question: {question}\n\nAnswer: {answer}\n\nIs this answer correct? Yes or No."


class Fuse(Node):
    """Fuse the outputs named in ``inputs`` into one answer.

    Args:
        inputs: fields written by parallel ``generate`` nodes (the spec key; the Python
            attribute is ``candidates``, since ``inputs()`` is the node's declaration).
        method: ``vote`` (most common normalised answer; ties go to higher confidence),
            ``weighted`` (votes weighted by each answer's mean token probability),
            ``aggregate`` (``model`` writes a combined answer), ``best_of`` (``model``
            verifies each answer; highest P(yes) wins).
        model: aggregator or verifier model (``aggregate`` / ``best_of``).
        output: field to write (``answer`` makes it the final answer).

    The choice is recorded as a :class:`Decision` of kind ``fuse:<method>`` (the chosen
    model, the reason, votes or P(yes) per candidate); the output is credited to the chosen
    candidate's model (the aggregator for ``aggregate``) and inherits its metadata.
    """

    type_name = "fuse"

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    candidates: list[str] = Field(alias="inputs", min_length=1, max_length=32)
    method: Literal["vote", "weighted", "aggregate", "best_of"] = "vote"
    model: str | None = None
    output: str = "answer"

    @model_validator(mode="after")
    def _needs_model(self) -> Fuse:
        if self.method in ("aggregate", "best_of") and not self.model:
            raise ValueError(f"method {self.method!r} needs 'model' (the aggregator/verifier)")
        return self

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model} if self.model else {}

    def inputs(self) -> dict[str, Any]:
        names = set(self.candidates) | ({"input"} if self.model else set())
        return dict.fromkeys(sorted(names), Any)

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(str, doc="the fused answer")}

    def _candidates(self, state: Mapping[str, Any]) -> list[dict[str, Any]]:
        out = []
        for name in self.candidates:
            text = lookup(state, name)
            if text is None:
                continue
            info = meta_of(state, name)
            conf = info.get("confidence") or {}
            out.append(
                {
                    "field": name,
                    "text": str(text),
                    "model": info.get("model"),
                    "meta": info,
                    "confidence": float(conf.get("mean_prob", 1.0)) if conf.get("tokens") else 1.0,
                    "key": normalise(str(text)),
                }
            )
        return out

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        candidates = self._candidates(state)
        if not candidates:
            raise ValueError(f"none of {self.candidates} has an answer to fuse")
        meta: dict[str, dict[str, Any]] = {}
        if self.method == "aggregate":
            text, detail = await self._aggregate(state, call, candidates)
            model = self.model
        else:
            if self.method == "best_of":
                chosen, detail = await self._best_of(state, call, candidates)
            else:
                chosen, detail = self._vote(candidates, weighted=self.method == "weighted")
            text, model = chosen["text"], chosen["model"]
            meta = {self.output: chosen["meta"]}
        reason = str(detail.pop("reason"))
        return NodeResult(
            outputs={self.output: text},
            decision=Decision(kind=f"fuse:{self.method}", choice=model, reason=reason,
                              details=detail),
            credit=model,
            meta=meta,
        )

    def _vote(
        self, candidates: list[dict[str, Any]], weighted: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        votes: dict[str, float] = defaultdict(float)
        conf: dict[str, float] = defaultdict(float)
        for c in candidates:
            votes[c["key"]] += c["confidence"] if weighted else 1.0
            conf[c["key"]] += c["confidence"]
        best = max(votes, key=lambda k: (votes[k], conf[k]))
        chosen = next(c for c in candidates if c["key"] == best)
        tally = {k: round(v, 4) for k, v in votes.items()}
        return chosen, {
            "reason": f"{votes[best]:.3g} of {sum(votes.values()):.3g} votes for {best!r}",
            "votes": tally,
        }

    async def _aggregate(
        self, state: Mapping[str, Any], call: NodeCall, candidates: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any]]:
        listing = "\n".join(f"{i + 1}. {c['text']}" for i, c in enumerate(candidates))
        prompt = AGGREGATE_PROMPT.format(question=state.get("input", ""), candidates=listing)
        reply = await call.chat(
            str(self.model),
            [SystemMessage(content="You combine answers."), HumanMessage(content=prompt)],
        )
        return reply.text, {"reason": f"{self.model} aggregated {len(candidates)} answers"}

    async def _best_of(
        self, state: Mapping[str, Any], call: NodeCall, candidates: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        from tandemlm.nodes.routers._yesno import p_yes

        scores = []
        for c in candidates:
            prompt = VERIFY_PROMPT.format(question=state.get("input", ""), answer=c["text"])
            reply = await call.chat(
                str(self.model),
                [
                    SystemMessage(content="Reply with one word: Yes or No."),
                    HumanMessage(content=prompt),
                ],
                logprobs=True,
                max_tokens=2,
            )
            scores.append(p_yes(reply))
        best = max(range(len(candidates)), key=lambda i: scores[i])
        detail = {
            "reason": f"{self.model} rated {candidates[best]['field']} best (P(yes)={scores[best]:.3f})",
            "p_yes": {c["field"]: round(s, 4) for c, s in zip(candidates, scores, strict=True)},
        }
        return candidates[best], detail
