"""retrieve, decompose, evidence and citations nodes, each on its own."""

from __future__ import annotations

from typing import Any

import pytest

from tandemlm.core.context import TandemContext
from tandemlm.core.node import NodeCall
from tandemlm.core.state import merge_evidence
from tandemlm.errors import SpecError
from tandemlm.models.fakes import ScriptedChatModel
from tandemlm.models.pool import ModelPool
from tandemlm.models.spec import ModelSpec
from tandemlm.nodes.decompose import Decompose, clean
from tandemlm.nodes.evidence import Citations, Evidence, cited, merge_hits
from tandemlm.nodes.retrieve import Retrieve
from tandemlm.stores import Document, MemoryStore

DOCS = [
    Document("r1", "Returns are accepted within 30 days.", {"source": "returns.md", "kind": "policy"}),
    Document("r2", "Refunds reach your card within 5 business days.", {"source": "returns.md", "kind": "policy"}),
    Document("t1", "The Ridgeline tent has a 3-year warranty.", {"source": "tent.md", "kind": "product"}),
]


def call_for(models: dict[str, Any] | None = None, stores: dict[str, Any] | None = None) -> NodeCall:
    specs = {name: ModelSpec(role="slm") for name in (models or {})}
    context = TandemContext(flow="t", models=ModelPool(specs, models or {}), stores=stores or {})
    return NodeCall("node", context, context.recorder.scope("node"))


async def test_retrieve_appends_hits_with_the_query_to_evidence() -> None:
    store = MemoryStore("hash", DOCS)
    node = Retrieve(store="kb", query="{subquestion}", k=2, where={"kind": "policy"})
    update = await node.run(
        {"input": "q", "variables": {"subquestion": "are returns accepted"}}, call_for(stores={"kb": store})
    )
    hits = update["evidence"]
    assert hits[0]["id"] == "r1"
    assert {h["metadata"]["kind"] for h in hits} == {"policy"}
    assert hits[0]["query"] == "are returns accepted" and hits[0]["source"] == "returns.md"
    assert node.reads() == {"subquestion"} and node.store_refs() == {"store": "kb"}


async def test_retrieve_to_a_named_field_and_min_score() -> None:
    store = MemoryStore("hash", DOCS)
    node = Retrieve(store="kb", k=3, output="hits", min_score=0.99)
    update = await node.run({"input": "tent warranty"}, call_for(stores={"kb": store}))
    assert update == {"hits": []}


async def test_retrieve_names_a_missing_store() -> None:
    with pytest.raises(SpecError, match="store 'kb' was not built"):
        await Retrieve(store="kb").run({"input": "x"}, call_for())


def test_retrieve_rejects_bad_filters_at_construction() -> None:
    with pytest.raises(ValueError, match="one operator"):
        Retrieve(store="kb", where={"kind": {"$regex": "p"}})


def test_evidence_reducer_dedups_by_id_keeping_the_best_score() -> None:
    left = [{"id": "a", "score": 0.2}, {"id": "b", "score": 0.5}]
    merged = merge_evidence(left, [{"id": "a", "score": 0.9}, {"id": "c", "score": 0.1}])
    assert [(h["id"], h["score"]) for h in merged] == [("a", 0.9), ("b", 0.5), ("c", 0.1)]
    assert merge_evidence(merged, None) == []


async def test_decompose_cleans_and_bounds_the_list() -> None:
    slm = ScriptedChatModel(
        replies=['{"subquestions": ["What is the return window?", "what is the return window", " ", "Refund time?", "Shipping?"]}']
    )
    node = Decompose(model="slm", max_items=2)
    call = call_for({"slm": slm})
    update = await node.run({"input": "Q?"}, call)
    assert update.outputs["subquestions"] == ["What is the return window?", "Refund time?"]
    assert update.meta["subquestions"]["fallback"] is False
    assert call.scope.errors == []
    assert "at most 2 short" in slm.calls[0][-1].content
    slm.assert_all_used()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I cannot do that.", "no JSON object"),
        ('{"subquestions": []}', "no sub-questions"),
        ('{"questions": ["a"]}', "subquestions"),
        ({"error": "server down"}, "model failed"),
    ],
)
async def test_decompose_falls_back_to_the_question(reply: Any, reason: str) -> None:
    node = Decompose(model="slm")
    call = call_for({"slm": ScriptedChatModel(replies=[reply])})
    update = await node.run({"input": "Can I return a tent?"}, call)
    assert update.outputs["subquestions"] == ["Can I return a tent?"]
    assert update.meta["subquestions"]["fallback"] is True
    assert reason in call.scope.errors[0]["error"] and call.scope.errors[0]["recovered"]


def test_clean_keeps_order_and_caps_length() -> None:
    assert clean(["- a?", "A", "b" * 500], 5) == ["a?", "b" * 300]


async def test_evidence_merges_cites_and_caps() -> None:
    hits = [
        {"id": "1", "text": "Returns  within 30 days.", "score": 0.4, "source": "returns.md"},
        {"id": "2", "text": "Returns within 30 days.", "score": 0.6, "source": "returns.md"},
        {"id": "3", "text": "Tent warranty 3 years.", "score": 0.5, "source": "tent.md"},
    ]
    assert [h["id"] for h in merge_hits(hits, 5)] == ["2", "3"]  # same text counted once
    update = await Evidence(k=5).run({"evidence": hits}, call_for())
    assert update["context"] == "[returns.md] Returns within 30 days.\n\n[tent.md] Tent warranty 3 years."
    assert update["sources"] == ["returns.md", "tent.md"]
    empty = await Evidence().run({"evidence": []}, call_for())
    assert empty == {"context": "(no evidence found)", "sources": []}


async def test_citations_found_or_appended() -> None:
    assert cited("See [returns.md; tent.md] and [x].", ["returns.md", "tent.md"]) == ["returns.md", "tent.md"]
    state: Any = {"answer": "30 days [returns.md].", "sources": ["returns.md", "tent.md"]}
    update = (await Citations(on_missing="append").run(state, call_for())).outputs
    assert update["citations"] == ["returns.md"] and "answer" not in update
    state = {"answer": "30 days.", "sources": ["returns.md"]}
    update = (await Citations(on_missing="append").run(state, call_for())).outputs
    assert update["citations"] == []
    assert update["answer"] == "30 days.\n\nSources consulted: [returns.md]"
    assert "answer" not in (await Citations().run(state, call_for())).outputs
