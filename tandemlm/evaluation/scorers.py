"""Scorers: compare a flow's answer with the gold answer and return a score in [0, 1].

Built in:

- ``exact``: equal after normalisation (case, whitespace, surrounding punctuation).
- ``numeric``: GSM8K style. The gold number is what follows the last ``####`` (else the last
  number in the gold); the predicted number is the last ``Answer: N`` / ``#### N`` /
  ``\\boxed{N}`` in the answer, else its last number. Commas, ``$`` and ``%`` are ignored;
  equal within 1e-6 (relative).
- ``choice``: multiple choice A-D (gold ``B``, ``(B)`` or ``B) text``; prediction
  ``Answer: B``, ``(B)``, ``B)``/``B.`` at the start, or a lone letter).
- ``contains``: the normalised gold occurs in the normalised answer.
- ``f1``: SQuAD token F1 (lower case, no punctuation or articles).
- ``judge``: a model grades the answer against the gold (``1`` correct, ``0`` wrong), through
  :func:`~tandemlm.models.call.call_model` so its tokens and cost are counted.

``exact`` and ``contains`` accept alternatives in the gold separated by ``|``.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tandemlm.errors import TandemError

__all__ = [
    "SCORERS",
    "JudgeScorer",
    "Scorer",
    "extract_choice",
    "extract_number",
    "get_scorer",
    "gold_number",
    "guess_scorer",
]

# a minus is a sign only when it touches the digits and does not follow an operand
# ("Total: 20 - 5" ends with 5, not -5; "20-5" too; "Answer: -3" is -3)
_NUMBER = r"(?:(?<![\w)\]])-(?=\$?\d))?\$?\s?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?"
_NUMBER_RE = re.compile(_NUMBER)
_ANSWER_RE = re.compile(
    r"(?:answer\s*(?:is)?\s*[:=]?|####|\\boxed\{)\s*\**\s*(" + _NUMBER + r")", re.IGNORECASE
)


def _to_float(text: str) -> float | None:
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "").rstrip(".%")
    try:
        if "/" in cleaned:
            num, den = cleaned.split("/", 1)
            return float(num) / float(den)
        return float(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def extract_number(text: str) -> float | None:
    """The final numeric answer in a model's reply (``Answer: N`` preferred, else last number)."""
    marked = _ANSWER_RE.findall(text or "")
    if marked:
        return _to_float(marked[-1])
    found = _NUMBER_RE.findall(text or "")
    return _to_float(found[-1]) if found else None


def gold_number(gold: str) -> float | None:
    """The number of a gold answer: after the last ``####`` (GSM8K), else its last number."""
    if "####" in gold:
        gold = gold.rsplit("####", 1)[1]
    found = _NUMBER_RE.findall(gold)
    return _to_float(found[-1]) if found else None


_CHOICE_PATTERNS = [
    re.compile(r"answer\s*(?:is)?\s*[:=]?\s*\(?([A-D])\b\)?", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-D])[).:\s]", re.MULTILINE),
    re.compile(r"\(([A-D])\)"),
    re.compile(r"^\s*([A-D])\s*$"),
]


def extract_choice(text: str) -> str | None:
    """The chosen letter (A-D) in a reply, or ``None``."""
    text = (text or "").strip()
    for pattern in _CHOICE_PATTERNS:
        found = pattern.findall(text)
        if found:
            return str(found[-1] if pattern is _CHOICE_PATTERNS[0] else found[0]).upper()
    lone = re.findall(r"\b([A-D])\b", text)
    return lone[-1] if len(lone) == 1 else None


def normalize(text: str) -> str:
    """Lower case, collapse whitespace, strip surrounding punctuation and quotes."""
    text = " ".join(str(text).lower().split())
    return text.strip(string.punctuation + " ")


def _squad_tokens(text: str) -> list[str]:
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return text.split()


def _alternatives(gold: str) -> list[str]:
    return [g for g in (part.strip() for part in str(gold).split("|")) if g]


def exact(answer: str, gold: str) -> float:
    norm = normalize(answer)
    return float(any(norm == normalize(g) for g in _alternatives(gold)))


def numeric(answer: str, gold: str) -> float:
    want, got = gold_number(gold), extract_number(answer)
    if want is None or got is None:
        return 0.0
    return float(abs(want - got) <= 1e-6 * max(1.0, abs(want)))


def choice(answer: str, gold: str) -> float:
    want = extract_choice(gold) or normalize(gold).upper()[:1]
    return float(extract_choice(answer) == want)


def contains(answer: str, gold: str) -> float:
    norm = normalize(answer)
    return float(any(normalize(g) in norm for g in _alternatives(gold) if normalize(g)))


def f1(answer: str, gold: str) -> float:
    pred, ref = _squad_tokens(answer), _squad_tokens(gold)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@dataclass
