"""Generate-then-rank (survey 3.1.1, LLM-Blender's ranker): one model proposes, the other picks.

``sample`` asks a model for ``n`` candidate answers (the first greedy, the rest sampled
with ``temperature`` and seeds ``seed``, ``seed + 1``, ...). ``rerank`` has another model
score them and writes the best:

- ``pointwise``: "Is this answer correct?" for each distinct candidate; the score is
  P(yes) from the verdict token's probability (one short call per candidate).
- ``pairwise``: "Which answer is better, A or B?" for each pair of distinct candidates
  (both orders, to cancel position bias); a candidate's score is its mean win probability.

Identical candidates (same normalised answer: final number, else folded words) are scored
once; ties go to the answer more candidates gave, then to the earlier one (the greedy
answer first). Scores, votes and the pick are recorded in the decision (kind
``rerank:<method>``); the answer is credited to the proposing model.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import permutations
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import Field

from tandemlm.core.ledger import meta_of
from tandemlm.core.node import Decision, Node, NodeCall, NodeResult, Port
from tandemlm.core.state import lookup
from tandemlm.nodes.fuse import normalise
from tandemlm.nodes.template import fields, render

POINTWISE = (
    "Question: {question}\n\nProposed answer:\n{answer}\n\n"
    "Is the proposed answer correct? Answer Yes or No."
)
PAIRWISE = (
    "Question: {question}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}\n\n"
    "Which answer is correct? Reply with one letter: A or B."
)


class Sample(Node):
    """Ask ``model`` for ``n`` candidate answers to ``prompt``; write them to ``output``.

    Args:
        model: the proposing model.
        prompt: template (``{input}`` by default).
        system: optional system prompt.
        n: number of candidates (1-16).
        temperature: sampling temperature of candidates 2..n (the first is greedy).
        seed: seed of the second candidate (then +1 each).
        output: field for the list of candidates.
        max_tokens: override the model's ``max_tokens``.

    Per-call ``temperature`` and ``seed`` reach providers that take them (the embedded
    llama.cpp models, OpenAI-compatible servers).
    """

    type_name = "sample"

    model: str
    prompt: str = Field("{input}", max_length=100_000)
    system: str | None = Field(None, max_length=100_000)
    n: int = Field(4, ge=1, le=16)
    temperature: float = Field(0.7, gt=0.0, le=2.0)
    seed: int = Field(1, ge=0)
    output: str = "candidates"
    max_tokens: int | None = Field(None, ge=1, le=32768)

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        return dict.fromkeys(sorted(fields(self.prompt) | fields(self.system or "")), Any)

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(list, doc="candidate answers")}

    def messages(self, state: Mapping[str, Any]) -> list[BaseMessage]:
        out: list[BaseMessage] = []
        if self.system:
            out.append(SystemMessage(content=render(self.system, state)))
        out.append(HumanMessage(content=render(self.prompt, state)))
        return out

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> dict[str, Any]:
        messages = self.messages(state)
        base: dict[str, Any] = {"max_tokens": self.max_tokens} if self.max_tokens else {}
        out: list[str] = []
        for i in range(self.n):
            options = dict(base)
            if i:
                options.update(temperature=self.temperature, seed=self.seed + i - 1)
            reply = await call.chat(self.model, messages, **options)
            out.append(reply.text)
        return {self.output: out}


class Rerank(Node):
    """Score the candidates in ``field`` with ``model`` and write the best to ``output``.

    Args:
        field: the list of candidates (a ``sample`` output).
        model: the scoring model (the one that did not propose).
        method: ``pointwise`` or ``pairwise`` (see the module docstring).
        question: template of the question shown to the scorer (default ``{input}``).
        max_chars: each candidate is cut to this length in scoring prompts.
        output: field to write (``answer`` makes it the final answer).
    """

    type_name = "rerank"

    field: str = "candidates"
    model: str
    method: Literal["pointwise", "pairwise"] = "pointwise"
    question: str = Field("{input}", max_length=100_000)
    max_chars: int = Field(3000, ge=100, le=100_000)
    output: str = "answer"

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        return dict.fromkeys(sorted({self.field, *fields(self.question)}), Any)

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(str, doc="the chosen candidate")}

    async def _ask(self, call: NodeCall, prompt: str, letters: tuple[str, str]) -> float:
        """P(first letter) of a one-token verdict (Yes/No or A/B)."""
        from tandemlm.nodes.routers._yesno import p_yes

        system = "Reply with one word: Yes or No." if letters[0] == "Yes" else "Reply with one letter: A or B."
        reply = await call.chat(self.model, [SystemMessage(content=system), HumanMessage(content=prompt)],
                                logprobs=True, max_tokens=2)
        if letters[0] == "Yes":
            return p_yes(reply)
        word = reply.text.strip().lstrip("*\"'( ").upper()
        probs = reply.message.response_metadata.get("token_probs") if reply.message else None
        first = float(probs[0]) if probs else 1.0
        if word.startswith("A"):
            return first
        if word.startswith("B"):
            return 1.0 - first
        return 0.5

    async def scores(self, call: NodeCall, question: str, distinct: list[str]) -> list[float]:
        """One score in [0, 1] per distinct candidate."""
        cut = [text[: self.max_chars] for text in distinct]
        if self.method == "pointwise" or len(cut) == 1:
            return [await self._ask(call, POINTWISE.format(question=question, answer=text), ("Yes", "No"))
                    for text in cut]
        wins = [0.0] * len(cut)
        for i, j in permutations(range(len(cut)), 2):
            p_first = await self._ask(call, PAIRWISE.format(question=question, a=cut[i], b=cut[j]), ("A", "B"))
            wins[i] += p_first
            wins[j] += 1.0 - p_first
        games = 2 * (len(cut) - 1)
        return [w / games for w in wins]

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        candidates = [str(c) for c in (lookup(state, self.field) or []) if str(c).strip()]
        if not candidates:
            raise ValueError(f"'{self.field}' holds no candidates to rank")
        keys = [normalise(c) for c in candidates]
        order = list(dict.fromkeys(keys))
        distinct = [candidates[keys.index(k)] for k in order]
        votes = [keys.count(k) for k in order]
        question = render(self.question, state)
        scores = await self.scores(call, question, distinct)
        best = max(range(len(order)), key=lambda i: (round(scores[i], 6), votes[i], -i))
        chosen = distinct[best]
        proposer = meta_of(state, self.field).get("model")
        table = [{"answer": order[i][:80], "score": round(scores[i], 4), "votes": votes[i]}
                 for i in range(len(order))]
        return NodeResult(
            outputs={self.output: chosen},
            decision=Decision(
                kind=f"rerank:{self.method}", choice=f"candidate {keys.index(order[best]) + 1}",
                reason=(f"{self.model} scored {len(order)} distinct of {len(candidates)} candidates; "
                        f"best {scores[best]:.3f} for {order[best][:60]!r}"),
                details={"candidates": table, "best_score": round(scores[best], 6)},
            ),
            credit=proposer,
            meta={self.output: {**meta_of(state, self.field), "confidence": None}},
        )
