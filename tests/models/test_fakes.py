"""The scripted test doubles: they answer like chat models and can keep or forget their calls."""

from __future__ import annotations

from langchain_core.messages import HumanMessage

from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel


async def test_keyed_model_answers_by_pattern_and_records_calls() -> None:
    model = KeyedChatModel(replies={"refund": "Refund issued.", ".": "ok"})
    reply = await model.ainvoke([HumanMessage(content="I want a refund")])
    assert reply.content == "Refund issued."
    assert reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0
    assert [m[0].content for m in model.calls] == ["I want a refund"]


async def test_calls_are_not_kept_when_asked() -> None:  # for long benchmarks
    model = ScriptedChatModel(replies=["a", "b"], record_calls=False)
    assert [(await model.ainvoke([HumanMessage(content=q)])).content for q in ("x", "y")] == ["a", "b"]
    assert model.calls == []
