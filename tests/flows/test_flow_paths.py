"""Presets on scripted models: the answer and the path taken."""

from __future__ import annotations

import pytest

from tandemlm import (
    BudgetExceededError,
    Flow,
    ModelUnavailableError,
    ScriptedChatModel,
    compile_flow,
)
from tandemlm.models.fakes import ScriptError


def cascade(slm_replies, llm_replies):
    slm, llm = ScriptedChatModel(replies=slm_replies), ScriptedChatModel(replies=llm_replies)
    return compile_flow("cascade", models={"slm": slm, "llm": llm}), slm, llm


async def test_cascade_keeps_confident_slm_answer() -> None:
    flow, slm, _ = cascade([{"content": "42", "confidence": 0.97}], [])
    result = await flow.arun("What is 17 + 25?")
    assert result.answer == "42"
    assert result.answered_by == "slm"
    assert result.path == ["draft", "gate", "accept"]
    [decision] = result.decisions
    assert decision["choice"] == "small"
    assert decision["score"] == pytest.approx(0.03)
    assert decision["threshold"] == 0.2
    assert "mean_prob 0.970" in decision["reason"]
    assert not result.llm_called
    assert set(result.usage) == {"slm"}
    slm.assert_all_used()


async def test_cascade_escalates_unsure_slm_answer() -> None:
    flow, slm, llm = cascade([{"content": "41", "confidence": 0.4}], ["42"])
    result = await flow.arun("What is 17 + 25?")
    assert (result.answer, result.answered_by) == ("42", "llm")
    assert result.path == ["draft", "gate", "escalate"]
    assert result.decisions[0]["choice"] == "large"
    assert result.llm_called
    assert result.usage["llm"]["calls"] == 1 and result.usage["slm"]["calls"] == 1
    assert llm.calls[0][-1].content == "What is 17 + 25?"
    slm.assert_all_used()
    llm.assert_all_used()


async def test_cascade_without_confidence_escalates() -> None:
    flow, _, _ = cascade(["41"], ["42"])
    result = await flow.arun("What is 17 + 25?")
    assert result.path == ["draft", "gate", "escalate"]
    assert result.decisions[0]["reason"] == "no token probabilities for 'draft'"


async def test_pipeline_passes_structured_brief_to_llm() -> None:
    slm = ScriptedChatModel(replies=['Sure: {"intent": "convert units", "facts": ["3 km", "to miles"]}'])
    llm = ScriptedChatModel(replies=["About 1.86 miles."])
    flow = compile_flow("pipeline", models={"slm": slm, "llm": llm})
    result = await flow.arun("How many miles is 3 km?")
    assert result.answer == "About 1.86 miles."
    assert result.path == ["extract", "answer"]
    assert result.vars["brief"] == {"intent": "convert units", "facts": ["3 km", "to miles"]}
    prompt = llm.calls[0][-1].content
    assert "Intent: convert units" in prompt and "Key facts: 3 km; to miles" in prompt
    assert result.errors == []


async def test_pipeline_survives_unparseable_brief() -> None:
    slm = ScriptedChatModel(replies=["I cannot produce JSON"])
    llm = ScriptedChatModel(replies=["An answer anyway."])
    result = await compile_flow("pipeline", models={"slm": slm, "llm": llm}).arun("Hi there")
    assert result.answer == "An answer anyway."
    assert result.vars["brief"] == {}
    assert result.errors[0]["node"] == "extract"
    assert "no JSON object" in result.errors[0]["error"]


async def test_model_failure_is_typed() -> None:
    flow, _, _ = cascade([{"error": "server down"}], [])
    with pytest.raises(ModelUnavailableError, match="server down"):
        await flow.arun("hi")


async def test_unexpected_extra_call_fails_loudly() -> None:
    flow, _, _ = cascade([], [])
    with pytest.raises(ScriptError, match="unexpected call #1"):
        await flow.arun("hi")


