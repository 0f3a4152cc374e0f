"""``decompose``: a model splits a question into a bounded list of sub-questions.

Small models given only an instruction tend to return the question itself. Three things
help them: worked examples in the prompt (the default prompt has two, from a domain of
their own), examples written once by a stronger ``teacher`` model for seed questions and
cached on disk (in-context distillation: the SLM imitates the LLM's decompositions at no
further LLM cost), and splitting an echoed ``... , and ...`` question at its conjunction.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from tandemlm.core.node import Node, NodeCall, NodeResult, Port
from tandemlm.errors import ModelUnavailableError
from tandemlm.nodes import structured
from tandemlm.nodes.template import fields, render

SCHEMA = {"subquestions": "list[str]"}
# The examples are from a library, not from any shipped knowledge base or test set: they
# show the form (a bridge question, a two-part question), not the answers.
DEFAULT_PROMPT = (
    "Split the question into at most {max_items} short, self-contained sub-questions, one "
    "per fact to look up. When one fact depends on another (the book that won a prize, "
    "then that book's late fee), ask for the first fact, then for the second in general "
    "terms. Never copy the whole question as a single sub-question.\n"
    'Example: "What is the late fee for the book that won the 2019 prize?" -> '
    '{{"subquestions": ["Which book won the 2019 prize?", "What is the late fee for '
    'borrowed books?"]}}\n'
    'Example: "How long can I keep a laptop, and can I renew it online?" -> '
    '{{"subquestions": ["How long is the loan period for laptops?", "Can loans be renewed '
    'online?"]}}\n\n'
    "Question: {input}"
)
TEACHER_PROMPT = (
    "Split the question into at most {max_items} short, self-contained sub-questions, one "
    "per fact a search engine would have to find. When one fact depends on another, ask "
    "for the first fact, then for the second in general terms.\n\nQuestion: {question}"
)
MAX_CHARS = 300
_CONJUNCTION = re.compile(r",?\s+and\s+(?=(?:how|what|when|where|which|who|why|is|are|can|do|does|will|should)\b)", re.IGNORECASE)


class Example(BaseModel):
    """One worked decomposition shown to the model."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(max_length=2000)
    subquestions: list[str] = Field(min_length=1, max_length=16)


