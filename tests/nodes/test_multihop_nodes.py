"""iterative_retrieve (the IRCoT-style loop), decompose's examples and echo split, cite_check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tandemlm import Flow
from tandemlm.errors import SpecError
from tandemlm.flows.compiler import compile_flow
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel
from tandemlm.nodes.decompose import echoes, split_conjunction
from tandemlm.nodes.grounding import claims, lexical_support, numbers, rewrite
from tandemlm.nodes.multihop import parse_next
from tandemlm.stores import Document, MemoryStore

DOCS = {
    "products/lamp.md": "Aurora headlamp. Price 49.00. Red night mode. Warranty: 1 year.",
    "policies/shipping.md": "Standard shipping costs 4.95, free over 75. Express costs 12.95.",
    "policies/warranty.md": "We answer warranty claims within 3 business days.",
    "faq/care.md": "Wash down jackets at 30 degrees with two tennis balls.",
}
QUESTION = "How much is Standard shipping for the headlamp with a red night mode?"


@pytest.fixture()
def kb() -> MemoryStore:
    store = MemoryStore("hash")
    store.upsert([Document(id=s, text=t, metadata={"source": s}) for s, t in DOCS.items()])
    return store


def loop_flow(max_hops: int = 3) -> Flow:
    return (
        Flow("loop")
        .model("slm", role="slm")
        .model("llm", role="llm")
        .store("kb", type="memory", embedding="hash")
        .node("search", "iterative_retrieve", store="kb", model="slm", k=1, max_hops=max_hops)
        .node("merge", "evidence", k=8)
        .node("answer", "generate", model="llm", prompt="Evidence:\n{context}\n\nQuestion: {input}")
        .node("check", "cite_check", mode="fix")
        .edge("search", "merge").edge("merge", "answer").edge("answer", "check").edge("check", "end")
    )


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("SEARCH: Standard shipping price", "Standard shipping price"),
        ("Sure.\nsearch - \"shipping costs\"", "shipping costs"),
        ("Next question: What does shipping cost?", "What does shipping cost?"),
        ("What does shipping cost?", "What does shipping cost?"),
        ("DONE", None),
        ("done. All facts are there.", None),
        ("I think the lamp is cheap.", None),
    ],
)
def test_planner_reply_parsing(reply: str, expected: str | None) -> None:
    assert parse_next(reply) == expected


async def test_loop_searches_what_the_planner_names_then_stops_on_done(kb: MemoryStore) -> None:
    slm = ScriptedChatModel(replies=["SEARCH: Standard shipping costs", "DONE"])
    llm = ScriptedChatModel(replies=["The lamp costs 49.00 [products/lamp.md]; shipping is 4.95 [policies/shipping.md]."])
    flow = loop_flow().compile(models={"slm": slm, "llm": llm}, stores={"kb": kb})
    result = await flow.arun("What does the headlamp with a red night mode cost?")

    assert result.path == ["search", "merge", "answer", "check"]
    hops = result.vars["hops"]
    assert [h["query"] for h in hops] == ["What does the headlamp with a red night mode cost?",
                                          "Standard shipping costs"]
    assert hops[1]["sources"] == ["policies/shipping.md"] and hops[1]["new"] == 1
    assert {h["source"] for h in result.vars["evidence"]} == {"products/lamp.md", "policies/shipping.md"}
    assert [h["hop"] for h in result.vars["evidence"]] == [1, 2]
    # the planner saw the first passage before naming the second search
    planner_prompt = slm.calls[0][-1].content
    assert "[products/lamp.md] Aurora headlamp" in planner_prompt
    assert "Searches done: What does the headlamp" in planner_prompt
    step = next(s for s in result.steps if s["node"] == "search")
    assert step["hops"] == 2 and step["stopped"] == "done"
    assert result.vars["citations"] == ["products/lamp.md", "policies/shipping.md"]
    assert result.usage["slm"]["calls"] == 2
    slm.assert_all_used()


async def test_loop_is_bounded_and_stops_on_a_repeated_search(kb: MemoryStore) -> None:
    slm = KeyedChatModel(replies={"Searches done: .*;": "SEARCH: tennis balls"}, default="SEARCH: express")
    llm = KeyedChatModel(replies={".": "ok"})
    bounded = loop_flow(max_hops=2).compile(models={"slm": slm, "llm": llm}, stores={"kb": kb})
    result = await bounded.arun(QUESTION)
    assert len(result.vars["hops"]) == 2 and len(slm.calls) == 1
    assert next(s for s in result.steps if s["node"] == "search")["stopped"] == "max_hops"

    repeat = KeyedChatModel(replies={".": "SEARCH: express"})
    flow = loop_flow(max_hops=5).compile(models={"slm": repeat, "llm": llm}, stores={"kb": kb})
    result = await flow.arun(QUESTION)
    assert [h["query"] for h in result.vars["hops"]] == [QUESTION, "express"]
    assert next(s for s in result.steps if s["node"] == "search")["stopped"] == "repeat"


async def test_worked_turns_come_first_and_a_copied_search_is_ignored(kb: MemoryStore) -> None:
    slm = ScriptedChatModel(replies=["SEARCH: late fee for borrowed novels"])
    flow = loop_flow().compile(models={"slm": slm, "llm": KeyedChatModel(replies={".": "ok"})}, stores={"kb": kb})
    result = await flow.arun(QUESTION)
    assert [m.type for m in slm.calls[0]] == ["system", "human", "ai", "human", "ai", "human"]
    assert slm.calls[0][2].content == "SEARCH: late fee for borrowed novels"
    assert len(result.vars["hops"]) == 1
    assert next(s for s in result.steps if s["node"] == "search")["stopped"] == "no_reply"


async def test_planner_failure_keeps_what_was_found(kb: MemoryStore) -> None:
    slm = ScriptedChatModel(replies=[{"error": "SLM down"}])
    llm = ScriptedChatModel(replies=["No idea."])
    flow = loop_flow().compile(models={"slm": slm, "llm": llm}, stores={"kb": kb})
    result = await flow.arun(QUESTION)
    assert len(result.vars["hops"]) == 1 and result.vars["evidence"]
    assert result.errors and "planner failed" in result.errors[0]["error"]


def test_loop_declares_its_models_and_store() -> None:
    with pytest.raises(SpecError) as info:
        compile_flow(loop_flow().node("search", "iterative_retrieve", store="kb", model="smal").to_spec())
    assert info.value.path == "nodes.search.model"


# -- decompose ------------------------------------------------------------------------------

def test_echo_detection_and_conjunction_split() -> None:
    q = "How long is the warranty on the poles, and how fast are claims answered?"
    assert echoes([q.lower().rstrip("?")], q) and not echoes(["warranty", "claims"], q)
    assert split_conjunction(q) == ["How long is the warranty on the poles?", "How fast are claims answered?"]
    assert split_conjunction("Is salt and pepper included?") == ["Is salt and pepper included?"]


def decompose_flow(**params: Any) -> Flow:
    return (
        Flow("d").model("slm", role="slm").model("llm", role="llm")
        .node("decompose", "decompose", model="slm", **params).edge("decompose", "end")
    )


async def test_an_echoed_two_part_question_is_split() -> None:
    q = "How long is the warranty on the poles, and how fast are claims answered?"
    slm = ScriptedChatModel(replies=[json.dumps({"subquestions": [q]})])
    result = await decompose_flow().compile(models={"slm": slm, "llm": ScriptedChatModel(replies=[])}).arun(q)
    assert result.vars["subquestions"] == ["How long is the warranty on the poles?", "How fast are claims answered?"]
    assert result.steps[0]["meta"]["subquestions"]["split"] is True and not result.errors


async def test_teacher_examples_are_written_once_and_shown_to_the_slm(tmp_path: Path) -> None:
    cache = tmp_path / "examples.json"
    seeds = ["Which tent is lightest and what does it cost?", "When does the store open on Saturdays?"]
    teacher = ScriptedChatModel(replies=[
        '{"subquestions": ["Which tent is lightest?", "What does that tent cost?"]}',
        "not json",  # a bad example is skipped, not fatal
    ])
    slm = KeyedChatModel(replies={"Question: How": '{"subquestions": ["a?", "b?"]}'})
    flow = decompose_flow(teacher="llm", seed_questions=seeds, examples_cache=str(cache))
    first = await flow.compile(models={"slm": slm, "llm": teacher}).arun("How much and how heavy?")
    assert first.vars["subquestions"] == ["a?", "b?"]
    assert first.usage["llm"]["calls"] == 2 and first.llm_called
    assert any("teacher example skipped" in e["error"] for e in first.errors)
    saved = json.loads(cache.read_text())
    assert saved["seeds"] == seeds and len(saved["examples"]) == 1
    messages = slm.calls[0]
    assert messages[1].content == f"Question: {seeds[0]}"
    assert json.loads(messages[2].content) == {"subquestions": ["Which tent is lightest?", "What does that tent cost?"]}

    # a second run reads the cache: the teacher is not called again
    second = await flow.compile(models={"slm": slm, "llm": ScriptedChatModel(replies=[])}).arun("How much?")
    assert "llm" not in second.usage and not second.llm_called
    teacher.assert_all_used()


def test_teacher_needs_seed_questions() -> None:
    with pytest.raises(SpecError) as info:
        compile_flow(decompose_flow(teacher="llm").to_spec())
    assert info.value.path == "nodes.decompose.teacher"


def test_static_examples_become_earlier_turns() -> None:
    from tandemlm.nodes.decompose import Decompose

    node = Decompose(model="slm", examples=[{"question": "Q1?", "subquestions": ["a?", "b?"]}])
    messages = node.messages({"input": "Q2?"})
    assert [m.type for m in messages] == ["system", "human", "ai", "human"]
    assert messages[1].content == "Question: Q1?" and "Q2?" in messages[3].content


# -- cite_check ------------------------------------------------------------------------------

def test_claims_attach_to_the_text_before_each_marker() -> None:
    answer = "The lamp costs 49.00 [a.md]. Claims take 3 days. [b.md][c.md] Thanks."
    assert [(s, c) for _, _, s, c in claims(answer)] == [
        ("a.md", "The lamp costs 49.00"), ("b.md", "Claims take 3 days."), ("c.md", "Claims take 3 days.")]
    assert rewrite(answer, {(k[0], k[1]): [""] for k in claims(answer)}) == \
        "The lamp costs 49.00. Claims take 3 days. Thanks."


def test_lexical_support_needs_the_claims_own_numbers_or_words() -> None:
    assert numbers("349.00 and 1,500 and 4.95") == {"349", "1500", "4.95"}
    assert lexical_support("It costs 49.00", DOCS["products/lamp.md"])
    assert not lexical_support("Claims are answered in 3 business days", DOCS["products/lamp.md"])
    # numbers the question already had do not count as support
    assert not lexical_support("After 10 months claims are answered quickly", DOCS["products/lamp.md"],
                               question="My lamp broke after 10 months")
    assert lexical_support("Down jackets need tennis balls", DOCS["faq/care.md"])


@pytest.mark.parametrize(
    ("mode", "answer", "citations"),
    [
        ("fix", "Shipping is 4.95 [policies/shipping.md]. The lamp costs 49.00 [policies/shipping.md].",
         ["policies/shipping.md", "products/lamp.md"]),
        ("drop", "Shipping is 4.95 [policies/shipping.md]. The lamp costs 49.00.", ["policies/shipping.md"]),
        ("flag", None, ["policies/shipping.md"]),
    ],
)
async def test_unsupported_citations_are_moved_dropped_or_flagged(kb: MemoryStore, mode: str,
                                                                 answer: str | None,
                                                                 citations: list[str]) -> None:
    raw = "Shipping is 4.95 [policies/shipping.md]. The lamp costs 49.00 [policies/shipping.md]."
    flow = (
        Flow("c").model("llm", role="llm").store("kb", type="memory", embedding="hash")
        .node("retrieve", "retrieve", store="kb", k=4)
        .node("answer", "generate", model="llm", prompt="{input}")
        .node("check", "cite_check", mode=mode)
        .edge("retrieve", "answer").edge("answer", "check").edge("check", "end")
    )
    result = await flow.compile(models={"llm": ScriptedChatModel(replies=[raw])}, stores={"kb": kb}).arun("q")
    expected = raw if mode == "flag" else answer
    if mode == "fix":
        expected = "Shipping is 4.95 [policies/shipping.md]. The lamp costs 49.00 [products/lamp.md]."
    assert result.answer == expected
    assert result.vars["citations"] == citations
    (bad,) = result.vars["unsupported_citations"]
    assert bad["source"] == "policies/shipping.md" and bad["claim"] == "The lamp costs 49.00"
    decision = result.decisions[-1]
    assert decision["router"] == "cite_check" and decision["choice"] == mode
    assert decision["reason"].startswith("1 of 2 citations supported")
    assert result.answered_by == "llm"


async def test_a_cited_file_the_evidence_lacks_is_unsupported_and_a_bracketed_word_is_not(kb: MemoryStore) -> None:
    raw = "See [note] below: shipping is 4.95 [policies/unknown.md]."
    flow = (
        Flow("c").model("llm", role="llm").store("kb", type="memory", embedding="hash")
        .node("retrieve", "retrieve", store="kb", k=4)
        .node("answer", "generate", model="llm", prompt="{input}")
        .node("check", "cite_check", mode="fix")
        .edge("retrieve", "answer").edge("answer", "check").edge("check", "end")
    )
    result = await flow.compile(models={"llm": ScriptedChatModel(replies=[raw])}, stores={"kb": kb}).arun("q")
    assert result.answer == "See [note] below: shipping is 4.95 [policies/shipping.md]."
    assert result.vars["unsupported_citations"][0]["moved_to"] == "policies/shipping.md"


async def test_model_method_asks_the_checker_per_citation(kb: MemoryStore) -> None:
    raw = "The lamp costs 49.00 [products/lamp.md]."
    checker = ScriptedChatModel(replies=[{"content": "No", "confidence": 0.9}])
    flow = (
        Flow("c").model("slm", role="slm").model("llm", role="llm")
        .store("kb", type="memory", embedding="hash")
        .node("retrieve", "retrieve", store="kb", k=4)
        .node("answer", "generate", model="llm", prompt="{input}")
        .node("check", "cite_check", mode="drop", method="model", model="slm")
        .edge("retrieve", "answer").edge("answer", "check").edge("check", "end")
    )
    result = await flow.compile(models={"llm": ScriptedChatModel(replies=[raw]), "slm": checker},
                                stores={"kb": kb}).arun("q")
    assert result.answer == "The lamp costs 49.00."
    prompt = checker.calls[0][-1].content
    assert "Passage from products/lamp.md" in prompt and "Claim: The lamp costs 49.00" in prompt
    checker.assert_all_used()