async def test_budget_max_escalations_stops_gracefully_and_errors_when_asked() -> None:
    def build(on_exceed: str):
        return (
            Flow("b")
            .model("slm", provider="scripted", replies=["x"])
            .model("llm", provider="scripted", replies=["y"])
            .node("draft", "generate", model="slm", output="draft", logprobs=True)
            .node("accept", "accept", field="draft")
            .node("escalate", "generate", model="llm")
            .route("draft", "rule", keywords=["hard"], branches={"small": "accept", "large": "escalate"})
            .settings(budget={"max_escalations": 0, "on_exceed": on_exceed})
        )

    slm = ScriptedChatModel(replies=["small answer"])
    result = await build("stop").compile(models={"slm": slm, "llm": ScriptedChatModel(replies=[])}).arun("a hard one")
    assert result.path == ["draft", "draft_route", "accept"]
    assert result.answer == "small answer"
    assert "budget max_escalations reached" in result.decisions[0]["reason"]
    slm = ScriptedChatModel(replies=["small answer"])
    flow = build("error").compile(models={"slm": slm, "llm": ScriptedChatModel(replies=[])})
    with pytest.raises(BudgetExceededError, match="max_escalations=0"):
        await flow.arun("a hard one")


async def test_rule_router_and_cost_accounting() -> None:
    flow = (
        Flow("r")
        .model("slm", provider="scripted", replies=["s"])
        .model("llm", provider="scripted", replies=["l"], price_in=1.0, price_out=2.0, local=False)
        .node("pick", "accept", field="input")
        .node("small", "generate", model="slm")
        .node("large", "generate", model="llm")
        .route("pick", "rule", patterns=[r"\bprove\b"], branches={"small": "small", "large": "large"})
        .compile(models={"slm": ScriptedChatModel(replies=["s"]), "llm": ScriptedChatModel(replies=["l"])})
    )
    result = await flow.arun("please prove it")
    assert result.path == ["pick", "pick_route", "large"]
    assert result.decisions[0]["reason"] == "pattern '\\\\bprove\\\\b'"
    usage = result.usage["llm"]
    assert usage["cost"] == pytest.approx((usage["input_tokens"] * 1.0 + usage["output_tokens"] * 2.0) / 1000)


async def test_empty_question_is_rejected() -> None:
    flow, _, _ = cascade([], [])
    from tandemlm import SpecError

    with pytest.raises(SpecError, match="the question is empty"):
        await flow.arun("   ")


async def test_thread_turns_report_their_own_path_and_usage(tmp_path) -> None:
    slm = ScriptedChatModel(replies=[{"content": "one", "confidence": 0.99}, {"content": "two", "confidence": 0.99}])
    flow = compile_flow(
        "cascade", models={"slm": slm, "llm": ScriptedChatModel(replies=[])}, checkpointer=tmp_path / "cp.db"
    )
    first = await flow.arun("first question", thread_id="t1")
    second = await flow.arun("second question", thread_id="t1")
    assert first.path == second.path == ["draft", "gate", "accept"]
    assert second.usage["slm"]["calls"] == 1
    assert second.answer == "two"
    history = [m.content for m in slm.calls[1]]
    assert history[-1] == "second question"


async def test_token_budget_stops_gracefully_with_the_best_answer_so_far() -> None:
    def build(on_exceed: str):
        return (
            Flow("tb")
            .model("slm", role="slm")
            .model("llm", role="llm")
            .node("draft", "generate", model="slm", output="draft")
            .node("escalate", "generate", model="llm")
            .edge("draft", "escalate")
            .settings(budget={"max_tokens": 5, "on_exceed": on_exceed})
        )

    def models():
        return {"slm": ScriptedChatModel(replies=["a fairly long small answer here"]), "llm": ScriptedChatModel(replies=[])}

    result = await build("stop").compile(models=models()).arun("question words here")
    assert result.path == ["draft", "escalate"]
    assert result.steps[-1]["skipped"] == "budget"
    assert (result.answer, result.answered_by, result.degraded) == ("a fairly long small answer here", "slm", True)
    assert "max_tokens=5" in result.errors[0]["error"]
    with pytest.raises(BudgetExceededError, match="max_tokens=5"):
        await build("error").compile(models=models()).arun("question words here")
