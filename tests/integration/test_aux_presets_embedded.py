"""private_sketch, cover and minions end to end on the embedded SmolLM2-135M (structure only)."""

from __future__ import annotations

import pytest

from tandemlm import compile_flow
from tandemlm.models.llamacpp import ChatLlamaCpp

pytestmark = pytest.mark.real


def smol(max_tokens: int = 48) -> ChatLlamaCpp:
    return ChatLlamaCpp(model="smollm2-135m", max_tokens=max_tokens)


async def test_private_sketch_on_embedded_model() -> None:
    flow = compile_flow("private_sketch", models={"slm": smol(48), "llm": smol(48)})
    question = "I'm Imogen Ashdown, email imogen@example.com. How do I change my delivery address?"
    result = await flow.arun(question, variables={"profile": "Prefers e-mail contact."})
    assert result.path == ["redact", "profile", "sketch", "personalize", "restore"]
    assert result.vars["redacted"] == "I'm <PERSON_1>, email <EMAIL_1>. How do I change my delivery address?"
    assert result.answer.strip() and "<EMAIL_1>" not in result.answer and "<PERSON_1>" not in result.answer
    assert result.usage["llm"]["calls"] == 1 and result.usage["slm"]["calls"] == 1


async def test_cover_on_embedded_model() -> None:
    flow = compile_flow("cover", models={"slm": smol(40), "llm": smol(48)})
    result = await flow.arun("What is 12 + 30?")
    verdict = result.vars["verification"]
    assert result.path[:3] == ["answer", "check", "again"]
    assert 1 <= verdict["round"] <= 2 and 0.0 <= verdict["score"] <= 1.0
    assert len(result.path) == 3 * verdict["round"]
    assert verdict["verified"] == (verdict["score"] >= 0.5)
    assert result.usage["llm"]["calls"] == verdict["round"]


async def test_minions_on_embedded_model() -> None:
    document = ("Brightpeak ships orders within two days. " * 12) + "Returns are accepted for 30 days."
    flow = compile_flow("minions", models={"slm": smol(32), "llm": smol(48)})
    result = await flow.arun("How many days do I have to return an item?", variables={"document": document})
    assert result.path == ["document", "plan", "workers", "aggregate"]
    plan = result.vars["plan"]
    assert 1 <= len(plan["subtasks"]) <= 2 and plan["chunks"] >= 1
    assert result.usage["slm"]["calls"] == plan["chunks"] * len(plan["subtasks"])
    report = result.vars["minions"]
    assert report["remote_tokens"] == result.usage["llm"]["input_tokens"] + result.usage["llm"]["output_tokens"]
    assert report["full_document_tokens_est"] > 0
