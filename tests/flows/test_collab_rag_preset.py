"""The collab_rag preset: decomposition, parallel retrieval (map fan-out), merge, cited answer."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tandemlm.errors import SpecError
from tandemlm.flows.compiler import compile_flow
from tandemlm.flows.loader import dump_yaml, load_flow
from tandemlm.models.fakes import KeyedChatModel, ScriptedChatModel
from tandemlm.stores import MemoryStore, example_kb, ingest

SUBQ = '{"subquestions": ["How long is the return window?", "How long do refunds take?"]}'
QUESTION = "Can I still return my tent after five weeks, and when do I get my money back?"


@pytest.fixture(scope="module")
def kb() -> MemoryStore:
    store = MemoryStore("hash")
    ingest(store, [example_kb()], chunk_size=600, overlap=100)
    return store


def preset() -> dict[str, Any]:
    return load_flow("collab_rag").to_dict()


async def test_subquestions_are_retrieved_in_parallel_and_the_answer_cites(kb: MemoryStore) -> None:
    slm = ScriptedChatModel(replies=[SUBQ])
    llm = ScriptedChatModel(replies=["Within 30 days only [policies/returns.md]; refunds take 5 business days."])
    flow = compile_flow("collab_rag", models={"slm": slm, "llm": llm}, stores={"kb": kb})
    result = await flow.arun(QUESTION)

    assert result.path == ["decompose", "retrieve_each", "retrieve_each", "merge", "answer", "cite"]
    assert result.answer.startswith("Within 30 days only [policies/returns.md]")
    assert result.answered_by == "llm" and result.errors == []
    assert result.vars["subquestions"] == ["How long is the return window?", "How long do refunds take?"]
    assert "policies/returns.md" in result.vars["sources"]
    assert result.vars["citations"] == ["policies/returns.md"]
    prompt = llm.calls[0][-1].content
    assert "[policies/returns.md]" in prompt and QUESTION in prompt
    blocks = result.vars["context"].split("\n\n")
    assert len(blocks) == len(set(blocks)) <= 8  # merged and de-duplicated
    assert result.usage["slm"]["calls"] == 1 and result.usage["llm"]["calls"] == 1
    slm.assert_all_used()
    llm.assert_all_used()


@pytest.mark.parametrize(
    "reply", ["Sure! Here are some questions: 1. returns 2. refunds", '{"subquestions": []}', {"error": "SLM down"}]
)
async def test_decomposition_failure_falls_back_to_the_question(kb: MemoryStore, reply: Any) -> None:
    slm = ScriptedChatModel(replies=[reply])
    llm = ScriptedChatModel(replies=["Returns: 30 days [policies/returns.md]."])
    flow = compile_flow("collab_rag", models={"slm": slm, "llm": llm}, stores={"kb": kb})
    result = await flow.arun(QUESTION)
    assert result.path == ["decompose", "retrieve_each", "merge", "answer", "cite"]
    assert result.vars["subquestions"] == [QUESTION]
    assert result.errors and "decomposition fell back" in result.errors[0]["error"]
    assert result.answer.startswith("Returns: 30 days [policies/returns.md].")
    assert result.vars["sources"] and result.vars["context"].count("[") >= 1


async def test_uncited_answer_lists_the_consulted_sources(kb: MemoryStore) -> None:
    slm = KeyedChatModel(replies={"sub-questions": SUBQ})
    llm = KeyedChatModel(replies={"Evidence": "You have 30 days."})
    flow = compile_flow("collab_rag", models={"slm": slm, "llm": llm}, stores={"kb": kb})
    result = await flow.arun(QUESTION)
    assert result.vars["citations"] == []
    assert result.answer.startswith("You have 30 days.\n\nSources consulted: [")
    assert all(f"[{s}]" in result.answer for s in result.vars["sources"])


async def test_spec_built_store_indexes_the_example_kb_on_first_use(tmp_path: Path) -> None:
    spec = preset()
    spec["stores"]["kb"].update({"type": "memory", "embedding": "hash"})
    slm = ScriptedChatModel(replies=['{"subquestions": ["warranty of trekking poles"]}'])
    llm = ScriptedChatModel(replies=["5 years [policies/warranty.md]."])
    flow = compile_flow(spec, models={"slm": slm, "llm": llm})
    result = await flow.arun("How long is the warranty on the Alpine trekking poles?")
    assert flow.stores["kb"].report.files == 22
    assert result.vars["citations"] == ["policies/warranty.md"]
    assert "policies/warranty.md" in result.vars["sources"]


def test_chroma_store_of_the_preset_lives_under_the_project_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TANDEM_HOME", str(tmp_path / "state"))
    flow = compile_flow("collab_rag", models={"slm": ScriptedChatModel(replies=[]), "llm": ScriptedChatModel(replies=[])})
    assert flow.stores["kb"].where_is() == str(tmp_path / "state" / "chroma")
    assert flow.stores["kb"].collection_name == "brightpeak-kb"
    assert not (tmp_path / "state").exists()  # nothing opened or indexed at compile time


def test_map_edge_round_trips_and_draws() -> None:
    spec = load_flow("collab_rag")
    assert load_flow(spec.to_dict()) == spec
    assert "map: subquestions" in dump_yaml(spec)
    edge = spec.edges[0]
    assert (edge.map, edge.item) == ("subquestions", "subquestion")
    assert spec.to_dict()["edges"][0] == {"from": "decompose", "to": "retrieve_each", "map": "subquestions", "as": "subquestion"}
    flow = compile_flow(spec, models={"slm": ScriptedChatModel(replies=[]), "llm": ScriptedChatModel(replies=[])},
                        stores={"kb": MemoryStore("hash")})
    assert "decompose -.-> retrieve_each" in flow.mermaid()


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [
        (lambda s: s["edges"][0].update(map="subqs"), "edges[0].map", "no node writes 'subqs'"),
        (lambda s: s["edges"][0].update({"as": "sub-q"}), "edges[0].as", "not a field name"),
        (lambda s: s["edges"][0].update(to="end"), "edges[0].map", "not 'end'"),
        (lambda s: s["edges"][0].update({"as": "item"}), "nodes.retrieve_each", "reads unknown field(s) subquestion"),
        (lambda s: s["nodes"]["retrieve_each"].update(store="docs"), "nodes.retrieve_each.store", "unknown store 'docs'"),
        (lambda s: s["stores"]["kb"].update(type="faiss"), "stores.kb.type", "chroma"),
    ],
)
def test_spec_errors_name_the_path(mutate: Any, path: str, message: str) -> None:
    spec = copy.deepcopy(preset())
    mutate(spec)
    with pytest.raises(SpecError) as info:
        compile_flow(spec, models={"slm": ScriptedChatModel(replies=[]), "llm": ScriptedChatModel(replies=[])})
    assert info.value.path == path and message in info.value.message, str(info.value)


async def test_fan_out_is_bounded_by_max_items(kb: MemoryStore) -> None:
    many = '{"subquestions": [' + ", ".join(f'"question {i}"' for i in range(10)) + "]}"
    slm = ScriptedChatModel(replies=[many])
    llm = ScriptedChatModel(replies=["ok"])
    flow = compile_flow("collab_rag", models={"slm": slm, "llm": llm}, stores={"kb": kb})
    result = await flow.arun(QUESTION)
    assert result.path.count("retrieve_each") == 4


@pytest.mark.real
async def test_collab_rag_on_smollm2_with_chroma_and_minilm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tandemlm.models.llamacpp import ChatLlamaCpp

    monkeypatch.setenv("TANDEM_HOME", str(tmp_path / "state"))
    small = ChatLlamaCpp(model="smollm2-135m", max_tokens=48)
    flow = compile_flow("collab_rag", models={"slm": small, "llm": small})
    result = await flow.arun("How long do refunds take, and is return shipping free?")

    assert result.path[0] == "decompose" and result.path[-3:] == ["merge", "answer", "cite"]
    assert 1 <= result.path.count("retrieve_each") <= 4
    assert result.path.count("retrieve_each") == len(result.vars["subquestions"])
    assert result.answer.strip() and result.answered_by == "llm"
    assert result.vars["sources"] and set(result.vars["citations"]) <= set(result.vars["sources"])
    assert any(f"[{s}]" in result.answer for s in result.vars["sources"])
    assert flow.stores["kb"].count() > 20  # the example KB was indexed into Chroma
    assert (tmp_path / "state" / "chroma").is_dir()


async def test_each_parallel_retrieval_is_a_span_under_its_node(kb: MemoryStore, spans: Any) -> None:
    slm = ScriptedChatModel(replies=[SUBQ])
    llm = ScriptedChatModel(replies=["30 days [policies/returns.md]."])
    flow = compile_flow("collab_rag", models={"slm": slm, "llm": llm}, stores={"kb": kb})
    await flow.arun(QUESTION)
    finished = spans.get_finished_spans()
    by_id = {s.context.span_id: s for s in finished}
    retrievals = [s for s in finished if s.name == "retrieval kb"]
    assert len(retrievals) == 2
    for retrieval in retrievals:
        parent = by_id[retrieval.parent.span_id]
        assert parent.name == "node retrieve_each"
        assert retrieval.attributes["gen_ai.operation.name"] == "retrieval"
        assert retrieval.attributes["tandem.retrieval.results"] > 0
        assert retrieval.attributes["tandem.retrieval.top_k"] >= 1
    assert len({by_id[r.parent.span_id].context.span_id for r in retrievals}) == 2