def clean(items: list[str], max_items: int) -> list[str]:
    """Strip, drop empties and case-insensitive repeats, cap length and count."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in items:
        text = " ".join(str(raw).split())[:MAX_CHARS].strip(" -*\u2022")
        key = text.lower().rstrip("?. ")
        if text and key not in seen:
            seen.add(key)
            out.append(text)
    return out[:max_items]


def _key(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def echoes(items: list[str], question: str) -> bool:
    """Whether the model returned just the question (or it with a word or two changed)."""
    if len(items) != 1:
        return False
    a, b = set(_key(items[0]).split()), set(_key(question).split())
    return bool(a and b) and len(a & b) / len(a | b) >= 0.8


def split_conjunction(question: str) -> list[str]:
    """``"How long is X, and how fast is Y?"`` -> ``["How long is X?", "How fast is Y?"]``."""
    parts = [p.strip(" ,;") for p in _CONJUNCTION.split(question) if p.strip(" ,;")]
    if len(parts) < 2:
        return [question]
    return [p[0].upper() + p[1:].rstrip("?.") + "?" for p in parts]


class Decompose(Node):
    """Ask ``model`` for sub-questions (structured output) and write them to ``output``.

    Falls back to ``[input]`` when the model fails, the reply does not parse, or the list is
    empty; the fallback is recorded as a recovered error and as the output's metadata
    ``fallback``. When the model only echoes a question made of two parts joined by
    ``and`` (``split_echo``), the parts become the sub-questions (metadata ``split``).

    Args:
        model: model name (usually the SLM).
        prompt: template; ``{max_items}`` is filled in, then state fields.
        system: optional system prompt.
        max_items: the most sub-questions kept (1-16).
        output: state field for the list.
        include_original: also keep the original question as the first item.
        max_tokens: override the model's ``max_tokens``.
        examples: worked examples (``{question, subquestions}``), shown as earlier turns.
        teacher: a model (usually the LLM) that writes examples for ``seed_questions`` the
            first time the node runs; they are cached in ``examples_cache`` and reused by
            every later run (the teacher sees the seed questions only, never the run's data).
        seed_questions: questions the teacher decomposes; write your own, never take them
            from the questions you evaluate on.
        examples_cache: JSON file for the teacher's examples (default
            ``<project state dir>/decompose/<hash>.json``, keyed by teacher and seeds).
        split_echo: split an echoed two-part question at its ``and``.
    """

    type_name = "decompose"

    model: str
    prompt: str = Field(DEFAULT_PROMPT, max_length=20_000)
    system: str | None = Field(
        "You break questions into sub-questions. You never answer them.", max_length=20_000
    )
    max_items: int = Field(4, ge=1, le=16)
    output: str = "subquestions"
    include_original: bool = False
    max_tokens: int | None = Field(None, ge=1, le=4096)
    examples: list[Example] = Field(default_factory=list, max_length=16)
    teacher: str | None = None
    seed_questions: list[str] = Field(default_factory=list, max_length=16)
    examples_cache: str | None = Field(None, max_length=4096)
    split_echo: bool = True

    def model_refs(self) -> dict[str, str]:
        refs = {"model": self.model}
        if self.teacher:
            refs["teacher"] = self.teacher
        return refs

    def _prompt_fields(self) -> set[str]:
        return (fields(self.prompt) | fields(self.system or "")) - {"max_items"}

    def inputs(self) -> dict[str, Any]:
        # ``input`` is the fallback (and the original question), whatever the prompt says.
        return dict.fromkeys(sorted(self._prompt_fields() | {"input"}), Any)

    def model_inputs(self, param: str) -> set[str]:
        """The model sees the prompt's fields only (the fallback never reaches it); the
        teacher sees nothing from the state (only the seed questions)."""
        return set() if param == "teacher" else self._prompt_fields()

    def outputs(self) -> dict[str, Port]:
        return {self.output: Port(list, doc="sub-questions")}

    def check(self, spec: Any) -> None:
        from tandemlm.errors import SpecError

        if self.teacher and not self.seed_questions:
            raise SpecError("teacher", "give seed_questions for the teacher to decompose")

    def _render(self, state: Mapping[str, Any]) -> str:
        prompt = render(self.prompt.replace("{max_items}", str(self.max_items)), state)
        return f"{prompt}\n\n{structured.instruction(SCHEMA)}"

    def messages(self, state: Mapping[str, Any], examples: list[Example] | None = None) -> list[BaseMessage]:
        out: list[BaseMessage] = []
        if self.system:
            out.append(SystemMessage(content=render(self.system, state)))
        for example in [*self.examples, *(examples or [])]:  # short turns: question -> JSON
            out.append(HumanMessage(content=f"Question: {example.question}"))
            out.append(AIMessage(content=json.dumps({"subquestions": example.subquestions})))
        out.append(HumanMessage(content=self._render(state)))
        return out

    def cache_path(self, teacher_id: str) -> Path:
        """Where the teacher's examples for these seeds are kept."""
        if self.examples_cache:
            return Path(self.examples_cache).expanduser()
        from tandemlm.config import load_config

        key = json.dumps([teacher_id, TEACHER_PROMPT, self.max_items, self.seed_questions])
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return load_config().home_dir() / "decompose" / f"{digest}.json"

    async def teacher_examples(self, call: NodeCall) -> list[Example]:
        """The teacher's examples: read from the cache, else written now and cached."""
        if not self.teacher:
            return []
        teacher_id = call.context.models.entry(self.teacher).request_model
        path = self.cache_path(teacher_id)
        try:
            data = json.loads(path.read_text())
            if data.get("seeds") == self.seed_questions:
                return [Example.model_validate(e) for e in data["examples"]]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        examples: list[Example] = []
        for seed in self.seed_questions:
            prompt = TEACHER_PROMPT.replace("{max_items}", str(self.max_items)).replace("{question}", seed)
            reply = await call.chat(self.teacher, [
                SystemMessage(content="You break questions into sub-questions. You never answer them."),
                HumanMessage(content=f"{prompt}\n\n{structured.instruction(SCHEMA)}"),
            ])
            try:
                items = clean(structured.parse(reply.text, SCHEMA)["subquestions"], self.max_items)
            except ValueError as exc:
                call.error(f"teacher example skipped: {exc}", seed=seed)
                continue
            if items:
                examples.append(Example(question=seed, subquestions=items))
        if examples:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_text(json.dumps({"teacher": teacher_id, "seeds": self.seed_questions,
                                       "examples": [e.model_dump() for e in examples]}, indent=1))
            tmp.replace(path)
        return examples

    async def run(self, state: Mapping[str, Any], call: NodeCall) -> NodeResult:
        question = str(state.get("input", ""))
        problem: str | None = None
        items: list[str] = []
        split = False
        options: dict[str, Any] = {"max_tokens": self.max_tokens} if self.max_tokens else {}
        try:
            learned = await self.teacher_examples(call)
            reply = await call.chat(self.model, self.messages(state, learned), **options)
            items = clean(structured.parse(reply.text, SCHEMA)["subquestions"], self.max_items)
            if not items:
                problem = "the model returned no sub-questions"
            elif self.split_echo and echoes(items, question):
                parts = clean(split_conjunction(question), self.max_items)
                split = len(parts) > 1
                items = parts if split else items
        except ModelUnavailableError as exc:
            problem = f"model failed: {exc}"
        except ValueError as exc:
            problem = f"structured output: {exc}"
        if self.include_original:
            items = clean([question, *items], self.max_items)
        fallback = not items
        if fallback:
            items = [question]
        if problem:
            call.error(f"decomposition fell back: {problem}")
        return NodeResult(outputs={self.output: items},
                          meta={self.output: {"fallback": fallback, "split": split}})
