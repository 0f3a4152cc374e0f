"""private_sketch, cover and minions on scripted models: answers and paths."""

from __future__ import annotations

import pytest

from tandemlm import KeyedChatModel, ScriptedChatModel, compile_flow, load_flow

REQUEST = "Hi, I'm Ngozi Okafor (ngozi.okafor@example.ng). Where is my refund to GB29 NWBK 6016 1331 9268 19?"


@pytest.mark.slow
async def test_private_sketch_keeps_personal_data_and_profile_local() -> None:
    llm = ScriptedChatModel(replies=["Dear <PERSON_1>, refunds to <IBAN_1> arrive in 5 working days."])
    slm = ScriptedChatModel(replies=["Hello <PERSON_1>! As a Gold member, your refund to <IBAN_1> arrives in 2 days."])
    flow = compile_flow("private_sketch", models={"slm": slm, "llm": llm})
    result = await flow.arun(REQUEST, variables={"profile": "Gold member; prefers short answers"})
    assert result.path == ["redact", "profile", "sketch", "personalize", "restore"]
    assert result.answer == (
        "Hello Ngozi Okafor! As a Gold member, your refund to GB29 NWBK 6016 1331 9268 19 arrives in 2 days."
    )
    remote = "\n".join(str(m.content) for m in llm.calls[0])
    for private in ("Ngozi", "Okafor", "ngozi.okafor@example.ng", "GB29", "Gold member"):
        assert private not in remote
    assert "<PERSON_1>" in remote and "<EMAIL_1>" in remote and "<IBAN_1>" in remote
    local = slm.calls[0][-1].content
    assert "Gold member" in local and "refunds to <IBAN_1> arrive" in local
    assert result.usage["llm"]["calls"] == 1 and result.usage["slm"]["calls"] == 1
    assert "ngozi.okafor@example.ng" in result.vars["_private"].values()
    printed = str(result.to_dict())  # what `tandem run --json` and /v1/run return
    assert "_private" not in result.to_dict()["vars"] and "ngozi.okafor@example.ng" not in printed
    slm.assert_all_used()
    llm.assert_all_used()


async def test_private_sketch_without_profile_uses_default() -> None:
    llm = ScriptedChatModel(replies=["Sure."])
    slm = ScriptedChatModel(replies=["Sure, <PERSON_1>."])
    result = await compile_flow("private_sketch", models={"slm": slm, "llm": llm}).arun("I am Jonas Wehrli.")
    assert result.answer == "Sure, Jonas Wehrli."
    assert "(no profile given)" in slm.calls[0][-1].content


async def test_cover_accepts_consistent_answer() -> None:
    llm = ScriptedChatModel(replies=["17 + 25: 17 + 20 = 37, 37 + 5 = 42.\nAnswer: 42"])
    slm = ScriptedChatModel(replies=['{"consistent": true, "score": 0.9, "critique": "steps add up"}'])
    result = await compile_flow("cover", models={"slm": slm, "llm": llm}).arun("What is 17 + 25?")
    assert (result.answer, result.answered_by) == ("42", "llm")
    assert result.path == ["answer", "check", "again"]
    verdict = result.vars["verification"]
    assert verdict["verified"] is True and verdict["score"] == 0.9 and verdict["round"] == 1
    check = result.decisions[0]
    assert (check["router"], check["choice"], check["score"], check["threshold"]) == ("verify", "accept", 0.9, 0.5)
    assert result.decisions[1]["choice"] == "small"


async def test_cover_retries_with_critique_then_verifies() -> None:
    llm = ScriptedChatModel(replies=["17 + 20 = 37, 37 + 5 = 42.\nAnswer: 41", "17 + 25 = 42.\nAnswer: 42"])
    slm = ScriptedChatModel(replies=['{"consistent": true, "score": 0.8, "critique": "ok"}'] * 2)
    result = await compile_flow("cover", models={"slm": slm, "llm": llm}).arun("What is 17 + 25?")
    assert result.path == ["answer", "check", "again", "answer", "check", "again"]
    assert result.answer == "42" and result.vars["verification"]["verified"] is True
    first = result.decisions[0]
    assert first["choice"] == "retry" and "ends with 42 but the answer says 41" in first["reason"]
    retry_prompt = llm.calls[1][-1].content
    assert "Your previous answer was: 41" in retry_prompt and "ends with 42" in retry_prompt


async def test_cover_marks_unverified_after_max_rounds() -> None:
    llm = ScriptedChatModel(replies=["Paris is in Italy.\nAnswer: Paris", "Paris is in Italy.\nAnswer: Paris"])
    slm = ScriptedChatModel(replies=['{"consistent": false, "score": 0.1, "critique": "Paris is in France"}'] * 2)
    result = await compile_flow("cover", models={"slm": slm, "llm": llm}).arun("Capital of France?")
    assert result.path == ["answer", "check", "again", "answer", "check", "again"]
    verdict = result.vars["verification"]
    assert verdict == {**verdict, "verified": False, "retry": False, "round": 2, "critique": "Paris is in France"}
    assert [d["choice"] for d in result.decisions if d["router"] == "verify"] == ["retry", "unverified"]
    assert result.answer == "Paris"
    llm.assert_all_used()
    slm.assert_all_used()


