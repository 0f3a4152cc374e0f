"""``consistency``: sample a model a few times and keep the majority answer (self-consistency).

The deferral signal of answer-consistency cascades (Yue et al., ICLR 2024, "Large Language
Model Cascades with Mixture of Thoughts Representations"): a weak model that gives the same
final answer when sampled several times is usually right; when its samples disagree, the
strong model should answer. Token probabilities barely separate right from wrong multi-step
math answers of a small model; answer agreement does much better.

The node samples ``model`` up to ``n`` times (the first greedily unless ``greedy_first`` is
off, the rest with ``temperature`` and seeds ``seed``, ``seed + 1``, ...), extracts each
sample's final answer with the task's extractor (``answer``), and writes

- ``output`` (default ``draft``): the majority answer, i.e. the text of the first sample
  that gave the most common final answer (ties go to the earlier sample), with that
  sample's metadata (model, confidence, finish reason);
- ``score_output`` (default ``consistency``): the agreement record
  ``{"score", "agreement", "answer", "votes", "samples", "early_stop"}`` where
  ``agreement`` is the majority's share of the samples drawn and ``score = 1 - agreement``.

It stops early when the first ``early_stop`` samples already give the same answer (then
``agreement`` is 1 and the remaining samples would not change the majority). The
``consistency`` router reads the record (see :mod:`tandemlm.nodes.routers.consistency`):
a node may write outputs, a router may not, so sampling lives here and the router only
scores, and the accept step accepts the majority answer, not the greedy one.

Extractors (the ones the evaluation scorers use, so a consistency vote and a score read the
same answer): ``numeric`` (:func:`~tandemlm.evaluation.scorers.extract_number`),
``choice`` (:func:`~tandemlm.evaluation.scorers.extract_choice`), ``text`` (normalised
text, :func:`~tandemlm.evaluation.scorers.normalize`), ``auto`` (the final number when the
reply has one, else folded words: :func:`tandemlm.nodes.fuse.normalise`). A sample without
an extractable answer votes for nothing (it counts in the denominator).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import Field, model_validator

from tandemlm.core.ledger import meta_of
from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.core.state import lookup
from tandemlm.nodes.template import fields, render

Extractor = Literal["auto", "numeric", "choice", "text"]


def answer_key(text: str, extractor: Extractor) -> str | None:
    """The comparable final answer of ``text`` (``None`` when there is none)."""
    from tandemlm.evaluation.scorers import extract_choice, extract_number, normalize
    from tandemlm.nodes.fuse import normalise

    if extractor == "numeric":
        number = extract_number(text)
        if number is None:
            return None
        return str(int(number)) if float(number).is_integer() else f"{number:g}"
    if extractor == "choice":
        return extract_choice(text)
    key = normalize(text) if extractor == "text" else normalise(text)
    return key or None


def tally(keys: list[str | None]) -> tuple[int | None, dict[str, int], float]:
    """(index of the first sample with the majority answer, votes, agreement share).

    The majority is the most common extracted answer; ties go to the answer given first.
    Without any extracted answer the index is ``None`` and the agreement 0.
    """
    votes = Counter(k for k in keys if k is not None)
    if not votes:
        return None, {}, 0.0
    first = {k: keys.index(k) for k in votes}
    best = max(votes, key=lambda k: (votes[k], -first[k]))
    return first[best], dict(votes), votes[best] / len(keys)


class Consistency(Node):
    """Sample ``model`` up to ``n`` times; write the majority answer and its agreement.

    Args:
        model: the sampled model (normally the SLM).
        prompt: template (``{input}`` by default).
        system: optional system prompt (template).
        n: most samples to draw (1-16).
        early_stop: stop after this many samples when they all agree (``n`` disables it).
        temperature: sampling temperature (every sample but a greedy first one).
        seed: seed of the first sampled call (then +1 each); reaches providers that take it.
        greedy_first: the first sample is greedy (so with agreement the answer is the one
            a plain ``generate`` would give).
        draft: a field another node already wrote with ``model`` (e.g. a ``generate``
            node's greedy ``draft``): it is the first sample, without another call.
        answer: extractor of the final answer: ``auto``, ``numeric``, ``choice``, ``text``.
        logprobs: request token confidence (kept in the majority answer's metadata).
        output: field for the majority answer.
        score_output: field for the agreement record.
        max_tokens: override the model's ``max_tokens``.
    """

    type_name = "consistency"

    model: str
    prompt: str = Field("{input}", max_length=100_000)
    system: str | None = Field(None, max_length=100_000)
    n: int = Field(3, ge=1, le=16)
    early_stop: int = Field(2, ge=1, le=16)
    temperature: float = Field(0.7, gt=0.0, le=2.0)
    seed: int = Field(1, ge=0)
    greedy_first: bool = True
    draft: str | None = None
    answer: Extractor = "auto"
    logprobs: bool = False
    output: str = "draft"
    score_output: str = "consistency"
    max_tokens: int | None = Field(None, ge=1, le=32768)

    @model_validator(mode="after")
    def _distinct_outputs(self) -> Consistency:
        if self.output == self.score_output:
            raise ValueError(f"output and score_output must differ (both {self.output!r})")
        if self.draft in (self.output, self.score_output):
            raise ValueError(f"draft {self.draft!r} must be another node's output")
        return self

    def model_refs(self) -> dict[str, str]:
        return {"model": self.model}

    def inputs(self) -> dict[str, Any]:
        names = fields(self.prompt) | fields(self.system or "") | ({self.draft} if self.draft else set())
        return dict.fromkeys(sorted(names), Any)

    def outputs(self) -> dict[str, Port]:
        return {
            self.output: Port(str, doc="the majority answer"),
            self.score_output: Port(dict, doc="agreement of the samples (score = 1 - agreement)"),
        }

    def messages(self, state: Mapping[str, Any]) -> list[BaseMessage]:
        out: list[BaseMessage] = []
        if self.system:
            out.append(SystemMessage(content=render(self.system, state)))
        out.append(HumanMessage(content=render(self.prompt, state)))
        return out

    def _options(self, index: int) -> dict[str, Any]:
        options: dict[str, Any] = {"max_tokens": self.max_tokens} if self.max_tokens else {}
        sampled = index - 1 if (self.greedy_first or self.draft) else index
        if sampled >= 0:
            options.update(temperature=self.temperature, seed=self.seed + sampled)
        return options

    def _agreed(self, keys: list[str | None]) -> bool:
        """The first ``early_stop`` samples (all drawn so far) give one answer."""
        return (len(keys) == self.early_stop < self.n and keys[0] is not None
                and len(set(keys)) == 1)

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        messages = self.messages(state)
        texts: list[str] = []
        metas: list[dict[str, Any]] = []
        if self.draft:
            texts.append(str(lookup(state, self.draft) or ""))
            metas.append(meta_of(state, self.draft))
        keys = [answer_key(text, self.answer) for text in texts]
        stopped = False
        for index in range(len(texts), self.n):
            if self._agreed(keys):
                stopped = True
                break
            reply = await call.chat(self.model, messages, logprobs=self.logprobs, **self._options(index))
            texts.append(reply.text)
            metas.append(reply.meta())
            keys.append(answer_key(reply.text, self.answer))
        chosen, votes, agreement = tally(keys)
        pick = 0 if chosen is None else chosen
        record = {
            "score": round(1.0 - agreement, 6),
            "agreement": round(agreement, 6),
            "answer": None if chosen is None else keys[chosen],
            "votes": votes,
            "samples": len(keys),
            "early_stop": stopped,
            "keys": keys,
        }
        return NodeResult(
            outputs={self.output: texts[pick], self.score_output: record},
            credit=self.model,
            meta={self.output: metas[pick], self.score_output: {"model": self.model}},
            step={"samples": len(keys), "agreement": record["agreement"]},
        )

