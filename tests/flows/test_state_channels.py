"""The state a flow's graph gets: built-in channels only where something reads them, outputs
that start as None on a fresh run and read as "not written"."""

from __future__ import annotations

from typing import Any

from tandemlm import ScriptedChatModel, compile_flow


def chain(history: bool = False) -> dict[str, Any]:
    return {
        "name": "two_steps",
        "models": {"slm": {"role": "slm"}},
        "nodes": {
            "sketch": {"type": "generate", "model": "slm", "prompt": "Sketch: {input}", "output": "sketch"},
            "answer": {"type": "generate", "model": "slm", "prompt": "Answer from {sketch}",
                       "history": history},
        },
        "entry": "sketch",
        "edges": [{"from": "sketch", "to": "answer"}, {"from": "answer", "to": "end"}],
    }


async def test_a_flow_without_conversation_readers_or_routes_has_neither_channel() -> None:
    flow = compile_flow(chain(), models={"slm": ScriptedChatModel(replies=["s", "a"])})
    assert {"messages", "choices"}.isdisjoint(flow.graph.channels)
    assert {"input", "answer", "variables", "ledger", "sketch"} <= set(flow.graph.channels)
    result = await flow.arun("q", history=[])
    assert (result.answer, result.path, result.vars) == ("a", ["sketch", "answer"], {"sketch": "s"})


async def test_a_conversation_reader_gets_messages_across_turns(tmp_path) -> None:
    slm = ScriptedChatModel(replies=["s1", "a1", "s2", "a2"])
    flow = compile_flow(chain(history=True), models={"slm": slm}, checkpointer=tmp_path / "cp.db")
    assert "messages" in flow.graph.channels and "choices" not in flow.graph.channels
    await flow.arun("first", thread_id="t")
    second = await flow.arun("second", thread_id="t")
    assert second.answer == "a2"
    # the second turn's answer node saw the first turn (question and answer) before its prompt
    assert [m.content for m in slm.calls[3]] == ["first", "a1", "Answer from s2"]


async def test_routes_keep_choices_and_unwritten_outputs_stay_out_of_vars() -> None:
    slm, llm = ScriptedChatModel(replies=[{"content": "41", "confidence": 0.99}]), ScriptedChatModel(replies=[])
    flow = compile_flow("cascade", models={"slm": slm, "llm": llm})
    assert "choices" in flow.graph.channels
    result = await flow.arun("What is 17 + 25?")
    assert result.path == ["draft", "gate", "accept"]
    # the LLM branch never ran: its outputs were None all run long, not written
    assert set(result.vars) == {"draft"}
