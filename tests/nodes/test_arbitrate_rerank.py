"""arbitrate (knowledge conflicts) and sample/rerank (generate-then-rank) on fake models."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tandemlm import Flow
from tandemlm.errors import SpecError
from tandemlm.flows.compiler import compile_flow
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel
from tandemlm.nodes.arbitrate import agree, parse_verdict, short_answer
from tandemlm.stores import Document, MemoryStore

DOCS = {
    "policies/returns.md": "Returns policy. You can return most items within 30 days of delivery.",
    "archive/returns-2019.md": "Archived 2019 returns policy, replaced: items may be returned within 14 days.",
}


@pytest.fixture()
def kb() -> MemoryStore:
    store = MemoryStore("hash")
    store.upsert([Document(id=s, text=t, metadata={"source": s}) for s, t in DOCS.items()])
    return store


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("You have 30 days.", "Within 30 days of delivery.", True),
        ("You have 14 days.", "You have 30 days.", False),
        ("Yes, within 30 days.", "Yes.", True),
        ("No, it is not covered.", "Yes, it is covered.", False),
        ("Standard shipping is free.", "It costs 4.95.", False),
        ("60 days for members, 30 otherwise.", "30 days.", False),  # in doubt: the arbiter decides
        ("Express takes 1-2 business days.", "Express takes 2-3 days.", False),
        ("Wash it with a down wash and tennis balls.", "Use down wash and two tennis balls.", True),
        ("Dry-clean it.", "Machine wash at a low temperature.", False),
    ],
)
def test_agreement_of_short_answers(a: str, b: str, same: bool) -> None:
    assert agree(a, b) is same


@pytest.mark.parametrize(
    ("question", "a", "b", "same"),
    [
        ("How long is the warranty on the Ridgeline 2P tent?", "The Ridgeline 2P tent has a 3-year warranty.",
         "The Ridgeline 2P tent has a 1-year warranty.", False),
        ("How much discount do 100 points give?", "100 points give 2 off.", "100 points give a 10% discount.", False),
        ("What does the Ridgeline 2P tent cost?", "It costs 349.00.", "The Ridgeline 2P tent costs 349.", True),
        ("How long does pickup take?", "2-4 business days.", "2-3 days.", False),
    ],
)
def test_numbers_from_the_question_do_not_make_answers_agree(question: str, a: str, b: str, same: bool) -> None:
    assert agree(a, b, question) is same


def test_short_answer_and_verdict_parsing() -> None:
    assert short_answer("You have 30 days [policies/returns.md]. Refunds take 5 days.") == "You have 30 days."
    assert short_answer("Let me check.\nAnswer: 42 [x.md]") == "42"
    assert parse_verdict("B [policies/returns.md]") == ("B", ["policies/returns.md"])
    assert parse_verdict("Answer A, see [a.md]") == ("A", ["a.md"])
    assert parse_verdict("NEITHER") == (None, [])
    assert parse_verdict("I am not sure.") == (None, [])


def conflict_flow() -> Flow:
    return (
        Flow("conflict").model("slm", role="slm").model("llm", role="llm")
        .store("kb", type="memory", embedding="hash")
        .node("retrieve", "retrieve", store="kb", k=2)
        .node("merge", "evidence")
        .node("local", "generate", model="slm", prompt="Evidence:\n{context}\n\nQuestion: {input}",
              output="local_answer")
        .node("remote", "generate", model="llm", prompt="{input}", output="remote_answer")
        .node("arbitrate", "arbitrate", inputs=["local_answer", "remote_answer"], model="llm")
        .entry(["retrieve", "remote"])
        .edge("retrieve", "merge").edge("merge", "local")
        .edge(["local", "remote"], "arbitrate").edge("arbitrate", "end")
    )


def models(local: str, remote: str, verdict: Any = None, supports: str | None = None) -> dict[str, Any]:
    """Fakes; the judge names the answer ``supports`` in whichever position it is shown
    (a consistent judge), or replies ``verdict`` whatever the order."""
    llm: dict[str, Any] = {}
    if supports is not None:
        source = verdict or ""
        llm = {f"Answer A: {re.escape(supports)}": f"A {source}".strip(),
               f"Answer B: {re.escape(supports)}": f"B {source}".strip()}
    elif verdict is not None:
        llm = {"Answer A:": verdict}
    return {"slm": KeyedChatModel(replies={"Evidence": local}),
            "llm": KeyedChatModel(replies={**llm, "return": remote})}


async def test_agreeing_answers_need_no_arbiter(kb: MemoryStore) -> None:
    m = models("You have 30 days [policies/returns.md].", "30 days from delivery.")
    result = await conflict_flow().compile(models=m, stores={"kb": kb}).arun("How long can I return items?")
    assert result.answer == "You have 30 days [policies/returns.md]."
    (decision,) = result.decisions
    assert decision["router"] == "arbitrate" and decision["choice"] == "agree"
    assert result.answered_by == "slm" and result.usage["llm"]["calls"] == 1  # the remote answer only


async def test_the_arbiter_picks_the_supported_answer_and_cites_it(kb: MemoryStore) -> None:
    m = models("You have 14 days [archive/returns-2019.md].", "You have 30 days.", "[policies/returns.md]",
               supports="You have 30 days.")
    result = await conflict_flow().compile(models=m, stores={"kb": kb}).arun("How long can I return items?")
    assert result.answer == "You have 30 days. [policies/returns.md]"
    (decision,) = result.decisions
    assert decision["choice"] == "remote_answer"
    assert decision["details"]["answers"] == {"local_answer": "You have 14 days.", "remote_answer": "You have 30 days."}
    assert decision["details"]["sources"] == ["policies/returns.md"]
    assert "local_answer says 'You have 14 days.'" in decision["reason"]
    assert result.answered_by == "llm" and result.usage["llm"]["calls"] == 3  # answer + 2 verdicts
    first, second = [c[-1].content for c in m["llm"].calls if "Answer A:" in c[-1].content]
    assert "[archive/returns-2019.md] Archived 2019" in first and "Answer A: You have 14 days." in first
    assert "Answer A: You have 30 days.\nAnswer B: You have 14 days." in second


async def test_a_named_source_that_lacks_the_answer_is_not_cited(kb: MemoryStore) -> None:
    m = models("You have 14 days.", "You have 30 days.", "[archive/returns-2019.md]", supports="You have 30 days.")
    result = await conflict_flow().compile(models=m, stores={"kb": kb}).arun("How long can I return items?")
    assert result.answer == "You have 30 days. [policies/returns.md]"
    assert result.decisions[0]["details"]["sources"] == ["archive/returns-2019.md"]
    assert result.decisions[0]["details"]["cited"] == "policies/returns.md"


async def test_the_arbiter_can_keep_the_local_answer(kb: MemoryStore) -> None:
    m = models("You have 30 days [policies/returns.md].", "You have 14 days.", "[policies/returns.md]",
               supports="You have 30 days.")
    result = await conflict_flow().compile(models=m, stores={"kb": kb}).arun("How long can I return items?")
    assert result.answer == "You have 30 days [policies/returns.md]."  # already cited: unchanged
    assert result.decisions[0]["choice"] == "local_answer" and result.answered_by == "slm"


async def test_a_judge_that_follows_the_position_decides_nothing(kb: MemoryStore) -> None:
    m = models("You have 14 days.", "You have 30 days.", "A [policies/returns.md]")  # always "A"
    result = await conflict_flow().compile(models=m, stores={"kb": kb}).arun("How long can I return items?")
    assert result.answer.startswith("I cannot tell which answer is right")
    decision = result.decisions[0]
    assert decision["choice"] == "undecided" and "depend on the order" in decision["reason"]
    assert len(decision["details"]["verdict"]) == 2


async def test_one_order_takes_the_single_verdict(kb: MemoryStore) -> None:
    m = models("You have 14 days.", "You have 30 days.", "A [policies/returns.md]")
    spec = conflict_flow().to_spec().to_dict()
    spec["nodes"]["arbitrate"]["both_orders"] = False
    result = await compile_flow(spec, models=m, stores={"kb": kb}).arun("How long can I return items?")
    assert result.decisions[0]["choice"] == "local_answer" and result.usage["llm"]["calls"] == 2


@pytest.mark.parametrize("verdict", ["NEITHER", {"error": "LLM down"}])
async def test_no_verdict_says_the_sources_do_not_settle_it(kb: MemoryStore, verdict: Any) -> None:
    m = models("You have 14 days.", "You have 30 days.", verdict)
    result = await conflict_flow().compile(models=m, stores={"kb": kb}).arun("How long can I return items?")
    assert result.answer.startswith("I cannot tell which answer is right")
    assert "You have 14 days." in result.answer and "You have 30 days." in result.answer
    assert result.decisions[0]["choice"] == "undecided"
    assert bool(result.errors) is isinstance(verdict, dict)


def test_arbitrate_needs_two_inputs_and_a_known_model() -> None:
    with pytest.raises(SpecError):
        compile_flow(conflict_flow().node("arbitrate", "arbitrate", inputs=["local_answer"], model="llm").to_spec())
    with pytest.raises(SpecError) as info:
        compile_flow(conflict_flow().node("arbitrate", "arbitrate", inputs=["local_answer", "remote_answer"],
                                          model="judge").to_spec())
    assert info.value.path == "nodes.arbitrate.model"


# -- sample / rerank -------------------------------------------------------------------------

def rerank_flow(method: str = "pointwise", n: int = 3) -> Flow:
    return (
        Flow("rerank").model("slm", role="slm").model("llm", role="llm")
        .node("propose", "sample", model="slm", n=n, temperature=0.8, seed=7)
        .node("pick", "rerank", model="llm", method=method)
        .edge("propose", "pick").edge("pick", "end")
    )


async def test_sample_then_pointwise_rerank_picks_the_highest_p_yes() -> None:
    slm = ScriptedChatModel(replies=["So 40.\nAnswer: 40", "Answer: 42", "It is 40."])
    llm = KeyedChatModel(replies={"Answer: 42": {"content": "Yes", "confidence": 0.8},
                                  "40": {"content": "Yes", "confidence": 0.6}})
    result = await rerank_flow().compile(models={"slm": slm, "llm": llm}).arun("17 + 25?")
    assert result.answer == "Answer: 42"
    assert result.vars["candidates"] == ["So 40.\nAnswer: 40", "Answer: 42", "It is 40."]
    (decision,) = result.decisions
    assert decision["router"] == "rerank:pointwise" and decision["choice"] == "candidate 2"
    assert decision["details"]["candidates"] == [
        {"answer": "40", "score": 0.6, "votes": 2}, {"answer": "42", "score": 0.8, "votes": 1}]
    assert len(llm.calls) == 2  # "40" twice is scored once
    assert result.answered_by == "slm" and result.llm_called
    assert result.usage["slm"]["calls"] == 3
    slm.assert_all_used()


async def test_ties_go_to_the_answer_more_candidates_gave() -> None:
    slm = ScriptedChatModel(replies=["Answer: 7", "Answer: 8", "Answer: 8"])
    llm = KeyedChatModel(replies={".": {"content": "Yes", "confidence": 0.5}})
    result = await rerank_flow().compile(models={"slm": slm, "llm": llm}).arun("?")
    assert result.answer == "Answer: 8"


async def test_pairwise_rerank_compares_both_orders() -> None:
    slm = ScriptedChatModel(replies=["Answer: 40", "Answer: 42"])
    # the judge prefers 42 in whichever position it is shown
    llm = KeyedChatModel(replies={r"Answer A:\nAnswer: 42": {"content": "A", "confidence": 0.9},
                                  r"Answer B:\nAnswer: 42": {"content": "B", "confidence": 0.7}})
    result = await rerank_flow("pairwise", n=2).compile(models={"slm": slm, "llm": llm}).arun("17 + 25?")
    assert result.answer == "Answer: 42"
    scores = {c["answer"]: c["score"] for c in result.decisions[0]["details"]["candidates"]}
    assert scores == {"40": pytest.approx(0.2), "42": pytest.approx(0.8)}
    assert len(llm.calls) == 2


async def test_sample_sends_greedy_first_then_seeded_sampling() -> None:
    from tandemlm.nodes.rerank import Sample

    seen: list[dict[str, Any]] = []

    class Recorder(ScriptedChatModel):
        async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
            seen.append(kwargs)
            return await super()._agenerate(messages, stop, run_manager, **kwargs)

    slm = Recorder(replies=["a", "b", "c"])
    flow = Flow("s").model("slm", role="slm").node("propose", "sample", model="slm", n=3, seed=5,
                                                    temperature=0.9, max_tokens=64).edge("propose", "end")
    result = await flow.compile(models={"slm": slm}).arun("q")
    assert result.vars["candidates"] == ["a", "b", "c"]
    assert [(k.get("temperature"), k.get("seed"), k.get("max_tokens")) for k in seen] == [
        (None, None, 64), (0.9, 5, 64), (0.9, 6, 64)]
    assert Sample(model="slm").n == 4


async def test_rerank_without_candidates_names_the_node() -> None:
    from tandemlm.errors import NodeExecutionError

    slm = ScriptedChatModel(replies=["", "  "])
    flow = rerank_flow(n=2).compile(models={"slm": slm, "llm": ScriptedChatModel(replies=[])})
    with pytest.raises(NodeExecutionError) as info:
        await flow.arun("q")
    assert "pick" in str(info.value) and "no candidates" in str(info.value)
