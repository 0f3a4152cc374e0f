"""CoVer-style verification: the LLM answers with reasoning, the SLM checks consistency.

``reasoned_answer`` asks a model for reasoning plus a final ``Answer:`` line (optionally
several samples, and the previous critique on a retry). ``verify`` has a local model judge
whether each sample's reasoning supports its answer (and agrees with evidence when given),
cross-checks the last number of the reasoning against a numeric answer, aggregates
samples weighted by their consistency scores, and decides: accept, retry (the ``flag``
router on ``verification.retry`` sends the flow back) or unverified after ``max_rounds``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import Field

from tandemlm.core.ledger import meta_of
from tandemlm.core.node import Decision, Node, NodeCall, NodeResult, Port
from tandemlm.core.state import lookup
from tandemlm.models.call import ModelReply
from tandemlm.nodes import structured
from tandemlm.nodes.template import fields, render

REASON_SYSTEM = (
    "You are a careful assistant. Reason step by step in a few short sentences, then end "
    "with a final line of the form 'Answer: <answer>'."
)
VERIFY_SYSTEM = "You check answers. You never answer the question yourself."
VERDICT_SCHEMA = {"consistent": "bool", "score": "float", "critique": "str"}
_ANSWER_LINE = re.compile(r"(?im)^.*?\banswer(?:\s+is)?\s*[:：]\s*(.+?)\s*$")
_ANSWER_PREFIX = re.compile(r"(?i)^.*\banswer(?:\s+is)?\s*[:：]\s*")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def split_reasoning(text: str) -> tuple[str, str]:
    """``(reasoning, answer)`` from a reply ending with ``Answer: ...`` (last line otherwise)."""
    matches = list(_ANSWER_LINE.finditer(text))
    if matches:
        last = matches[-1]
        answer = _ANSWER_PREFIX.sub("", last.group(1)).strip().strip("*").strip()
        return text[:last.start()].strip(), answer
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return text.strip(), (lines[-1] if lines else "")


def _number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def numeric_conflict(reasoning: str, answer: str) -> str | None:
    """A critique when the reasoning's last number differs from a numeric answer."""
    if not reasoning:
        return None
    said, reached = _number(answer), _number(reasoning)
    if said is None or reached is None or abs(said - reached) < 1e-9:
        return None
    return f"the reasoning ends with {reached:g} but the answer says {said:g}"


def parse_verdict(text: str) -> tuple[float, str]:
    """``(score, critique)`` from the checker's reply: JSON if possible, else yes/no words."""
    try:
        data = structured.parse(text, VERDICT_SCHEMA)
        score = min(1.0, max(0.0, float(data["score"])))
        if not data["consistent"]:
            score = min(score, 0.4)
        elif score < 0.5:
            score = 0.6
        return score, str(data["critique"]).strip()
    except ValueError:
        pass
    lowered = text.lower()
    if re.search(r"\b(inconsistent|not consistent|contradict\w*|incorrect|wrong|false|no)\b", lowered):
        return 0.2, text.strip()[:300]
    if re.search(r"\b(consistent|correct|yes|true|supports?)\b", lowered):
        return 0.8, text.strip()[:300]
    return 0.5, "the checker's reply was unclear"


class ReasonedAnswer(Node):
    """Ask ``model`` for reasoning and a final answer; include the critique on a retry.

    Args:
        model: the answering model (usually the LLM).
        prompt: the question (template).
        system: system prompt asking for reasoning and an ``Answer:`` line.
        evidence: optional field with evidence (e.g. retrieved passages).
        feedback: the ``verify`` node's output to read a critique from on retries.
        samples: number of answers to sample (for consistency-weighted aggregation).
        output: field that receives ``{reasoning, answer, text, samples}``.
    """

    type_name = "reasoned_answer"

    model: str
    prompt: str = Field("{input}", max_length=100_000)
    system: str = Field(REASON_SYSTEM, max_length=100_000)
    evidence: str | None = None
    feedback: str | None = "verification"
    samples: int = Field(1, ge=1, le=8)
    output: str = "candidate"

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        names = fields(self.prompt) | fields(self.system)
        # on a retry the model sees the critique and its own previous answer
        names |= {f for f in (self.evidence, self.feedback) if f}
        if self.feedback:
            names.add(self.output)
        return dict.fromkeys(sorted(names), Any)

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(dict, doc="reasoning, answer, text and samples")}

    def messages(self, state: Mapping[str, Any]) -> list[BaseMessage]:
        """The messages sent: question, evidence and, on a retry, the critique."""
        parts = [f"Question: {render(self.prompt, state)}"]
        if self.evidence:
            parts.append(f"Evidence:\n{structured_text(lookup(state, self.evidence))}")
        verdict = lookup(state, self.feedback) if self.feedback else None
        previous = lookup(state, self.output)
        if isinstance(verdict, dict) and verdict.get("retry") and isinstance(previous, dict):
            parts.append(
                f"Your previous answer was: {previous.get('answer', '')}\n"
                f"A checker found a problem: {verdict.get('critique', '')}\n"
                "Reconsider carefully and answer again."
            )
        return [SystemMessage(content=self.system), HumanMessage(content="\n\n".join(parts))]

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        messages = self.messages(state)
        replies: list[ModelReply] = await asyncio.gather(
            *(call.chat(self.model, messages) for _ in range(self.samples))
        )
        samples = []
        for reply in replies:
            reasoning, answer = split_reasoning(reply.text)
            samples.append({"reasoning": reasoning, "answer": answer, "text": reply.text})
        # metadata of the first sample (the one ``answer`` and ``reasoning`` come from)
        return NodeResult(outputs={self.output: {**samples[0], "samples": samples}},
                          meta={self.output: replies[0].meta()})