async def test_cover_consistency_weighted_aggregation() -> None:
    data = load_flow("cover").to_dict()
    data["nodes"]["answer"]["samples"] = 3
    llm = ScriptedChatModel(replies=["5*3=15.\nAnswer: 15", "5*3=15.\nAnswer: 15", "guess.\nAnswer: 8"])
    slm = KeyedChatModel(replies={
        r"Final answer: 15": '{"consistent": true, "score": 0.55, "critique": "plausible"}',
        r"Final answer: 8": '{"consistent": true, "score": 0.9, "critique": "fine"}',
    })
    result = await compile_flow(data, models={"slm": slm, "llm": llm}).arun("5 times 3?")
    verdict = result.vars["verification"]
    # the single best-scored sample says 8, but two samples agree on 15: weight 1.1 > 0.9
    assert result.answer == "15" and result.path == ["answer", "check", "again"]
    assert verdict["agreement"] == pytest.approx(1.1 / 2.0, abs=1e-3)
    assert verdict["score"] == 0.55 and verdict["verified"] is True
    assert sorted(verdict["sample_scores"]) == [0.55, 0.55, 0.9]
    assert result.usage["llm"]["calls"] == 3 and result.usage["slm"]["calls"] == 3


async def test_minions_workers_read_the_document_locally() -> None:
    document = " ".join(f"Section {i}: the warehouse in Lyon ships orders on weekdays." for i in range(40))
    document += " The return window is 30 days from delivery."
    llm = ScriptedChatModel(replies=[
        '{"subtasks": ["Find the return window"]}',
        "The return window is 30 days from delivery.",
    ])
    slm = KeyedChatModel(replies={r"return window is 30 days": "Returns: 30 days from delivery."}, default="NONE")
    flow = compile_flow("minions", models={"slm": slm, "llm": llm})
    result = await flow.arun("How long is the return window?", variables={"document": document})
    assert result.path == ["document", "plan", "workers", "aggregate"]
    assert result.answer == "The return window is 30 days from delivery."
    chunks = result.vars["plan"]["chunks"]
    assert chunks > 1 and len(slm.calls) == chunks
    assert result.vars["findings"] == [
        {"chunk": chunks, "task": "Find the return window", "finding": "Returns: 30 days from delivery."}
    ]
    remote_text = "\n".join(str(m.content) for call in llm.calls for m in call)
    assert "warehouse in Lyon" not in remote_text  # the document never reaches the LLM
    report = result.vars["minions"]
    assert report["remote_models"] == ["llm"]
    llm_usage = result.usage["llm"]
    assert report["remote_tokens"] == llm_usage["input_tokens"] + llm_usage["output_tokens"]
    assert report["full_document_tokens_est"] > 3 * report["remote_tokens"] and report["saving"] > 0.6


async def test_minions_plan_failure_falls_back_to_the_question() -> None:
    llm = ScriptedChatModel(replies=["I cannot plan this.", "No findings mention it."])
    slm = KeyedChatModel(replies={}, default="NONE")
    question = "What colour is the logo? " * 5
    result = await compile_flow("minions", models={"slm": slm, "llm": llm}).arun(question)
    assert result.vars["plan"]["subtasks"] == [question]  # no document given: the input is it
    assert result.errors[0]["node"] == "plan" and result.vars["findings"] == []
    assert "(no findings)" in llm.calls[1][-1].content


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("17 + 25 = 42.\nAnswer: 42", ("17 + 25 = 42.", "42")),
        ("So, the answer is: Answer: 665", ("", "665")),
        ("Step 1. x\n**Final answer:** 42", ("Step 1. x", "42")),
        ("no marker\n42", ("no marker\n42", "42")),
    ],
)
def test_split_reasoning(reply: str, expected: tuple[str, str]) -> None:
    from tandemlm.nodes.verify import split_reasoning

    assert split_reasoning(reply) == expected


async def test_flag_router_reads_bools_scores_and_inverts() -> None:
    from tandemlm.nodes.routers.flag import FlagRouter

    state = {"verification": {"retry": True, "score": 0.3}}
    assert (await FlagRouter(field="verification.retry").score(state, None)).score == 1.0  # type: ignore[arg-type]
    inverted = await FlagRouter(field="verification.score", invert=True).score(state, None)  # type: ignore[arg-type]
    assert inverted.score == pytest.approx(0.7) and "inverted" in inverted.reason
    assert (await FlagRouter(field="missing.x").score(state, None)).score == 0.0  # type: ignore[arg-type]
    assert FlagRouter(field="verification.retry").reads() == {"verification"}
