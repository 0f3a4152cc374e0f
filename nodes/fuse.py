"""``fuse``: combine several models' answers into one (vote, weighted, aggregate, best_of)."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import Field, model_validator

from tandemlm.core.state import FlowState, lookup
from tandemlm.core.node import Node, NodeCall
from tandemlm.nodes.generate import answer_update
from tandemlm.models.call import call_model

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
    """Fuse the outputs in ``inputs`` into the final answer.

    Args:
        inputs: fields written by parallel ``generate`` nodes.
        method: ``vote`` (most common normalised answer; ties go to higher confidence),
            ``weighted`` (votes weighted by each answer's mean token probability),
            ``aggregate`` (``model`` writes a combined answer), ``best_of`` (``model``
            verifies each answer; highest P(yes) wins).
        model: aggregator or verifier model (``aggregate`` / ``best_of``).
    """

    type_name = "fuse"

    inputs: list[str] = Field(min_length=1, max_length=32)
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

    def reads(self) -> set[str]:
        return set(self.inputs)

    def writes(self) -> set[str]:
        return {self.output}

    def _candidates(self, state: FlowState) -> list[dict[str, Any]]:
        meta = state.get("meta") or {}
        out = []
        for name in self.inputs:
            text = lookup(state, name)
            if text is None:
                continue
            info = meta.get(name) or {}
            conf = info.get("confidence") or {}
            out.append(
                {
                    "field": name,
                    "text": str(text),
                    "model": info.get("model"),
                    "confidence": float(conf.get("mean_prob", 1.0)) if conf.get("tokens") else 1.0,
                    "key": normalise(str(text)),
                }
            )
        return out

    async def run(self, state: FlowState, call: NodeCall) -> dict[str, Any]:
        candidates = self._candidates(state)
        if not candidates:
            raise ValueError(f"none of {self.inputs} has an answer to fuse")
        update: dict[str, Any] = {}
        if self.method in ("vote", "weighted"):
            chosen, detail = self._vote(candidates, weighted=self.method == "weighted")
            text, model = chosen["text"], chosen["model"]
        elif self.method == "aggregate":
            text, detail, update = await self._aggregate(state, call, candidates)
            model = self.model
        else:
            chosen, detail, update = await self._best_of(state, call, candidates)
            text, model = chosen["text"], chosen["model"]
        decision = {
            "router": f"fuse:{self.method}",
            "choice": model,
            "reason": detail["reason"],
            "details": {k: v for k, v in detail.items() if k != "reason"},
        }
        if self.output == "answer":
            update.update(answer_update(text, model))
        else:
            update["vars"] = {self.output: text}
        update["steps"] = [
            {"node": call.name, "model": model, "output": self.output, "decision": decision}
        ]
        return update

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
        self, state: FlowState, call: NodeCall, candidates: list[dict[str, Any]]
    ) -> tuple[str, dict[str, Any], dict[str, Any]]:
        listing = "\n".join(f"{i + 1}. {c['text']}" for i, c in enumerate(candidates))
        prompt = AGGREGATE_PROMPT.format(question=state.get("input", ""), candidates=listing)
        reply = await call_model(
            call,
            str(self.model),
            [SystemMessage(content="You combine answers."), HumanMessage(content=prompt)],
        )
        return (
            reply.text,
            {"reason": f"{self.model} aggregated {len(candidates)} answers"},
            {**reply.usage()},
        )

    async def _best_of(
        self, state: FlowState, call: NodeCall, candidates: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        from tandemlm.core.state import merge_usage
        from tandemlm.nodes.routers._yesno import p_yes

        usage: dict[str, Any] = {}
        scores = []
        for c in candidates:
            prompt = VERIFY_PROMPT.format(question=state.get("input", ""), answer=c["text"])
            reply = await call_model(
                call,
                str(self.model),
                [
                    SystemMessage(content="Reply with one word: Yes or No."),
                    HumanMessage(content=prompt),
                ],
                logprobs=True,
                max_tokens=2,
            )
            usage = merge_usage(usage, reply.usage()["usage"])
            scores.append(p_yes(reply))
        best = max(range(len(candidates)), key=lambda i: scores[i])
        detail = {
            "reason": f"{self.model} rated {candidates[best]['field']} best (P(yes)={scores[best]:.3f})",
            "p_yes": {c["field"]: round(s, 4) for c, s in zip(candidates, scores, strict=True)},
        }
        return candidates[best], detail, {"usage": usage}