def structured_text(value: Any) -> str:
    """Evidence as text: strings as is, lists one per line, dicts by their text/content."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("text") or value.get("content") or value)
    if isinstance(value, list):
        return "\n".join(f"- {structured_text(v)}" for v in value)
    return str(value)


class Verify(Node):
    """Check reasoning/answer consistency with a (local) model and decide.

    Args:
        model: the checking model (usually the local SLM).
        field: the ``reasoned_answer`` output to check.
        question: the question (template), shown to the checker.
        evidence: optional evidence field the answer must agree with.
        threshold: consistency score at or above which an answer is verified.
        max_rounds: answering rounds allowed; after the last failed one the result is
            marked ``verified: false``.
        output: field for the verdict ``{verified, score, agreement, round, retry,
            critique, answer}``.
        set_answer: also make the chosen answer the flow's answer.

    The decision (score, threshold, accept/retry/unverified, critique) is a typed
    :class:`Decision` of kind ``verify``: it appears on the node span and in
    ``result.decisions``. The answer is credited to the model that wrote ``field``.
    """

    type_name = "verify"

    model: str
    field: str = "candidate"
    question: str = Field("{input}", max_length=100_000)
    evidence: str | None = None
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    max_rounds: int = Field(2, ge=1, le=10)
    output: str = "verification"
    set_answer: bool = True

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        # The node also reads its own previous verdict (the round count); that is node
        # state, not something the checker sees, so it is not declared (no hop, no taint).
        names = {self.field} | fields(self.question) | ({self.evidence} if self.evidence else set())
        return dict.fromkeys(sorted(names), Any)

    def outputs(self) -> dict[str, Port]:
        out = {self.output: Port(dict, doc="the verdict")}
        if self.set_answer:
            out["answer"] = Port(str)
        return out

    def _messages(self, state: Mapping[str, Any], sample: dict[str, Any]) -> list[BaseMessage]:
        parts = [
            f"Question: {render(self.question, state)}",
            f"Reasoning: {sample.get('reasoning') or '(none)'}",
            f"Final answer: {sample.get('answer', '')}",
        ]
        if self.evidence:
            parts.append(f"Evidence:\n{structured_text(lookup(state, self.evidence))}")
        check = "Does the reasoning support the final answer without contradictions"
        check += ", and does it agree with the evidence?" if self.evidence else "?"
        parts.append(f"{check}\n{structured.instruction(VERDICT_SCHEMA)} "
                     "score is 1 for fully consistent, 0 for contradictory.")
        return [SystemMessage(content=VERIFY_SYSTEM), HumanMessage(content="\n\n".join(parts))]

    async def _score(self, call: NodeCall, state: Mapping[str, Any], sample: dict[str, Any]) -> tuple[float, str]:
        reply = await call.chat(self.model, self._messages(state, sample))
        score, critique = parse_verdict(reply.text)
        conflict = numeric_conflict(str(sample.get("reasoning", "")), str(sample.get("answer", "")))
        if conflict:
            score, critique = min(score, 0.1), conflict
        return score, critique

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        candidate = lookup(state, self.field) or {}
        samples = candidate.get("samples") or [candidate]
        scored = await asyncio.gather(*(self._score(call, state, s) for s in samples))
        groups: dict[str, list[int]] = {}
        for i, sample in enumerate(samples):
            key = " ".join(str(sample.get("answer", "")).lower().split()).rstrip(".")
            groups.setdefault(key, []).append(i)
        weights = {k: sum(scored[i][0] for i in idx) for k, idx in groups.items()}
        best_key = max(groups, key=lambda k: (weights[k], -groups[k][0]))
        best = max(groups[best_key], key=lambda i: scored[i][0])
        score = scored[best][0]
        total = sum(weights.values())
        agreement = weights[best_key] / total if total else 0.0
        previous = lookup(state, self.output)
        rounds = (previous.get("round", 0) if isinstance(previous, dict) else 0) + 1
        verified = score >= self.threshold
        retry = not verified and rounds < self.max_rounds
        choice = "accept" if verified else ("retry" if retry else "unverified")
        critique = scored[best][1]
        answer = str(samples[best].get("answer", ""))
        rounded = round(score, 4)
        verdict = {
            "verified": verified, "score": rounded, "agreement": round(agreement, 4),
            "round": rounds, "retry": retry, "critique": critique, "answer": answer,
            "sample_scores": [round(s[0], 4) for s in scored],
        }
        outputs: dict[str, Any] = {self.output: verdict}
        if self.set_answer:
            outputs["answer"] = answer
        return NodeResult(
            outputs=outputs,
            decision=Decision(kind="verify", choice=choice, reason=critique or "consistent",
                              score=rounded, threshold=self.threshold),
            # the answer is the answering model's; the verdict is the checker's
            credit=meta_of(state, self.field).get("model") if self.set_answer else self.model,
            meta={self.output: {"model": self.model, "score": rounded, "verified": verified}},
        )