class Scorer:
    """A named scoring function ``(answer, gold) -> [0, 1]``.

    ``extract`` (optional) gives what the scorer read from a text (the number, the letter),
    shown beside the answer and the gold in reports so every verdict can be audited.
    """

    name: str
    fn: Callable[[str, str], float]
    extract: Callable[[str], Any] | None = None
    cached = False  # cheap and deterministic: scored again on every read

    async def ascore(self, question: str, answer: str, gold: str) -> dict[str, Any]:
        """``{"score": float}`` (plus ``usage`` for model-based scorers)."""
        return {"score": float(self.fn(answer or "", gold or ""))}

    def extracted(self, answer: str, gold: str) -> tuple[str, str]:
        """What the scorer read from the answer and from the gold (for reports)."""
        if self.extract is None:
            return _short(normalize(answer or "")), _short(normalize(gold or ""))
        got = self.extract(answer or "")
        want = gold_number(gold or "") if self.name == "numeric" else self.extract(gold or "")
        return _shown(got), _shown(want)


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else "..." + text[-(limit - 3):]


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, float):
        return f"{value:g}"
    return _short(str(value))


SCORERS: dict[str, Callable[[str, str], float]] = {
    "exact": exact,
    "numeric": numeric,
    "choice": choice,
    "contains": contains,
    "f1": f1,
}

JUDGE_SYSTEM = (
    "You grade answers. Compare the candidate answer with the reference answer for the "
    "question. Reply with one word: CORRECT if the candidate gives the same final answer as "
    "the reference, otherwise WRONG."
)
JUDGE_PROMPT = "Question: {question}\n\nReference answer: {gold}\n\nCandidate answer: {answer}\n\nVerdict:"


class JudgeScorer:
    """A model grades the answer: 1.0 when it says CORRECT, 0.0 otherwise.

    Args:
        model: a langchain chat model, or ``None`` to build one from ``spec``.
        spec: a :class:`~tandemlm.models.spec.ModelSpec` (default: role ``llm``).
    """

    name = "judge"
    cached = True  # a model call: verdicts are kept in the eval cache (see EvalCache.get_score)

    def __init__(self, model: Any = None, spec: Any = None) -> None:
        from tandemlm.core.context import TandemContext
        from tandemlm.models.pool import ModelPool
        from tandemlm.models.spec import GenerationParams, ModelSpec

        spec = spec or ModelSpec(role="llm", params=GenerationParams(max_tokens=8))
        overrides = {"judge": model} if model is not None else None
        self._context = TandemContext(flow="judge", models=ModelPool({"judge": spec}, overrides))
        described = f"override:{type(model).__name__}" if model is not None else spec.model_dump_json()
        self.identity = f"judge|{described}"

    def extracted(self, answer: str, gold: str) -> tuple[str, str]:
        """The judge reads the whole answer (its verdict is kept as ``judge``)."""
        return _short(normalize(answer or "")), _short(normalize(gold or ""))

    async def ascore(self, question: str, answer: str, gold: str) -> dict[str, Any]:
        from langchain_core.messages import HumanMessage, SystemMessage

        from tandemlm.core.node import NodeCall
        from tandemlm.models.call import call_model

        prompt = JUDGE_PROMPT.format(question=question, gold=gold, answer=answer or "(empty)")
        messages = [SystemMessage(content=JUDGE_SYSTEM), HumanMessage(content=prompt)]
        scope = self._context.recorder.scope("judge", "judge")
        reply = await call_model(NodeCall("judge", self._context, scope), "judge", messages)
        verdict = reply.text.strip().upper()
        score = 1.0 if verdict.startswith("CORRECT") or re.match(r"^\W*(YES|1)\b", verdict) else 0.0
        return {"score": score, "judge": reply.text[:200], "usage": scope.usage}


def get_scorer(name: str, *, judge_model: Any = None) -> Scorer | JudgeScorer:
    """A scorer by name (``exact``, ``numeric``, ``choice``, ``contains``, ``f1``, ``judge``).

    Raises:
        TandemError: unknown scorer name.
    """
    if name == "judge":
        return JudgeScorer(model=judge_model)
    if name not in SCORERS:
        known = ", ".join([*SCORERS, "judge"])
        raise TandemError(f"unknown scorer {name!r} (known: {known})")
    extract = {"numeric": extract_number, "choice": extract_choice}.get(name)
    return Scorer(name, SCORERS[name], extract)


_PLAIN_NUMBER = re.compile(r"^\s*" + _NUMBER + r"\s*%?\s*$")
_GSM8K_GOLD = re.compile(r"####\s*" + _NUMBER + r"\s*$")
_CHOICE_GOLD = re.compile(r"^\s*\(?[A-D]\)?\s*$")


def guess_scorer(items: Any) -> str:
    """The scorer a dataset's golds call for: ``numeric`` for GSM8K-style golds (``#### N``)
    or plain numbers, ``choice`` for lone letters A-D, else ``exact``.

    Args:
        items: :class:`~tandemlm.evaluation.datasets.EvalItem` objects (their ``gold``).
    """
    golds = [str(getattr(item, "gold", item)).strip() for item in items]
    golds = [g for g in golds if g]
    if not golds:
        return "exact"
    if all(_GSM8K_GOLD.search(g) or _PLAIN_NUMBER.match(g) for g in golds):
        return "numeric"
    if all(_CHOICE_GOLD.match(g) for g in golds):
        return "choice"
    return "exact"
